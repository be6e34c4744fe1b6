"""SNMP driver for rack PDUs (pysnmp): vendor profiles as tables, outlet metering and switching."""
