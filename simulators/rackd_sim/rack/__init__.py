"""The virtual rack: BMC, PDU and console simulators linked into one rack that rackd can manage."""
