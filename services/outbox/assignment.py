"""Which outbox replica should be the active sender of each business number (pure).

Bounded-load rendezvous hashing: every number ranks the replicas by a hash of (replica,
number) and goes to the best-ranked one that still has room, room being ceil(numbers /
replicas). Every replica computes the same answer from the same inputs; a replica joining or
leaving moves few numbers; no replica gets more than one number above the fair share.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Collection


def _score(*parts: str) -> int:
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def assign(numbers: Collection[str], replicas: Collection[str]) -> dict[str, str]:
    """number → replica for every number (empty when there is no replica)."""
    if not replicas or not numbers:
        return {}
    room = math.ceil(len(numbers) / len(replicas))
    load: Counter[str] = Counter()
    owners: dict[str, str] = {}
    for number in sorted(numbers, key=lambda n: (_score(n), n)):
        ranked = sorted(replicas, key=lambda r: (_score(r, number), r), reverse=True)
        owner = next(r for r in ranked if load[r] < room)
        owners[number] = owner
        load[owner] += 1
    return owners
