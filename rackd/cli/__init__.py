"""The `rackd` command line: daemon, diagnostics, simulators and operator commands."""
