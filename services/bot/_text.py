"""Text normalisation shared by the bot's rules (it lives in `baton.text`, beside the facts)."""

from baton.text import clauses, clip, find, fold, squash, without, words

__all__ = ["clauses", "clip", "find", "fold", "squash", "without", "words"]
