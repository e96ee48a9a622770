"""Pure rules of the two-way state sync (no I/O).

Baton → Chatwoot: bot ↔ `pending`, human ↔ `open` (+ assignee), paused ↔ `snoozed` until the
pause ends. Chatwoot → Baton: an agent opening or (self-)assigning takes the conversation over;
`resolved` or `pending` gives it back to the bot; `snoozed` is Baton's own echo of a pause.
"""

from __future__ import annotations

from collections.abc import Callable

from baton.handoff import AgentReleased, AgentTookOver, ConversationState
from baton.types import Mode

# The Baton holder of a conversation open in Chatwoot with nobody assigned: "any Chatwoot agent".
TEAM_AGENT = "chatwoot"

STATUS_FOR_MODE = {Mode.BOT: "pending", Mode.HUMAN: "open", Mode.PAUSED: "snoozed"}


def status_for(mode: Mode) -> str:
    """The Chatwoot status that shows a Baton mode."""
    return STATUS_FOR_MODE[mode]


def remote_action(
    status: str,
    assignee: str | None,
    state: ConversationState,
    is_chatwoot_agent: Callable[[str], bool],
    *,
    assigned: bool = False,
) -> AgentTookOver | AgentReleased | None:
    """What a Chatwoot conversation's status and assignee (a Baton agent id) mean for Baton.

    `assigned`: the assignee is what changed. None when Baton already agrees, or when the change
    is not an agent's decision (Chatwoot reopens a snoozed conversation when the customer writes).
    """
    if assigned and assignee is not None and status != "resolved":
        # Assigning (oneself) in Chatwoot takes the conversation, whatever its status shows.
        if state.mode is Mode.HUMAN and state.assignee == assignee:
            return None
        return AgentTookOver(agent_id=assignee)
    if status in ("resolved", "pending"):
        if state.mode is Mode.BOT:
            return None
        return AgentReleased(agent_id=assignee or _holder_or_team(state))
    if status != "open":
        return None  # snoozed: only Baton snoozes (the owner's pause)
    if assignee is not None:
        if state.mode is Mode.HUMAN and state.assignee == assignee:
            return None
        return AgentTookOver(agent_id=assignee)
    if state.mode is Mode.BOT:
        return AgentTookOver(agent_id=TEAM_AGENT)
    if state.mode is Mode.HUMAN and state.assignee not in (None, TEAM_AGENT):
        # Unassigned in Chatwoot: back to the team, unless a Baton-side agent holds it.
        holder = state.assignee
        if holder is not None and is_chatwoot_agent(holder):
            return AgentTookOver(agent_id=TEAM_AGENT)
    return None


def chatwoot_may_act(state: ConversationState, is_chatwoot_agent: Callable[[str], bool]) -> bool:
    """Chatwoot's agents may change this conversation: no agent outside Chatwoot holds it."""
    if state.mode is not Mode.HUMAN or state.assignee is None:
        return True
    return state.assignee == TEAM_AGENT or is_chatwoot_agent(state.assignee)


def _holder_or_team(state: ConversationState) -> str:
    return state.assignee if state.mode is Mode.HUMAN and state.assignee else TEAM_AGENT
