"""Tests of the PDU simulator."""
