"""The agent workflow (issue 12): presence, auto-assignment, transfer, notes, resolve.

Callable outside a route (the MCP tools use it): `Workflow(console, directory)`, e.g.

    note = await Workflow(console, directory).add_note(principal, conversation_id, "text")

Every change of who holds a conversation is a handoff event through `Conversations` (decide →
compare-and-set). Whatever gives an agent one more conversation (auto-assignment, a transfer
to them, their takeover) is decided under the store's assignment lock with the agent's load
in the event, so `decide` refuses a full agent and no two replicas can both fill the last slot.

Refusals are `WorkflowError`s with an HTTP status: 404 unknown, 403 out of scope or not
allowed, 409 with a `ConflictReason`, 503 busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime, timedelta

import structlog

from baton.broker import BrokerUnavailable, PublishFailed
from baton.conversations import (
    ConcurrentUpdate,
    Precondition,
    PreconditionFailed,
    UnknownConversation,
)
from baton.handoff import (
    AgentAssigned,
    AgentEventKind,
    AgentResolved,
    AgentTransferred,
    AgentWentOffline,
    ConversationState,
    Decision,
    EmitEvent,
    Event,
    IgnoreReason,
)
from baton.handoff.assignment import Candidate, assigned, pick_agent
from baton.messages import AgentPresenceChanged, NoteAdded
from baton.store.workflow_records import (
    AgentPresence,
    NewNote,
    Presence,
    PresenceChange,
    ServiceResolution,
    StoredNote,
)
from baton.types import ConversationId, Mode
from services.console import metrics
from services.console.agents import Directory, Kind, Principal
from services.console.context import Console
from services.console.schemas import ConflictReason

log = structlog.get_logger()

KNOWN_OUTCOMES = frozenset({"solved", "not_solved", "spam", "no_answer", "duplicate"})
HEARTBEAT_WRITE_SECONDS = 5.0  # a heartbeat is written at most this often per agent
QUEUE_BATCH = 200  # queued conversations looked at per assignment pass

# The last heartbeat written per (store, agent) in this process: API calls are frequent.
_beats: dict[tuple[int, str], float] = {}


class WorkflowError(Exception):
    """A refused workflow action; `status` is the HTTP status the API answers."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        reason: ConflictReason | None = None,
        state: ConversationState | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.state = state


def _conflict(reason: ConflictReason, detail: str, state: ConversationState) -> WorkflowError:
    return WorkflowError(409, detail, reason=reason, state=state)


def effective_status(presence: AgentPresence | None, now: datetime, timeout: timedelta) -> Presence:
    """The presence an agent really has: offline without a heartbeat for `timeout`."""
    if presence is None or presence.heartbeat_at < now - timeout:
        return Presence.OFFLINE
    return presence.status


class Workflow:
    """The workflow's actions on one console's handles (cheap: build one per request)."""

    def __init__(self, console: Console, directory: Directory) -> None:
        self._console = console
        self._store = console.store
        self._conversations = console.conversations
        self._directory = directory

    @property
    def console(self) -> Console:
        return self._console

    @property
    def timeout(self) -> timedelta:
        return timedelta(seconds=self._console.settings.console_presence_timeout_seconds)

    def now(self) -> datetime:
        return self._conversations.now()

    def agents_configured(self) -> list[Principal]:
        """Every configured agent (people, not bots)."""
        found = (self._directory.get(i) for i in self._directory.ids())
        return [p for p in found if p is not None and p.kind is Kind.AGENT]

    # --- conversations -------------------------------------------------------------------

    async def _state(self, principal: Principal, cid: ConversationId) -> ConversationState:
        state = await self._conversations.state(cid)
        if state is None:
            raise WorkflowError(404, "no such conversation")
        if not principal.may_see(state.phone_number_id):
            metrics.FORBIDDEN.inc()
            raise WorkflowError(403, "this business number is outside your scope")
        return state

    async def _apply(
        self,
        cid: ConversationId,
        event: Event,
        precondition: Precondition,
        refuse: tuple[ConflictReason, str],
        *,
        loaded: ConversationState | None = None,
    ) -> Decision:
        try:
            return await self._conversations.apply(
                cid, event, precondition=precondition, loaded=loaded
            )
        except UnknownConversation as exc:
            raise WorkflowError(404, "no such conversation") from exc
        except PreconditionFailed as exc:
            if isinstance(event, AgentTransferred) and exc.state.mode is not Mode.HUMAN:
                raise _conflict(
                    ConflictReason.NOT_HUMAN_MODE, "no human holds this conversation", exc.state
                ) from exc
            raise _conflict(refuse[0], refuse[1], exc.state) from exc
        except ConcurrentUpdate as exc:
            raise WorkflowError(503, "try again") from exc

    async def transfer(self, agent: Principal, cid: ConversationId, to: str | None) -> Decision:
        """Hand a human conversation to another agent, or back to the queue (`to=None`)."""
        if agent.kind is not Kind.AGENT:
            metrics.FORBIDDEN.inc()
            raise WorkflowError(403, "only agents may transfer")
        state = await self._state(agent, cid)
        target: Principal | None = None
        if to is not None:
            target = self._directory.get(to)
            if target is None or target.kind is not Kind.AGENT:
                raise WorkflowError(404, f"no agent {to!r}")
            if not target.may_see(state.phone_number_id):
                metrics.FORBIDDEN.inc()
                raise WorkflowError(403, f"{to} is not allowed on this business number")

        def allowed(s: ConversationState) -> bool:
            # The holder, an admin, or anyone while it waits in the queue.
            return s.mode is Mode.HUMAN and (agent.admin or s.assignee in (None, agent.id))

        refuse = (ConflictReason.HELD_BY_ANOTHER_AGENT, "only the holder or an admin may transfer")
        if target is None:
            event = AgentTransferred(agent_id=agent.id, to=None)
            decision = await self._apply(cid, event, allowed, refuse, loaded=state)
        else:
            async with self._store.assignment_lock():
                load = (await self._store.agent_loads()).get(target.id, 0)
                event = AgentTransferred(
                    agent_id=agent.id, to=target.id, load=load, capacity=target.max_conversations
                )
                decision = await self._apply(cid, event, allowed, refuse, loaded=state)
        if decision.ignored is IgnoreReason.AT_CAPACITY:
            raise _conflict(
                ConflictReason.AT_CAPACITY, f"{to} already holds all they can", decision.state
            )
        if decision.changed:
            if to is None:
                metrics.REQUEUED.labels(cause="transfer").inc()
            else:
                metrics.ASSIGNMENTS.labels(how="transfer").inc()
            log.info("console.transferred", conversation_id=cid, to=to)
            if to is None:
                await self.assign_waiting()  # someone else may take it right away
        return decision

    async def resolve(
        self, agent: Principal, cid: ConversationId, outcome: str | None = None
    ) -> Decision:
        """End the human service: back to the bot (with its notice), times and outcome kept."""
        if agent.kind is not Kind.AGENT:
            metrics.FORBIDDEN.inc()
            raise WorkflowError(403, "only agents may resolve")
        state = await self._state(agent, cid)

        def allowed(s: ConversationState) -> bool:
            return s.mode is Mode.BOT or agent.admin or s.assignee in (None, agent.id)

        decision = await self._apply(
            cid,
            AgentResolved(agent_id=agent.id, outcome=outcome),
            allowed,
            (ConflictReason.HELD_BY_ANOTHER_AGENT, "another agent holds this conversation"),
            loaded=state,
        )
        for effect in decision.effects:
            if isinstance(effect, EmitEvent) and effect.kind is AgentEventKind.RESOLVED:
                await self._record_resolution(decision.state, effect)
        return decision

    async def _record_resolution(self, state: ConversationState, effect: EmitEvent) -> None:
        p = effect.payload
        resolution = ServiceResolution.model_validate(
            {
                "conversation_id": state.conversation_id,
                "phone_number_id": state.phone_number_id,
                "agent_id": p["agent"],
                "outcome": p["outcome"],
                "epoch": p["epoch"],
                "started_at": p["started_at"],
                "first_response_at": p["first_response_at"],
                "first_response_seconds": p["first_response_seconds"],
                "handling_seconds": p["handling_seconds"],
                "resolved_at": state.mode_changed_at or self.now(),
            }
        )
        try:
            fresh = await self._store.record_resolution(resolution)
        except Exception:
            # The decision is saved and announced (event.conversation.resolved): only the
            # store's copy is lost.
            log.exception("console.resolution_not_recorded", conversation_id=state.conversation_id)
            return
        if not fresh:
            return
        outcome = resolution.outcome
        label = "none" if outcome is None else outcome if outcome in KNOWN_OUTCOMES else "other"
        metrics.RESOLVED.labels(outcome=label).inc()
        metrics.HANDLING_SECONDS.observe(resolution.handling_seconds)
        if resolution.first_response_seconds is not None:
            metrics.FIRST_RESPONSE_SECONDS.observe(resolution.first_response_seconds)

    # --- notes ---------------------------------------------------------------------------

    async def add_note(
        self,
        principal: Principal,
        cid: ConversationId,
        text: str,
        *,
        idempotency_key: str | None = None,
    ) -> StoredNote:
        """Store a private note (author `note`) and announce it to agents; never sent."""
        if not text.strip():
            raise WorkflowError(422, "a note needs text")
        state = await self._state(principal, cid)
        note = await self._store.add_note(
            NewNote(
                conversation_id=cid,
                phone_number_id=state.phone_number_id,
                agent_id=principal.id,
                body=text,
                idempotency_key=f"note:{principal.id}:{idempotency_key or uuid.uuid4().hex}",
                at=self.now(),
            )
        )
        if note.created_now:
            metrics.NOTES.inc()
        event = NoteAdded(
            conversation_id=cid,
            phone_number_id=state.phone_number_id,
            wa_id=state.wa_id,
            at=note.at,
            note_id=note.id,
            agent=principal.id,
            body=note.body,
        )
        try:
            await self._console.broker.publish_raw(
                "baton.events",
                event.TYPE,
                event.model_dump_json().encode(),
                type=event.TYPE,
                message_id=f"note:{note.id}",
                mandatory=False,
            )
        except (BrokerUnavailable, PublishFailed) as exc:
            # Stored: the history shows it; only the live event is missed.
            log.warning("console.note_event_lost", conversation_id=cid, error=str(exc))
        return note

    # --- presence ------------------------------------------------------------------------

    async def set_presence(self, agent: Principal, status: Presence) -> PresenceChange:
        """Online, away or offline; offline puts what the agent holds back in the queue."""
        if agent.kind is not Kind.AGENT:
            metrics.FORBIDDEN.inc()
            raise WorkflowError(403, "only agents have a presence")
        now = self.now()
        stored = {p.agent_id: p for p in await self._store.agent_presences()}
        was = effective_status(stored.get(agent.id), now, self.timeout)
        await self._store.set_presence(agent.id, status, now)
        _beats[(id(self._store), agent.id)] = time.monotonic()
        change = PresenceChange(agent_id=agent.id, status=status, previous=was)
        if was is not status:
            await self._announce(change, cause="manual")
        if status is Presence.OFFLINE:
            await self.requeue(agent.id)
        await self.assign_waiting()
        return change

    async def touch(self, agent: Principal) -> None:
        """A heartbeat (an API call, an open event stream); written at most every few seconds."""
        if agent.kind is not Kind.AGENT:
            return
        key = (id(self._store), agent.id)
        now = time.monotonic()
        if now - _beats.get(key, -HEARTBEAT_WRITE_SECONDS) < HEARTBEAT_WRITE_SECONDS:
            return
        _beats[key] = now
        try:
            await self._store.heartbeat(agent.id, self.now())
        except Exception as exc:  # a missed heartbeat is not worth failing the request
            log.warning("console.heartbeat_failed", agent=agent.id, error=repr(exc))

    async def beating(
        self, agent: Principal, stream: AsyncIterator[bytes]
    ) -> AsyncGenerator[bytes, None]:
        """`stream`, touching the agent's heartbeat as it flows (keep-alives included)."""
        async for chunk in stream:
            await self.touch(agent)
            yield chunk

    async def agent_views(self) -> list[tuple[Principal, Presence, AgentPresence | None]]:
        now = self.now()
        stored = {p.agent_id: p for p in await self._store.agent_presences()}
        return [
            (a, effective_status(stored.get(a.id), now, self.timeout), stored.get(a.id))
            for a in self.agents_configured()
        ]

    async def requeue(self, agent_id: str) -> int:
        """Put every conversation the agent holds back in the queue; returns how many."""
        moved = 0
        for cid in await self._store.held_conversations(agent_id):
            try:
                decision = await self._conversations.apply(cid, AgentWentOffline(agent_id=agent_id))
            except (UnknownConversation, ConcurrentUpdate):
                log.warning("console.requeue_failed", conversation_id=cid, agent=agent_id)
                continue
            if decision.changed:
                moved += 1
                metrics.REQUEUED.labels(cause="offline").inc()
        if moved:
            log.info("console.requeued", agent=agent_id, conversations=moved)
        return moved

    async def _announce(self, change: PresenceChange, *, cause: str) -> None:
        event = AgentPresenceChanged(
            agent=change.agent_id,
            status=change.status.value,
            previous=change.previous.value if change.previous is not None else None,
            cause=cause,
            at=self.now(),
        )
        try:
            await self._console.broker.publish_event(event)
        except (BrokerUnavailable, PublishFailed) as exc:
            log.warning("console.presence_event_lost", agent=change.agent_id, error=str(exc))

    # --- the sweep: stale presences, auto-assignment -------------------------------------

    async def expire_presence(self) -> int:
        """Agents whose heartbeats stopped go offline and their conversations back to the queue."""
        changes = await self._store.expire_presence(self.now(), timeout=self.timeout)
        for change in changes:
            log.info("console.presence_expired", agent=change.agent_id)
            await self._announce(change, cause="heartbeat_timeout")
            await self.requeue(change.agent_id)
        return len(changes)

    async def assign_waiting(self) -> int:
        """One auto-assignment pass over the numbers that opted in; returns how many it gave."""
        numbers = self._conversations.numbers
        auto = sorted(pnid for pnid, n in numbers.numbers.items() if n.assignment == "auto")
        if not auto:
            return 0
        given = 0
        async with self._store.assignment_lock():
            now = self.now()
            stored = {p.agent_id: p for p in await self._store.agent_presences()}
            online = [
                a
                for a in self.agents_configured()
                if effective_status(stored.get(a.id), now, self.timeout) is Presence.ONLINE
            ]
            queue = await self._store.unassigned_queue(auto, limit=QUEUE_BATCH)
            metrics.QUEUE_WAITING.set(len(queue))
            if not online or not queue:
                return 0
            loads = await self._store.agent_loads()
            pool = {
                a.id: Candidate(
                    agent_id=a.id,
                    load=loads.get(a.id, 0),
                    capacity=a.max_conversations,
                    last_assigned_at=stored[a.id].last_assigned_at,
                )
                for a in online
            }
            scopes = {a.id: a for a in online}
            for queued in queue:
                eligible = [
                    c for c in pool.values() if scopes[c.agent_id].may_see(queued.phone_number_id)
                ]
                pick = pick_agent(eligible)
                if pick is None:
                    continue
                event = AgentAssigned(
                    agent_id=pick.agent_id, load=pick.load, capacity=pick.capacity
                )
                try:
                    decision = await self._conversations.apply(queued.conversation_id, event)
                except (UnknownConversation, ConcurrentUpdate):
                    continue
                if not decision.changed:
                    continue
                stamp = self.now()
                pool[pick.agent_id] = assigned(pick, stamp)
                await self._store.mark_assigned(pick.agent_id, stamp)
                given += 1
                metrics.ASSIGNMENTS.labels(how="auto").inc()
                if queued.waiting_since is not None:
                    metrics.QUEUE_WAIT_SECONDS.observe(
                        (stamp - queued.waiting_since).total_seconds()
                    )
                log.info(
                    "console.auto_assigned",
                    conversation_id=queued.conversation_id,
                    agent=pick.agent_id,
                    load=pick.load + 1,
                )
            metrics.QUEUE_WAITING.set(len(queue) - given)
        return given

    async def sweep(self) -> None:
        """Expire stale presences, assign what waits, refresh the presence gauges."""
        await self.expire_presence()
        await self.assign_waiting()
        counts = dict.fromkeys(Presence, 0)
        for _, status, _ in await self.agent_views():
            counts[status] += 1
        for status, count in counts.items():
            metrics.AGENTS.labels(status=status.value).set(count)


async def run_sweeper(workflow: Workflow, interval: float, stop: asyncio.Event) -> None:
    """Sweep every `interval` seconds until `stop`; a failed sweep is logged and retried."""
    while not stop.is_set():
        try:
            await workflow.sweep()
        except Exception:
            log.exception("console.workflow_sweep_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
