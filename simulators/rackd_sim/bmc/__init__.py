"""Simulated GPU-server BMC (IPMI 2.0 on pyghmi's server class): power, SDR, SEL, FRU, DCMI, faults."""
