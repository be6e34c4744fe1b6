"""Tests of the snmp PDU driver."""
