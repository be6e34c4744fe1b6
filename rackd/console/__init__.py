"""Console service: one persistent connection per console, byte-exact logs, ring buffer, attach, pattern events."""
