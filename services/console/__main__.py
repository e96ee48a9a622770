import sys

from baton.runtime import run

if sys.argv[1:] == ["mcp", "--stdio"]:
    # The MCP server for desktop clients, on stdin/stdout (see services/console/mcp_server).
    from services.console.mcp_server.stdio import main as mcp_stdio

    run("console-mcp", mcp_stdio)
elif sys.argv[1:2] == ["agents"]:
    # The desk's agent accounts: add, passwd, disable, enable, list (services/console/accounts_cli).
    from services.console.accounts_cli import main as agents_main

    sys.exit(agents_main(sys.argv[2:]))
elif sys.argv[1:]:
    sys.exit("usage: python -m services.console [mcp --stdio | agents …]")
else:
    from services.console.app import main

    run("console", main)
