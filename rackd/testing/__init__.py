"""Kit for plugin authors and rackd's own tests: fake driver, manual clock, recording bus, conformance suite."""
