"""The conversation shell: load a conversation's handoff state, decide, save, perform effects.

Every change of who holds a conversation goes through `Conversations` (router and console
alike); the rules themselves are the pure `baton.handoff.decide`.

    conversations = Conversations(store, broker, numbers, clock=utcnow)

`await conversations.apply(conversation_id, event, *, precondition=None, loaded=None) -> Decision`
  1. loads the conversation's `ConversationState` (`UnknownConversation`, a LookupError, if none);
     `loaded`, a state the caller just read from the store (the router, with the message it
     stored), stands in for the first load only: a conflict reloads, as always;
  2. if `precondition(state)` is False, raises `PreconditionFailed(state)`; nothing is saved;
  3. `decide(state, event, now=clock(), policy=self.policy(state.phone_number_id))`;
  4. saves the new state with a compare-and-set on `state.version`. The same transaction
     replaces the conversation's timers (when they moved), queues the effects to publish (transactional outbox)
     and marks the event's message (`CustomerWrote`/`EchoReceived` wamid) as routed. If another
     process saved first it starts again at 1 (so the precondition holds when the save commits),
     at most `max_attempts` times, then raises `ConcurrentUpdate`;
  5. publishes the queued effects (publisher confirms), then deletes them. A failed publish is
     logged and left to the router's relay sweep; message ids are deterministic, so a
     republished message is deduplicated downstream;
  6. returns the `Decision`: `decision.state` is the state now stored; `decision.changed` False
     means nothing changed and `decision.ignored` says why (`IgnoreReason.ALREADY_ASSIGNED`:
     this agent already holds it; `ALREADY_BOT`: release of a bot conversation; ...).

`await conversations.state(conversation_id)` reads the state without deciding (None if unknown);
`conversations.policy(phone_number_id)` is the number's `Policy`, built from `NumberSettings`.

The agent API's takeover, so that of two agents taking over at once exactly one wins:

    try:
        decision = await conversations.apply(cid, AgentTookOver(agent_id=a),
                                              precondition=not_held_by_other(a))
    except PreconditionFailed:  # another agent holds it → 409

Effects of a decision, published after the save:
- `AskBot` → command `bot.ask` (`baton.messages.AskBot`, message id = request id);
- `SendNotice` → command `outbox.send_text` (`SendText`, author `system`, the effect's
  idempotency key);
- `EmitEvent` → an event on `baton.events` (below); `SkipNotice` → event `notice_skipped`;
- `CancelBotRequest` → nothing to publish (the outbox fence drops the request's replies):
  logged and seen by observers; `ScheduleTimer`/`CancelTimer` → saved with the state.

Conversation events on `baton.events` (routing key = TYPE; classes in `baton.messages`). Each
carries `conversation_id`, `phone_number_id`, `wa_id` and `at` (the deciding process's clock):
- `event.conversation.mode_changed` (`ModeChanged`): from_mode, to_mode, epoch, cause (a
  `baton.handoff.Cause`), actor, assignee, reason, summary, paused_until;
- `event.conversation.assignee_changed` (`AssigneeChanged`): assignee, previous, actor;
- `event.conversation.customer_waiting` (`CustomerWaiting`): wamid, mode, assignee,
  waiting_since — a customer message while a human (agent or owner) holds it;
- `event.conversation.notice_skipped` (`NoticeSkipped`): kind, reason;
- `event.conversation.resolved` (`ConversationResolved`): agent, outcome, epoch, started_at,
  first_response_at, first_response_seconds, handling_seconds (issue 12's resolve);
- published by the router for every new live message, any mode:
  `event.conversation.message_received` (`MessageReceived`): wamid, author (customer | app),
  type ("command" for an owner command echo), body, sent_at, mode;
- published by the router for each new delivery status:
  `event.conversation.message_status` (`MessageStatusChanged`): wamid, status, error_code.
- published after the save when a conversation leaves the bot (any cause):
  `event.conversation.handoff_summary` (`HandoffSummarized`): epoch, reason, topics,
  order_ids, emails, phones, text — also kept in the store (`Store.handoff_summary`).
The outbox adds `event.message_sent`, `event.send_failed` and `event.reply_fenced`.

For the router's sweeper: `fire_timer(conversation_id, kind)` (a local wake-up),
`fire_due_timers()` and `relay_pending()`. Observers (`DecisionObserver`) see every decision
after it was saved (metrics, local timer wake-ups).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, assert_never

import structlog

from baton.broker import Broker, BrokerUnavailable, PublishFailed
from baton.broker.topology import COMMANDS, EVENTS
from baton.handoff import (
    AgentEventKind,
    AskBot,
    CancelBotRequest,
    CancelTimer,
    ConversationState,
    CustomerWrote,
    Decision,
    EchoReceived,
    Effect,
    EmitEvent,
    Event,
    IgnoreReason,
    NoticeKind,
    Policy,
    ScheduleTimer,
    SendNotice,
    SkipNotice,
    TimerFired,
    TimerKind,
    decide,
    language_from_code,
    next_timers,
)
from baton.handoff_summary import summarize_handoff
from baton.messages import AskBot as AskBotCommand
from baton.messages import (
    AssigneeChanged,
    ConversationResolved,
    CustomerWaiting,
    HandoffSummarized,
    Message,
    ModeChanged,
    NoticeSkipped,
    SendText,
    Template,
    utcnow,
)
from baton.settings import NumbersConfig, NumberSettings
from baton.store.handoff_records import DueTimer, OutgoingMessage, PendingEffect
from baton.store.port import Store
from baton.types import Author, ConversationId, Mode, PhoneNumberId

log = structlog.get_logger()

Clock = Callable[[], datetime]
Precondition = Callable[[ConversationState], bool]


class UnknownConversation(LookupError):
    """No conversation has this id."""


class ConcurrentUpdate(RuntimeError):
    """Other processes kept saving the conversation first; the event was not applied."""


class PreconditionFailed(Exception):
    """The caller's precondition did not hold on the conversation's current state."""

    def __init__(self, state: ConversationState) -> None:
        super().__init__(f"precondition failed for conversation {state.conversation_id}")
        self.state = state


class DecisionObserver(Protocol):
    """Sees each decision once it is saved (or found to change nothing)."""

    def observe(
        self, before: ConversationState, event: Event, decision: Decision, now: datetime
    ) -> None: ...


def not_held_by_other(agent_id: str) -> Precondition:
    """Precondition: no other agent holds the conversation (for a takeover)."""
    return lambda s: not (s.mode is Mode.HUMAN and s.assignee not in (None, agent_id))


def held_by(agent_id: str) -> Precondition:
    """Precondition: this agent holds the conversation (for sending as that agent)."""
    return lambda s: s.mode is Mode.HUMAN and s.assignee == agent_id


def policy_for(number: NumberSettings) -> Policy:
    """The handoff policy of a configured number (raises ValueError if inconsistent)."""
    texts = {
        kind: text
        for kind, text in (
            (NoticeKind.TAKEOVER, number.notice_takeover),
            (NoticeKind.BACK_TO_BOT, number.notice_back_to_bot),
            (NoticeKind.BUSY, number.notice_busy),
        )
        if text is not None
    }
    pause = timedelta(seconds=number.pause_seconds)
    return Policy(
        debounce_quiet=timedelta(seconds=number.debounce_quiet_seconds),
        debounce_cap=timedelta(seconds=number.debounce_cap_seconds),
        pause_window=pause,
        max_pause=max(Policy().max_pause, pause),
        human_inactivity_timeout=timedelta(seconds=number.human_inactivity_seconds),
        ghost_fallback_delay=timedelta(seconds=number.ghost_fallback_seconds),
        notices_enabled=number.notices_enabled,
        language=language_from_code(number.language),
        notice_texts=texts,
        bot_prefix=number.bot_prefix,
        resume_words=number.resume_commands,
        pause_words=(number.pause_command,),
        busy_template=(
            Template(name=number.busy_template, language=number.busy_template_language)
            if number.busy_template
            else None
        ),
    )


class Conversations:
    """Applies handoff events to stored conversations; see the module docstring."""

    def __init__(
        self,
        store: Store,
        broker: Broker,
        numbers: NumbersConfig,
        clock: Clock = utcnow,
        *,
        observers: Sequence[DecisionObserver] = (),
        max_attempts: int = 10,
        relay_lease: timedelta = timedelta(seconds=15),
        timer_lease: timedelta = timedelta(seconds=10),
    ) -> None:
        self._store = store
        self._broker = broker
        self._numbers = numbers
        self._clock = clock
        self._observers = list(observers)
        self._max_attempts = max_attempts
        self._relay_lease = relay_lease
        self._timer_lease = timer_lease
        # Built up front: a misconfigured number fails at startup, not on its first message.
        self._policies = {pnid: policy_for(s) for pnid, s in numbers.numbers.items()}

    @property
    def numbers(self) -> NumbersConfig:
        """The per-number settings this shell decides with."""
        return self._numbers

    def add_observer(self, observer: DecisionObserver) -> None:
        self._observers.append(observer)

    def now(self) -> datetime:
        return self._clock()

    def policy(self, phone_number_id: PhoneNumberId) -> Policy:
        """This number's handoff policy (the defaults for a number not configured)."""
        policy = self._policies.get(phone_number_id)
        if policy is None:
            policy = self._policies[phone_number_id] = policy_for(
                self._numbers.get(phone_number_id)
            )
        return policy

    async def state(self, conversation_id: ConversationId) -> ConversationState | None:
        """The stored state, without deciding anything."""
        return await self._store.load_conversation_state(conversation_id)

    async def apply(
        self,
        conversation_id: ConversationId,
        event: Event,
        *,
        precondition: Precondition | None = None,
        loaded: ConversationState | None = None,
    ) -> Decision:
        """Decide `event` on the stored state, save it (compare-and-set), publish the effects."""
        if loaded is not None and loaded.conversation_id != conversation_id:
            raise ValueError(f"loaded state is of conversation {loaded.conversation_id}")
        for attempt in range(self._max_attempts):
            if attempt == 0 and loaded is not None:
                before: ConversationState | None = loaded
            else:
                before = await self._store.load_conversation_state(conversation_id)
            if before is None:
                raise UnknownConversation(conversation_id)
            if precondition is not None and not precondition(before):
                raise PreconditionFailed(before)
            now = self._clock()
            policy = self.policy(before.phone_number_id)
            decision = decide(before, event, now, policy)
            routed = _routed_wamids(event)
            if not decision.changed and not decision.effects:
                if routed:
                    await self._store.mark_routed(before.phone_number_id, routed)
                self._observe(before, event, decision, now)
                return decision
            # The stored timers are derived from the state; rewrite them only when they moved.
            moved = any(isinstance(e, ScheduleTimer | CancelTimer) for e in decision.effects)
            pending = await self._store.save_conversation_state(
                decision.state,
                expected_version=before.version,
                timers=next_timers(decision.state, policy) if moved else None,
                effects=outgoing(decision.state, decision.effects, now),
                relay_after=now + self._relay_lease,
                routed=routed,
            )
            if pending is None:  # someone else saved first: decide again on their state
                log.debug("conversation.conflict", conversation_id=conversation_id, attempt=attempt)
                await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
                continue
            _log_decision(before, event, decision)
            self._observe(before, event, decision, now)
            await self._publish(pending)
            if before.mode is Mode.BOT and decision.state.mode is not Mode.BOT:
                await self._summarize_handoff(decision)
            return decision
        raise ConcurrentUpdate(
            f"conversation {conversation_id}: {self._max_attempts} conflicting saves in a row"
        )

    async def _summarize_handoff(self, decision: Decision) -> None:
        """Store and announce the handoff's structured summary (a failure only loses it)."""
        state = decision.state
        cause = next(
            (
                str(e.payload.get("cause"))
                for e in decision.effects
                if isinstance(e, EmitEvent) and e.kind is AgentEventKind.MODE_CHANGED
            ),
            "handoff",
        )
        try:
            recent = await self._store.recent_messages(state.conversation_id, limit=20)
            summary = summarize_handoff(
                cause=cause,
                reason=state.handoff_reason,
                bot_summary=state.handoff_summary,
                customer_texts=[
                    m.body for m in recent if m.author is Author.CUSTOMER and not m.imported
                ],
            )
            fresh = await self._store.save_handoff_summary(
                state.conversation_id, state.epoch, summary.model_dump(mode="json")
            )
            if not fresh:
                return
            event = HandoffSummarized(
                conversation_id=state.conversation_id,
                phone_number_id=state.phone_number_id,
                wa_id=state.wa_id,
                at=self._clock(),
                epoch=state.epoch,
                reason=summary.reason,
                topics=summary.topics,
                order_ids=summary.order_ids,
                emails=summary.emails,
                phones=summary.phones,
                text=summary.text,
            )
            await self._broker.publish_raw(
                EVENTS,
                event.TYPE,
                event.model_dump_json().encode(),
                type=event.TYPE,
                message_id=f"summary:{state.conversation_id}:{state.epoch}",
                mandatory=False,
            )
        except Exception:
            log.warning(
                "conversation.summary_failed", conversation_id=state.conversation_id, exc_info=True
            )

    # --- timers and the relay (the router's sweeper) -------------------------------------

    async def fire_timer(self, conversation_id: ConversationId, kind: TimerKind) -> Decision | None:
        """Fire this timer if it is due and no other process holds it; None if not."""
        now = self._clock()
        timer = await self._store.claim_timer(
            conversation_id, kind, now, lease_until=now + self._timer_lease
        )
        return None if timer is None else await self._fire(timer)

    async def fire_due_timers(self, *, limit: int = 100) -> int:
        """Claim and fire every due timer (up to `limit`); returns how many were claimed."""
        now = self._clock()
        due = await self._store.claim_due_timers(
            now, lease_until=now + self._timer_lease, limit=limit
        )
        for timer in due:
            try:
                await self._fire(timer)
            except Exception:
                # Its lease expires and a sweep fires it again.
                log.exception(
                    "conversation.timer_failed",
                    conversation_id=timer.conversation_id,
                    kind=timer.kind.value,
                )
        return len(due)

    async def relay_pending(self, *, limit: int = 100) -> int:
        """Publish effects a crashed or disconnected process left queued; returns how many."""
        now = self._clock()
        pending = await self._store.claim_pending_effects(
            now, lease_until=now + self._relay_lease, limit=limit
        )
        if pending:
            log.info("conversation.relaying", count=len(pending))
        return await self._publish(pending)

    async def _fire(self, timer: DueTimer) -> Decision:
        event = TimerFired(kind=timer.kind, due_at=timer.due_at)
        decision = await self.apply(timer.conversation_id, event)
        if decision.ignored in (IgnoreReason.TIMER_NOT_ARMED, IgnoreReason.TIMER_NOT_DUE):
            # The stored timer disagrees with the state (e.g. the policy changed): re-derive it.
            state = decision.state
            await self._store.sync_timers(
                state.conversation_id,
                version=state.version,
                timers=next_timers(state, self.policy(state.phone_number_id)),
            )
        return decision

    # --- effects -------------------------------------------------------------------------

    async def _publish(self, pending: Sequence[PendingEffect]) -> int:
        published: list[int] = []
        for item in pending:
            try:
                await self._broker.publish_raw(
                    item.exchange,
                    item.routing_key,
                    item.body,
                    type=item.type,
                    message_id=item.message_id,
                    mandatory=item.exchange != EVENTS,
                )
            except (PublishFailed, BrokerUnavailable) as exc:
                # Keep the rest queued in order; the relay sweep publishes them later.
                log.warning(
                    "conversation.publish_deferred",
                    conversation_id=item.conversation_id,
                    message_type=item.type,
                    error=str(exc),
                )
                break
            published.append(item.id)
        if published:
            try:
                await self._store.delete_pending_effects(published)
            except Exception:
                # Published already: at worst the relay publishes them again (deduplicated).
                log.warning("conversation.relay_cleanup_failed", exc_info=True)
        return len(published)

    def _observe(
        self, before: ConversationState, event: Event, decision: Decision, now: datetime
    ) -> None:
        for observer in self._observers:
            try:
                observer.observe(before, event, decision, now)
            except Exception:
                log.exception("conversation.observer_failed")


def outgoing(
    state: ConversationState, effects: Sequence[Effect], now: datetime
) -> list[OutgoingMessage]:
    """The broker messages a decision's effects stand for, with deterministic message ids."""
    messages: list[OutgoingMessage] = []
    for index, effect in enumerate(effects):
        message_id = f"{state.conversation_id}:{state.version}:{index}"
        message = _message_for(state, effect, now)
        if message is None:
            continue
        if isinstance(effect, AskBot):
            message_id = effect.request_id
        elif isinstance(effect, SendNotice):
            message_id = effect.idempotency_key
        exchange = EVENTS if message.TYPE.startswith("event.") else COMMANDS
        messages.append(
            OutgoingMessage(
                exchange=exchange,
                routing_key=message.TYPE,
                type=message.TYPE,
                message_id=message_id,
                body=message.model_dump_json().encode(),
            )
        )
    return messages


def _message_for(state: ConversationState, effect: Effect, now: datetime) -> Message | None:
    ids = {
        "conversation_id": state.conversation_id,
        "phone_number_id": state.phone_number_id,
        "wa_id": state.wa_id,
    }
    match effect:
        case AskBot():
            return AskBotCommand(
                request_id=effect.request_id,
                epoch=effect.epoch,
                messages=effect.messages,
                **ids,
            )
        case SendNotice():
            return SendText(
                idempotency_key=effect.idempotency_key,
                conversation_id=state.conversation_id,
                phone_number_id=state.phone_number_id,
                to=state.wa_id,
                body=effect.text,
                author=Author.SYSTEM,
                template=effect.template,
            )
        case SkipNotice():
            return NoticeSkipped(kind=effect.kind.value, reason=effect.reason.value, at=now, **ids)
        case EmitEvent():
            return _agent_event(effect, {**ids, "at": now})
        case CancelBotRequest() | ScheduleTimer() | CancelTimer():
            return None
        case _:
            assert_never(effect)


def _agent_event(effect: EmitEvent, base: dict[str, object]) -> Message:
    p = effect.payload
    match effect.kind:
        case AgentEventKind.MODE_CHANGED:
            return ModeChanged.model_validate(
                base
                | {
                    "from_mode": p["from"],
                    "to_mode": p["to"],
                    **{
                        k: p.get(k)
                        for k in (
                            "epoch",
                            "cause",
                            "actor",
                            "assignee",
                            "reason",
                            "summary",
                            "paused_until",
                        )
                    },
                }
            )
        case AgentEventKind.ASSIGNEE_CHANGED:
            return AssigneeChanged.model_validate(
                base | {k: p.get(k) for k in ("assignee", "previous", "actor", "cause")}
            )
        case AgentEventKind.RESOLVED:
            return ConversationResolved.model_validate(base | dict(p))
        case AgentEventKind.CUSTOMER_WAITING:
            return CustomerWaiting.model_validate(
                base | {k: p.get(k) for k in ("wamid", "mode", "assignee", "waiting_since")}
            )
        case _:
            assert_never(effect.kind)


def _routed_wamids(event: Event) -> tuple[str, ...]:
    return (event.wamid,) if isinstance(event, CustomerWrote | EchoReceived) else ()


def _log_decision(before: ConversationState, event: Event, decision: Decision) -> None:
    after = decision.state
    log.info(
        "conversation.decided",
        conversation_id=after.conversation_id,
        handoff_event=type(event).__name__,
        mode=after.mode.value,
        previous_mode=before.mode.value,
        epoch=after.epoch,
        version=after.version,
    )
    for effect in decision.effects:
        if isinstance(effect, CancelBotRequest):
            log.info(
                "conversation.bot_request_cancelled",
                conversation_id=after.conversation_id,
                request_id=effect.request_id,
                reason=effect.reason.value,
            )
        elif isinstance(effect, SkipNotice):
            log.info(
                "conversation.notice_skipped",
                conversation_id=after.conversation_id,
                kind=effect.kind.value,
                reason=effect.reason.value,
            )
