"""The outbox's handoff fence, against the real store and the WhatsApp simulator.

A bot message is checked when it is staged and again right before its Graph API call (it may
wait seconds for a send slot in between); external bots are fenced by mode and epoch; a bot
message carries the number's prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from baton.broker import Broker
from baton.conversations import Conversations
from baton.handoff import AgentTookOver, AskBot, CustomerWrote, TimerKind
from baton.messages import SendText
from baton.settings import NumbersConfig, NumberSettings
from baton.store import PostgresStore
from baton.types import Author, ConversationId
from baton.whatsapp.client import GraphClient
from services.outbox.handlers import Outbox, Ready, Sent, Skipped
from simulator import DEV_ACCESS_TOKEN, Simulator
from tests.conftest import unique
from tests.outbox_harness import customer_id, number_id

pytestmark = pytest.mark.integration

PREFIX = "🤖"


class Stage:
    """One business number: the handoff shell to move conversations, the outbox to send."""

    def __init__(self, store: PostgresStore, broker: Broker, sim: Simulator) -> None:
        self.pnid = number_id()
        sim.register(self.pnid)
        numbers = NumbersConfig(
            numbers={self.pnid: NumberSettings(phone_number_id=self.pnid, bot_prefix=PREFIX)}
        )
        self.store = store
        self.clock = datetime.now(UTC)
        self.shell = Conversations(store, broker, numbers, lambda: self.clock)
        self.graph = GraphClient(sim.base_url, DEV_ACCESS_TOKEN)
        self.outbox = Outbox(store, broker, self.graph, numbers, abandon_after_seconds=15)

    async def bot_asked(self, wa_id: str) -> tuple[ConversationId, AskBot]:
        """A customer wrote and the debounce flushed: the bot holds a current request."""
        conversation = await self.store.conversation(self.pnid, wa_id)
        event = CustomerWrote(wamid=unique("wamid"), timestamp=self.clock, text="oi")
        await self.shell.apply(conversation.id, event)
        self.clock += timedelta(seconds=2)
        decision = await self.shell.fire_timer(conversation.id, TimerKind.DEBOUNCE)
        assert decision is not None
        [ask] = [e for e in decision.effects if isinstance(e, AskBot)]
        return conversation.id, ask


def _reply(stage: Stage, conversation_id: ConversationId, wa_id: str, ask: AskBot) -> SendText:
    return SendText(
        idempotency_key=unique("reply"),
        conversation_id=conversation_id,
        phone_number_id=stage.pnid,
        to=wa_id,
        body="Olá! Como posso ajudar?",
        author=Author.BOT,
        epoch=ask.epoch,
        request_id=ask.request_id,
    )


@pytest.fixture
async def stage(store: PostgresStore, broker: Broker, sim: Simulator) -> AsyncIterator[Stage]:
    await broker.declare_topology()
    staged = Stage(store, broker, sim)
    yield staged
    await staged.graph.aclose()


async def test_a_takeover_while_a_reply_waits_for_its_slot_still_stops_it(
    stage: Stage, sim: Simulator
) -> None:
    wa_id = customer_id()
    conversation_id, ask = await stage.bot_asked(wa_id)
    reply = _reply(stage, conversation_id, wa_id, ask)
    assert isinstance(await stage.outbox.prepare(reply), Ready)  # fenced and claimed: staged

    await stage.shell.apply(conversation_id, AgentTookOver(agent_id="ana"))  # while it waits
    assert await stage.outbox.call(reply) == Skipped("fenced")
    assert sim.messages(stage.pnid) == []
    # The claim is closed, not left open for a later holder to wait out or resend.
    row = await stage.store.pool.fetchrow(
        "SELECT status, error_reason, attempt_open FROM messages WHERE idempotency_key = $1",
        reply.idempotency_key,
    )
    assert row is not None
    assert tuple(row) == ("failed", "fenced: not_bot_mode", False)
    assert await stage.outbox.prepare(reply) == Skipped("fenced")  # a redelivery: still not sent


async def test_a_current_reply_goes_out_with_the_numbers_bot_prefix(
    stage: Stage, sim: Simulator
) -> None:
    wa_id = customer_id()
    conversation_id, ask = await stage.bot_asked(wa_id)
    reply = _reply(stage, conversation_id, wa_id, ask)
    assert isinstance(await stage.outbox.prepare(reply), Ready)
    assert isinstance(await stage.outbox.call(reply), Sent)
    assert [m.body for m in sim.messages(stage.pnid)] == [f"{PREFIX} Olá! Como posso ajudar?"]


async def test_an_external_bot_is_sent_under_its_epoch_and_fenced_after_it(
    stage: Stage, sim: Simulator
) -> None:
    wa_id = customer_id()
    conversation = await stage.store.conversation(stage.pnid, wa_id)

    def external(body: str) -> SendText:
        # What the agent API publishes for an external bot: no request id, its expected epoch.
        return SendText(
            idempotency_key=unique("helpdesk"),
            conversation_id=conversation.id,
            phone_number_id=stage.pnid,
            to=wa_id,
            body=body,
            author=Author.BOT,
            epoch=conversation.epoch,
            agent_id="helpdesk",
        )

    current = external("Seu pedido saiu para entrega.")
    assert isinstance(await stage.outbox.prepare(current), Ready)
    assert isinstance(await stage.outbox.call(current), Sent)

    await stage.shell.apply(conversation.id, AgentTookOver(agent_id="ana"))
    assert await stage.outbox.prepare(external("Mais alguma coisa?")) == Skipped("fenced")
    assert [m.body for m in sim.messages(stage.pnid)] == [f"{PREFIX} Seu pedido saiu para entrega."]
