"""Bot wiring: a bot request in, a reply to the outbox or a handoff to the router out.

Every answered request ends with `BotTurnFinished` to the router (after the reply, if any, was
published; also for an empty reply), so the burst counts as handled. A request whose fence is
already gone (superseded by a newer customer message, or a human took over) is dropped before
the LLM is called; a reply that loses its fence while the LLM works is dropped by the outbox.
The context is the conversation's recent messages, humans' and the owner's included (as the
business's turns), without owner command echoes (`#bot`, `#pause 3h`).
"""

from __future__ import annotations

import asyncio

import structlog

from baton.blobs.factory import open_blob_store
from baton.broker import Broker, Delivery, Poison
from baton.broker.topology import BOT_REQUESTS, MEDIA_FETCH
from baton.handoff import is_bot_reply_current
from baton.knowledge import Knowledge
from baton.messages import AskBot, BotTurnFinished, RequestHandoff, SendText
from baton.runtime import store_reasons
from baton.service import serve_consumers
from baton.settings import NumbersConfig, Settings
from baton.store import Store, open_store
from baton.store.knowledge_records import PastAnswer
from baton.types import Author
from baton.whatsapp import GraphClient
from services.bot.brain import answer
from services.bot.knowledge import KnowledgeSource, keep_index_current
from services.bot.llm import ChatModel, LLMClient
from services.bot.media_ai import Describer, Transcriber
from services.bot.media_fetch import MediaFetcher
from services.bot.media_reading import MediaReader, Unread, handoff_summary, with_notice
from services.bot.metrics import default_metrics
from services.bot.policy import BotPolicy
from services.bot.types import Handoff, Reply, Turn

log = structlog.get_logger()

# How the router stores an owner command echo: control, never conversation.
COMMAND_TYPE = "command"


class Bot:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        llm: ChatModel | None,
        numbers: NumbersConfig,
        *,
        media: MediaReader | None = None,
    ) -> None:
        self._store = store
        self._media = media  # media (issue 18): transcripts and descriptions of files
        self._broker = broker
        self._llm = llm
        self._numbers = numbers
        self._knowledge = KnowledgeSource(store, numbers)
        # One policy per knowledge base: rebuilt only when the console saved a new one.
        self._policies: dict[str, tuple[Knowledge, BotPolicy]] = {}

    async def _policy(self, phone_number_id: str) -> BotPolicy:
        knowledge = await self._knowledge.get(phone_number_id)
        cached = self._policies.get(phone_number_id)
        if cached is not None and cached[0] is knowledge:
            return cached[1]
        policy = BotPolicy.for_number(self._numbers.get(phone_number_id), knowledge)
        self._policies[phone_number_id] = (knowledge, policy)
        return policy

    async def _examples(self, request: AskBot, policy: BotPolicy) -> list[PastAnswer]:
        """Past answers of this number to similar questions: for the LLM only."""
        if self._llm is None or policy.retrieval_examples == 0:
            return []
        text = " ".join(message.text for message in request.messages if message.text.strip())
        return await self._store.retrieve_past_answers(
            request.phone_number_id,
            text,
            language=policy.language,
            limit=policy.retrieval_examples,
        )

    async def on_request(self, delivery: Delivery) -> None:
        if delivery.type != AskBot.TYPE:
            raise Poison(f"bot does not handle {delivery.type!r}")
        request = AskBot.model_validate_json(delivery.body)
        with structlog.contextvars.bound_contextvars(
            conversation_id=request.conversation_id, request_id=request.request_id
        ):
            await self._answer(request)

    async def _answer(self, request: AskBot) -> None:
        state = await self._store.load_conversation_state(request.conversation_id)
        if state is not None and not is_bot_reply_current(state, request.request_id, request.epoch):
            log.info("bot.request_stale", epoch=request.epoch, current_epoch=state.epoch)
            return
        policy = await self._policy(request.phone_number_id)
        media_policy = self._numbers.get(request.phone_number_id).media_policy
        unread: tuple[Unread, ...] = ()
        if self._media is not None:
            reading = await self._media.read(
                request, policy.language, keep_placeholders=media_policy == "ignore"
            )
            request, unread = reading.request, reading.unread
        if unread and media_policy == "handoff":
            captions = "\n".join(m.text for m in request.messages if m.text.strip())
            await self._broker.publish_command(
                RequestHandoff(
                    conversation_id=request.conversation_id,
                    phone_number_id=request.phone_number_id,
                    wa_id=request.wa_id,
                    epoch=request.epoch,
                    reason="media_unreadable",
                    summary=handoff_summary(unread, policy.language, captions),
                )
            )
            return
        # The burst itself is among the newest rows (the prompt takes it apart), so fetch that
        # many more than the prompt's depth of earlier turns.
        stored = await self._store.recent_messages(
            request.conversation_id, limit=policy.history_turns + len(request.messages)
        )
        # Agents' private notes (issue 12) reach the prompt only where the number opts in, and
        # then as the business's side of the conversation, marked as a note.
        notes = self._numbers.get(request.phone_number_id).notes_in_bot_context
        history = [
            Turn(author=Author.SYSTEM, text=f"[internal note] {m.body}", at=m.sent_at, wamid=None)
            if m.author is Author.NOTE
            else Turn(author=m.author, text=m.body, at=m.sent_at, wamid=m.wamid)
            for m in stored
            if m.type != COMMAND_TYPE and (m.author is not Author.NOTE or notes)
        ]
        decision = await answer(
            request,
            history,
            llm=self._llm,
            policy=policy,
            metrics=default_metrics(),
            examples=await self._examples(request, policy),
        )
        decision = with_notice(decision, unread, media_policy, policy.language)
        if isinstance(decision, Handoff):
            await self._broker.publish_command(
                RequestHandoff(
                    conversation_id=request.conversation_id,
                    phone_number_id=request.phone_number_id,
                    wa_id=request.wa_id,
                    epoch=request.epoch,
                    reason=decision.reason.value,
                    summary=decision.summary,
                )
            )
            return
        replies = 0
        if isinstance(decision, Reply):
            last = request.messages[-1].wamid if request.messages else None
            await self._broker.publish_command(
                SendText(
                    # Deterministic: a redelivered request yields the same key, sent once.
                    idempotency_key=f"reply:{request.request_id}",
                    conversation_id=request.conversation_id,
                    phone_number_id=request.phone_number_id,
                    to=request.wa_id,
                    body=decision.text,
                    author=Author.BOT,
                    epoch=request.epoch,
                    reply_to=last if len(request.messages) > 1 else None,
                    request_id=request.request_id,
                )
            )
            replies = 1
        # After the reply: the router must not consider the burst handled before it exists.
        await self._broker.publish_command(
            BotTurnFinished(
                request_id=request.request_id,
                conversation_id=request.conversation_id,
                phone_number_id=request.phone_number_id,
                wa_id=request.wa_id,
                epoch=request.epoch,
                reply_count=replies,
            )
        )


async def main(settings: Settings, stop: asyncio.Event) -> None:
    store = await open_store(settings.store_url)
    broker = Broker(settings.amqp_url, name="bot")
    await broker.connect()
    llm = LLMClient.from_settings(settings)
    log.info("bot.responder", llm=llm is not None, model=settings.llm_model)
    numbers = settings.numbers()
    # Media (issue 18): downloads (media.fetch) and what the bot makes of files.
    blobs = await open_blob_store(settings)
    graph = GraphClient.from_settings(settings)
    stt = Transcriber.from_settings(settings)
    describer = Describer.from_settings(settings)
    fetcher = MediaFetcher(
        store, blobs, broker, graph, max_attempts=settings.max_delivery_attempts, stt=stt
    )
    reader = MediaReader(
        store,
        blobs,
        transcribing=stt is not None,
        describer=describer,
        wait_seconds=settings.media_wait_seconds,
    )
    log.info("bot.media", transcription=stt is not None, vision=describer is not None)
    bot = Bot(store, broker, llm, numbers, media=reader)

    async def index(stop: asyncio.Event) -> None:
        await keep_index_current(store, numbers, stop)

    async def ready() -> list[str]:
        return await store_reasons(store.ping)  # the broker's part is serve_consumers'

    try:
        await serve_consumers(
            settings,
            stop,
            broker=broker,
            subscriptions=[(BOT_REQUESTS, bot.on_request), (MEDIA_FETCH, fetcher.on_fetch)],
            ready=ready,
            background=[index],
        )
    finally:
        if llm is not None:
            await llm.aclose()
        for client in (stt, describer):
            if client is not None:
                await client.aclose()
        await graph.aclose()
        await blobs.close()
        await broker.close()
        await store.close()
