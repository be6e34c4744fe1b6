"""PDU simulator on pysnmp's agent side: switchable, metered outlets per vendor MIB, faults, v1/v2c/v3."""
