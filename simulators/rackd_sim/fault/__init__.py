"""`rackd sim fault`: inject faults into a running virtual rack."""
