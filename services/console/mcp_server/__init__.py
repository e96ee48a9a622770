"""Baton's MCP server: conversations and handoff as tools for AI assistants and copilots.

Served by the console at `/mcp` (Streamable HTTP, the API's bearer tokens: `http.mount`) and
by `python -m services.console mcp --stdio` for desktop clients (`stdio.main`). The tools are
in `tools.py`; they call the agent API's own functions, never the store's writes directly.
"""
