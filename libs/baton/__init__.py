"""Baton's shared library: contracts, adapters and the pure handoff core."""
