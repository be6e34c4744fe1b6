"""Console transports: serial, RFC2217, raw TCP, telnet and SSH console servers."""
