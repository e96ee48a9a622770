"""Real webhook payload shapes, one whole POST body per file, written from Meta's documentation.

File names are `<field>.<case>.json`. The payloads use fixed ids; `load(run)` rewrites every
customer number and message id so that each replay (and each test) has its own conversations.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PHONE_NUMBER_ID = "900000000000001"
# Customer numbers in the files: 55119 and eight digits.
_CUSTOMER = re.compile(r"\b55119(\d{8})\b")
# Customer message types that are not conversation: nobody answers them (DESIGN.md §2).
NOT_ANSWERED_TYPES = frozenset({"reaction", "revoke", "system"})


@dataclass(frozen=True)
class Payload:
    name: str  # e.g. "messages.text"
    body: dict[str, Any]

    @property
    def field(self) -> str:
        return self.name.partition(".")[0]

    def changes(self) -> list[dict[str, Any]]:
        return [change for entry in self.body["entry"] for change in entry["changes"]]

    def customer_messages(self) -> list[dict[str, Any]]:
        """The customer messages this payload carries (field `messages` only)."""
        if self.field != "messages":
            return []
        return [m for c in self.changes() for m in c["value"].get("messages", [])]

    def answerable(self) -> list[dict[str, Any]]:
        """Customer messages that deserve an answer from the bot."""
        return [m for m in self.customer_messages() if m["type"] not in NOT_ANSWERED_TYPES]


def load(run: str = "") -> list[Payload]:
    """Every payload of the corpus, with customer numbers and wamids made unique to `run`.

    `run` is a short string of digits (it becomes part of phone numbers).
    """
    if run and not run.isdigit():
        raise ValueError("run must be digits")
    out = []
    for path in sorted(HERE.glob("*.json")):
        text = path.read_text()
        if run:
            text = _CUSTOMER.sub(lambda m: f"55{run}{m.group(1)}", text)
            text = text.replace('"wamid.', f'"wamid.R{run}.')
        out.append(Payload(path.stem, json.loads(text)))
    return out
