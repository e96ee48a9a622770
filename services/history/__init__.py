"""History: the Coexistence backlog and contacts."""
