"""Driver contract and the entry-point registry that finds drivers."""
