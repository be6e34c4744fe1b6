"""rackd: out-of-band management daemon for GPU server racks."""
