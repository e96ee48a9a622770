"""The agent desk: the web inbox served by the console at `/` (templates, static, page routes)."""
