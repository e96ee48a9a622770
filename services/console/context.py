"""What the console's request handlers share, built once in `main` (or by a test)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from baton.broker import Broker
from baton.conversations import Conversations
from baton.settings import Settings
from baton.store import Store
from services.console.hub import EventHub


@dataclass(frozen=True)
class Console:
    settings: Settings
    store: Store
    broker: Broker
    conversations: Conversations
    hub: EventHub


def console_of(request: Request) -> Console:
    console = getattr(request.app.state, "console", None)
    if not isinstance(console, Console):
        raise RuntimeError("the console app has no context (app.state.console)")
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]
