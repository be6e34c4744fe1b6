"""Console-server simulator: simulated servers' serial consoles on raw TCP, telnet and RFC 2217 ports."""
