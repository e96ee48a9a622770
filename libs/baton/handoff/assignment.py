"""Who gets a queued conversation: the pure choice behind auto-assignment (issue 12).

The shell gathers, under the store's assignment lock, the online agents allowed on the
conversation's number with what each holds; `pick_agent` chooses; `decide` (event
`AgentAssigned`) still refuses a full agent or a conversation someone took meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

_NEVER = datetime.min.replace(tzinfo=UTC)


class Candidate(BaseModel):
    """An online agent who may take conversations of the number in question."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    load: int  # conversations held now
    capacity: int
    last_assigned_at: datetime | None = None

    @property
    def has_room(self) -> bool:
        return self.load < self.capacity


def pick_agent(candidates: Iterable[Candidate]) -> Candidate | None:
    """The least loaded agent with room; among equals, the one assigned least recently."""
    free = [c for c in candidates if c.has_room]
    if not free:
        return None
    return min(free, key=lambda c: (c.load, c.last_assigned_at or _NEVER, c.agent_id))


def assigned(candidate: Candidate, at: datetime) -> Candidate:
    """The candidate after taking one more conversation at `at` (for the next pick)."""
    return candidate.model_copy(update={"load": candidate.load + 1, "last_assigned_at": at})
