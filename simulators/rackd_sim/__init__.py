"""Simulators of BMCs, PDUs and console servers for tests and the demo."""
