"""A fake Chatwoot, written from Chatwoot's published Application API (its swagger).

A small real HTTP server on loopback: contacts, conversations and messages of one account and
one API-channel inbox, `api_access_token` enforced, and the inbox's callback called the way
Chatwoot calls it (signed, or with the URL token), including duplicate and out-of-order
deliveries on demand. `python -m tests.fakes.chatwoot --port ...`; drive it with
`ChatwootControl`.
"""

from tests.fakes.chatwoot.control import AGENTS, BRIDGE_USER, ChatwootControl

__all__ = ["AGENTS", "BRIDGE_USER", "ChatwootControl"]
