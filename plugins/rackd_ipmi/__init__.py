"""IPMI driver for server BMCs (pyghmi): power, SDR sensors, DCMI power, SEL, FRU and SOL console."""
