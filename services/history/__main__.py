"""History: the Coexistence backlog and contacts. With arguments: the operator CLI (see cli.py)."""

import sys

if len(sys.argv) > 1:
    from services.history.cli import main as cli

    sys.exit(cli(sys.argv[1:]))

from baton.runtime import run
from services.history.app import main

run("history", main)
