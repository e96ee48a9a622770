"""Ingest: the public webhook edge. Verify, split, publish with a confirm, answer."""
