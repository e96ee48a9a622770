"""Console: the agents' HTTP API (list, history, take over, release, send, live events)."""
