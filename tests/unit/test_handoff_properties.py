"""Property tests: random event sequences with a non-decreasing clock keep every invariant.

A Hypothesis state machine plays customers, the owner's phone, agents, the bot and the
sweeper against `decide`. Beside it, an independent model (its own command table, its own
idea of which messages are answerable, which request is current, when the 24 h window
closes) checks after every step:
- the epoch moves by exactly one on every mode change, and never otherwise;
- no AskBot unless the bot holds the conversation (after the decision), under its epoch;
- `#bot`/`#resume` always ends in bot mode; an echo never shortens a pause;
- the version moves by one exactly when the state changes; ignored events change nothing;
- no message is asked twice across non-superseded requests; at most one request in flight;
- no customer message written while the bot holds it is lost: it is buffered, in flight, or
  was asked, unless a human took over; none written to a human ever reaches the bot;
- exactly the model's current request passes the outbox fence, and no other;
- the timer effects, applied to a table, always equal `next_timers(state)`;
- notices only inside the 24 h window; takeover and busy at most once per handoff;
- the workflow (issue 12): auto-assignment and transfers never give a full agent a
  conversation, never change the mode or epoch and never message the customer; an agent
  going offline leaves the queue with the customer's original wait; resolve always ends in
  bot mode; the service's start and first response are blank in bot mode and ordered.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from baton.handoff import (
    AgentAssigned,
    AgentEventKind,
    AgentReleased,
    AgentResolved,
    AgentSent,
    AgentTookOver,
    AgentTransferred,
    AgentWentOffline,
    AskBot,
    BotReplied,
    BotRequestedHandoff,
    CancelBotRequest,
    CancelReason,
    CancelTimer,
    ConversationState,
    CustomerWrote,
    Decision,
    EchoReceived,
    EmitEvent,
    Event,
    HistoryMessageImported,
    IgnoreReason,
    NoticeKind,
    Policy,
    ScheduleTimer,
    SendNotice,
    TimerFired,
    TimerKind,
    decide,
    may_send_bot_reply,
    new_conversation,
    next_timers,
    timer_due,
)
from baton.handoff.state import ANSWERED_REQUESTS_KEPT
from baton.types import Mode
from tests.unit.test_handoff_support import T0

POLICIES = st.builds(
    Policy,
    debounce_quiet=st.sampled_from([timedelta(seconds=1), timedelta(milliseconds=300)]),
    debounce_cap=st.sampled_from([timedelta(seconds=5), timedelta(seconds=2)]),
    pause_window=st.sampled_from([timedelta(hours=2), timedelta(minutes=10)]),
    human_inactivity_timeout=st.sampled_from([timedelta(minutes=30), timedelta(minutes=3)]),
    ghost_fallback_delay=st.sampled_from([timedelta(minutes=15), timedelta(minutes=1)]),
    notices_enabled=st.booleans(),
)
STEPS = st.sampled_from([0, 0, 0.1, 0.3, 0.5, 0.9, 1, 2, 5, 60, 600, 900, 1800, 7200, 90000])
CUSTOMER_TYPES = st.sampled_from(["text", "text", "image", "reaction", "unsupported"])
ANSWERABLE = {"text", "image", "unsupported"}  # unsupported: the bot says it cannot read it

# The model's own reading of what the owner typed: content, resume, or pause for how long.
CONTENT, RESUME = "content", "resume"
ECHOES: dict[str, str | timedelta | None] = {
    "Oi, aqui é a Ana": CONTENT,
    "#bot please": CONTENT,
    "#pause later": CONTENT,
    "#bot": RESUME,
    "#resume": RESUME,
    "#RESUME": RESUME,
    "#pause": None,  # the policy's pause window
    "#pause 3h": timedelta(hours=3),
    "#pause 30m": timedelta(minutes=30),
}
WINDOW = timedelta(hours=24)


def without_version(state: ConversationState) -> ConversationState:
    return state.model_copy(update={"version": 0})


class HandoffMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = new_conversation(7, "900000000000001", "5511999990000")
        self.now = T0
        self.policy = Policy()
        self.humans = True
        self.count = 0
        self.timers: dict[TimerKind, datetime] = {}  # what the shell would have stored
        self.asks: dict[str, AskBot] = {}  # every AskBot ever emitted
        self.current: str | None = None  # the newest request whose replies may be sent
        self.answered: list[str] = []  # earlier requests of this epoch the bot finished
        self.asked: set[str] = set()  # wamids in AskBots that were not superseded
        self.owed: set[str] = set()  # written while the bot held it, since the last mode change
        self.human_only: set[str] = set()  # never the bot's to answer
        self.handled_through: datetime | None = None  # newest message a human stretch covered
        self.window_until: datetime | None = None  # the customer service window
        self.takeovers_told = 0  # in this handoff
        self.busy_sent = 0  # in this handoff

    @initialize(policy=POLICIES, humans=st.booleans())
    def choose_world(self, policy: Policy, humans: bool) -> None:
        self.policy = policy
        # Half the runs keep humans away, so long bot-only stretches (bursts, supersedes,
        # replies) get explored as much as the handoffs.
        self.humans = humans

    # --- customers and time ----------------------------------------------------------

    @rule(seconds=STEPS)
    def time_passes(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(type=CUSTOMER_TYPES, age=st.sampled_from([0, 0, 0, 1, 30, 3600, -5]))
    def customer_writes(self, type: str, age: int) -> None:
        self._customer_writes(type, age)

    @rule(gaps=st.lists(st.sampled_from([0, 0.1, 0.4, 0.9, 1.5, 3]), min_size=2, max_size=6))
    def customer_bursts(self, gaps: list[float]) -> None:
        for gap in gaps:
            self.now += timedelta(seconds=gap)
            self._customer_writes("text", 0)

    @precondition(lambda self: bool(self._lane()))
    @rule(data=st.data())
    def whatsapp_redelivers(self, data: st.DataObject) -> None:
        """A message still owed by the bot arrives again (the shell's dedupe missed it)."""
        again = data.draw(st.sampled_from(sorted(self._lane().values(), key=lambda c: c.wamid)))
        decision = self._decide(again)
        assert decision.ignored is IgnoreReason.DUPLICATE_MESSAGE

    # --- the owner, agents and the bot -----------------------------------------------

    @precondition(lambda self: self.humans)
    @rule(text=st.sampled_from(sorted(ECHOES)), from_api=st.booleans())
    def business_echo(self, text: str, from_api: bool) -> None:
        before = self.state
        self._decide(
            EchoReceived(wamid=self._new_id("E"), timestamp=self.now, text=text, from_api=from_api)
        )
        after = self.state
        meaning = ECHOES[text]
        if from_api:
            assert after == before, "our own API send is never a takeover"
        elif meaning == RESUME:
            assert after.mode is Mode.BOT, "#bot always returns to bot"
        elif meaning == CONTENT:
            assert after.mode is Mode.PAUSED
            assert after.paused_until is not None
            assert after.paused_until >= self.now + self.policy.pause_window
            if before.mode is Mode.PAUSED:
                assert before.paused_until is not None
                assert after.paused_until >= before.paused_until, "an echo never shortens a pause"
        else:
            assert isinstance(meaning, timedelta | None)
            assert after.mode is Mode.PAUSED
            assert after.paused_until == self.now + (meaning or self.policy.pause_window)

    @precondition(lambda self: self.humans)
    @rule(agent=st.sampled_from(["agent-1", "agent-2"]))
    def agent_takes_over(self, agent: str) -> None:
        self._decide(AgentTookOver(agent_id=agent))
        assert self.state.mode is Mode.HUMAN
        assert self.state.assignee == agent

    @rule(agent=st.sampled_from(["agent-1", "agent-2"]))
    def agent_releases(self, agent: str) -> None:
        self._decide(AgentReleased(agent_id=agent))
        assert self.state.mode is Mode.BOT

    @precondition(lambda self: self.humans)
    @rule(agent=st.sampled_from(["agent-1", "agent-2"]))
    def agent_sends(self, agent: str) -> None:
        self._decide(AgentSent(agent_id=agent))
        assert self.state.mode is Mode.HUMAN
        assert self.state.waiting_since is None

    @precondition(lambda self: self.humans)
    @rule(epoch_offset=st.sampled_from([0, 0, -1, 1]))
    def bot_asks_for_a_human(self, epoch_offset: int) -> None:
        before = self.state
        decision = self._decide(BotRequestedHandoff(epoch=before.epoch + epoch_offset, reason="r"))
        if before.mode is Mode.BOT and epoch_offset == 0:
            assert self.state.mode is Mode.HUMAN and self.state.assignee is None
        else:
            assert decision.ignored is not None

    @precondition(lambda self: self.humans)
    @rule(
        agent=st.sampled_from(["agent-1", "agent-2"]),
        load=st.sampled_from([0, 1, 4, 5]),
        capacity=st.sampled_from([1, 5]),
    )
    def auto_assignment(self, agent: str, load: int, capacity: int) -> None:
        before = self.state
        decision = self._decide(AgentAssigned(agent_id=agent, load=load, capacity=capacity))
        self._check_assignment_only(before, decision)
        if load >= capacity or before.mode is not Mode.HUMAN or before.assignee is not None:
            assert decision.ignored is not None, "a full agent, or a held conversation, got it"
        else:
            assert self.state.assignee == agent

    @precondition(lambda self: self.humans)
    @rule(
        frm=st.sampled_from(["agent-1", "agent-2"]),
        to=st.sampled_from(["agent-1", "agent-2", None]),
        full=st.booleans(),
    )
    def agent_transfers(self, frm: str, to: str | None, full: bool) -> None:
        before = self.state
        event = AgentTransferred(agent_id=frm, to=to, load=5 if full else 0, capacity=5)
        decision = self._decide(event)
        self._check_assignment_only(before, decision)
        if before.mode is not Mode.HUMAN or to == before.assignee or (to is not None and full):
            assert decision.ignored is not None
        else:
            assert self.state.assignee == to
            if to is None:
                assert self.state.waiting_since == (before.waiting_since or self.now)

    @rule(agent=st.sampled_from(["agent-1", "agent-2"]))
    def agent_goes_offline(self, agent: str) -> None:
        before = self.state
        decision = self._decide(AgentWentOffline(agent_id=agent))
        self._check_assignment_only(before, decision)
        if before.mode is Mode.HUMAN and before.assignee == agent:
            assert self.state.assignee is None
            assert self.state.waiting_since == (before.waiting_since or self.now)
        else:
            assert decision.ignored is not None

    @rule(agent=st.sampled_from(["agent-1", "agent-2"]), outcome=st.sampled_from([None, "ok"]))
    def agent_resolves(self, agent: str, outcome: str | None) -> None:
        before = self.state
        decision = self._decide(AgentResolved(agent_id=agent, outcome=outcome))
        assert self.state.mode is Mode.BOT
        resolved = [
            e
            for e in decision.effects
            if isinstance(e, EmitEvent) and e.kind is AgentEventKind.RESOLVED
        ]
        assert len(resolved) == (0 if before.mode is Mode.BOT else 1)
        for event in resolved:
            handling = event.payload["handling_seconds"]
            assert isinstance(handling, int) and handling >= 0
            first = event.payload["first_response_seconds"]
            assert first is None or (isinstance(first, int) and 0 <= first <= handling)

    @rule(replies=st.sampled_from([None, 0, 1]))
    def bot_turn(self, replies: int | None) -> None:
        """The sweeper flushes the burst when due, and the bot answers it (or is still busy)."""
        self._sweeper_fires(TimerKind.DEBOUNCE, jump=True)
        pending = self.state.pending_bot_request
        if replies is not None and pending is not None:
            self._decide(
                BotReplied(request_id=pending.request_id, epoch=pending.epoch, reply_count=replies)
            )

    @precondition(lambda self: bool(self.asks))
    @rule(data=st.data(), replies=st.sampled_from([0, 1, 2]))
    def a_late_bot_reply(self, data: st.DataObject, replies: int) -> None:
        ask = data.draw(st.sampled_from(sorted(self.asks.values(), key=lambda a: a.request_id)))
        self._decide(BotReplied(request_id=ask.request_id, epoch=ask.epoch, reply_count=replies))

    # --- the sweeper and the backlog -------------------------------------------------

    @rule(kind=st.sampled_from(list(TimerKind)), jump=st.booleans())
    def sweeper_fires(self, kind: TimerKind, jump: bool) -> None:
        self._sweeper_fires(kind, jump)

    @precondition(lambda self: bool(next_timers(self.state, self.policy)))
    @rule()
    def next_timer_fires(self) -> None:
        """The sweeper wakes up for the earliest armed timer, as the router's would."""
        first = min(next_timers(self.state, self.policy), key=lambda timer: timer.due_at)
        self._sweeper_fires(first.kind, jump=True)

    @rule()
    def history_import(self) -> None:
        before = self.state
        self._decide(
            HistoryMessageImported(wamid=self._new_id("H"), timestamp=self.now - timedelta(days=9))
        )
        assert self.state == before

    # --- moves shared by rules -------------------------------------------------------

    def _customer_writes(self, type: str, age: int) -> None:
        wamid = self._new_id("C")
        timestamp = self.now - timedelta(seconds=age)
        in_bot_mode = self.state.mode is Mode.BOT
        self._decide(CustomerWrote(wamid=wamid, timestamp=timestamp, type=type, text=wamid))
        window = min(timestamp, self.now) + WINDOW
        self.window_until = max(self.window_until or window, window)
        older = self.handled_through is not None and timestamp < self.handled_through
        if type in ANSWERABLE and in_bot_mode and not older:
            self.owed.add(wamid)
        else:
            self.human_only.add(wamid)
            if type in ANSWERABLE and not in_bot_mode:
                self.handled_through = max(self.handled_through or timestamp, timestamp)

    def _check_assignment_only(self, before: ConversationState, decision: Decision) -> None:
        """Assignments move the holder only: same mode, same epoch, nothing for the customer."""
        assert decision.state.mode is before.mode and decision.state.epoch == before.epoch
        assert not [e for e in decision.effects if isinstance(e, SendNotice | AskBot)]
        assert not [e for e in decision.effects if isinstance(e, CancelBotRequest)]

    def _sweeper_fires(self, kind: TimerKind, jump: bool) -> None:
        due = timer_due(self.state, self.policy, kind)
        if jump and due is not None:
            self.now = max(self.now, due)
        before = self.state
        decision = self._decide(TimerFired(kind=kind, due_at=due or self.now))
        if due is None or self.now < due:
            assert decision.ignored is not None and decision.state == before, "stale timer acted"

    def _lane(self) -> dict[str, CustomerWrote]:
        s = self.state
        pending = s.pending_bot_request.messages if s.pending_bot_request else ()
        return {
            m.wamid: CustomerWrote(wamid=m.wamid, timestamp=m.timestamp, type=m.type, text=m.text)
            for m in (*s.buffer, *pending)
        }

    def _new_id(self, prefix: str) -> str:
        self.count += 1
        return f"wamid.{prefix}{self.count}"

    # --- checks after every decision -------------------------------------------------

    def _decide(self, event: Event) -> Decision:
        before = self.state
        decision = decide(before, event, self.now, self.policy)
        # Coverage of the interesting paths, shown by `pytest --hypothesis-show-statistics`.
        note(f"{type(event).__name__}: {decision.ignored or 'applied'}")
        for effect in decision.effects:
            detail = getattr(effect, "kind", "") or getattr(effect, "reason", "")
            note(f"effect {type(effect).__name__} {detail} {getattr(effect, 'reason', '')}")
        self._check_epoch_and_version(before, decision)
        self._check_bot_requests(decision)
        self._check_notices(before, decision)
        self._apply_timer_effects(decision)
        self.state = decision.state
        return decision

    def _check_epoch_and_version(self, before: ConversationState, decision: Decision) -> None:
        after = decision.state
        mode_changed = after.mode is not before.mode
        assert after.epoch == before.epoch + (1 if mode_changed else 0)
        changed = without_version(after) != without_version(before)
        assert after.version == before.version + (1 if changed else 0)
        assert decision.changed == changed
        if decision.ignored is not None:
            assert after == before and decision.effects == ()
        if not mode_changed:
            return
        self.current = None  # a new epoch fences every earlier request
        self.answered.clear()
        if before.mode is Mode.BOT:
            # What the bot still owed is the human's now, and must never reach the bot.
            lane = self._lane_of(before)
            self.owed.clear()
            self.human_only |= set(lane)
            for stamp in lane.values():
                self.handled_through = max(self.handled_through or stamp, stamp)
        if Mode.BOT in (before.mode, after.mode):
            self.takeovers_told = self.busy_sent = 0  # a handoff starts or ends
        if before.pending_bot_request is not None:
            cancelled = [e for e in decision.effects if isinstance(e, CancelBotRequest)]
            assert cancelled == [
                CancelBotRequest(
                    request_id=before.pending_bot_request.request_id,
                    reason=CancelReason.MODE_CHANGED,
                )
            ]

    def _check_bot_requests(self, decision: Decision) -> None:
        after = decision.state
        for effect in decision.effects:
            if isinstance(effect, CancelBotRequest) and effect.reason is CancelReason.SUPERSEDED:
                assert effect.request_id == self.current
                self.current = None
                self.asked -= {m.wamid for m in self.asks[effect.request_id].messages}
        asks = [e for e in decision.effects if isinstance(e, AskBot)]
        assert len(asks) <= 1, "one flush, one request"
        for ask in asks:
            assert after.mode is Mode.BOT, "no AskBot unless the bot holds the conversation"
            assert ask.epoch == after.epoch
            wamids = [m.wamid for m in ask.messages]
            assert wamids, "never an empty request"
            assert len(set(wamids)) == len(wamids)
            assert not set(wamids) & self.asked, "a message asked twice"
            assert not set(wamids) & self.human_only, "a message that was not the bot's reached it"
            assert [m.timestamp for m in ask.messages] == sorted(m.timestamp for m in ask.messages)
            self.asked |= set(wamids)
            self.asks[ask.request_id] = ask
            if self.current is not None:  # not superseded, so the bot finished it
                self.answered = [*self.answered, self.current][-ANSWERED_REQUESTS_KEPT:]
            self.current = ask.request_id

    def _check_notices(self, before: ConversationState, decision: Decision) -> None:
        for effect in decision.effects:
            if not isinstance(effect, SendNotice):
                continue
            assert self.window_until is not None and self.now < self.window_until, (
                "a notice outside the 24 h window"
            )
            if effect.kind is NoticeKind.TAKEOVER:
                self.takeovers_told += 1
                assert self.takeovers_told == 1
            elif effect.kind is NoticeKind.BUSY:
                self.busy_sent += 1
                assert self.busy_sent == 1
            else:
                assert decision.state.mode is Mode.BOT
                resolved = any(
                    isinstance(e, EmitEvent) and e.kind is AgentEventKind.RESOLVED
                    for e in decision.effects
                )
                assert before.takeover_notice_sent or resolved

    def _apply_timer_effects(self, decision: Decision) -> None:
        for effect in decision.effects:
            if isinstance(effect, ScheduleTimer):
                self.timers[effect.kind] = effect.due_at
            elif isinstance(effect, CancelTimer):
                assert effect.kind in self.timers
                del self.timers[effect.kind]

    @staticmethod
    def _lane_of(state: ConversationState) -> dict[str, datetime]:
        pending = state.pending_bot_request.messages if state.pending_bot_request else ()
        return {m.wamid: m.timestamp for m in (*state.buffer, *pending)}

    # --- invariants of every reachable state -----------------------------------------

    @invariant()
    def holders_match_the_mode(self) -> None:
        s = self.state
        assert (s.assignee is None) or s.mode is Mode.HUMAN
        assert (s.paused_until is not None) == (s.mode is Mode.PAUSED)
        if s.mode is not Mode.BOT:
            assert s.buffer == () and s.pending_bot_request is None and s.current_request_id is None
        else:
            assert s.waiting_since is None and not s.takeover_notice_sent
            assert not s.ghost_fallback_done and s.handoff_reason is None
            assert s.service_started_at is None and s.first_response_at is None
        if s.mode is not Mode.BOT:
            assert s.service_started_at is not None
            assert s.first_response_at is None or s.first_response_at >= s.service_started_at

    @invariant()
    def at_most_one_request_in_flight(self) -> None:
        s = self.state
        assert not (s.buffer and s.pending_bot_request), "buffer and request in flight at once"
        if s.pending_bot_request is not None:
            assert s.current_request_id == s.pending_bot_request.request_id
            assert s.pending_bot_request.epoch == s.epoch
        if s.buffer:
            assert s.first_buffered_at is not None and s.flush_due_at is not None
            assert s.flush_due_at <= s.first_buffered_at + self.policy.debounce_cap
        else:
            assert s.first_buffered_at is None and s.flush_due_at is None

    @invariant()
    def no_owed_message_is_lost(self) -> None:
        lane = set(self._lane_of(self.state))
        assert self.owed <= lane | self.asked
        assert not lane & self.human_only

    @invariant()
    def exactly_the_unsuperseded_requests_of_this_epoch_pass_the_fence(self) -> None:
        passing = {
            ask.request_id
            for ask in self.asks.values()
            if may_send_bot_reply(self.state, ask.epoch, ask.request_id)[0]
        }
        assert passing == {*self.answered, *([self.current] if self.current else [])}

    @invariant()
    def the_timer_table_follows_the_effects(self) -> None:
        expected = {timer.kind: timer.due_at for timer in next_timers(self.state, self.policy)}
        assert self.timers == expected

    @invariant()
    def state_survives_persistence(self) -> None:
        assert ConversationState.model_validate_json(self.state.model_dump_json()) == self.state

    def teardown(self) -> None:
        # Liveness: whatever the bot still owes is asked once the sweeper catches up.
        if self.state.mode is Mode.BOT and self.state.buffer:
            self._sweeper_fires(TimerKind.DEBOUNCE, jump=True)
            assert self.state.buffer == ()
        if self.state.mode is Mode.BOT:
            assert self.owed <= self.asked


HandoffMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_handoff_state_machine = HandoffMachine.TestCase
