"""Router handlers: webhook changes and bot commands become handoff events on conversations.

- `messages`: each customer message is stored once (by wamid) and becomes `CustomerWrote`;
  each delivery status is recorded once and announced.
- `smb_message_echoes`: each echo is stored once as an `app` message (an owner command such as
  `#bot` with type "command", so it is never bot context) and becomes `EchoReceived`; an echo
  of our own API send is `from_api` (never a takeover).
- commands: the bot's `RequestHandoff` → `BotRequestedHandoff`, its `BotTurnFinished` →
  `BotReplied`.

A message is skipped only once its state change was saved (`routed`), so a crash between
storing a message and saving its state change never loses it from a burst.

Customer messages and echoes of an offboarded number (`Store.number_disabled`, cached for a
few seconds) are acknowledged and dropped before anything is stored or decided.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from baton.broker import Broker, Delivery, Poison
from baton.broker.topology import EVENTS
from baton.conversations import Conversations, UnknownConversation
from baton.handoff import (
    BotReplied,
    BotRequestedHandoff,
    CustomerWrote,
    EchoReceived,
    Event,
    parse_owner_command,
)
from baton.media import fetch_command
from baton.messages import (
    BotTurnFinished,
    ConversationEvent,
    MessageReceived,
    MessageStatusChanged,
    RequestHandoff,
    WebhookChange,
)
from baton.offboarding import OffboardedNumbers
from baton.store import Store
from baton.store.handoff_records import EchoOutcome, NewEcho
from baton.store.records import Conversation, DeliveryStatus, NewInbound, StatusUpdate
from baton.store.waba_records import NumberChange
from baton.types import Author, Mode, PhoneNumberId, Wamid
from baton.whatsapp.message import WaMessage
from baton.whatsapp.payloads import (
    EchoesValue,
    MessagesValue,
    PayloadError,
    Status,
    parse_change,
)
from baton.whatsapp.render import render_text
from services.router import metrics

log = structlog.get_logger()

COMMAND_TYPE = "command"  # stored type of an owner command echo (#bot, #pause 3h)
NUMBER_DISABLED = "number_disabled"  # why a change was ignored: its number was offboarded


class Router:
    def __init__(
        self,
        store: Store,
        broker: Broker,
        conversations: Conversations,
        *,
        offboarded: OffboardedNumbers | None = None,
    ) -> None:
        self._store = store
        self._broker = broker
        self._conversations = conversations
        self._offboarded = offboarded if offboarded is not None else OffboardedNumbers(store)

    async def on_webhook(self, delivery: Delivery) -> None:
        change = WebhookChange.model_validate_json(delivery.body)
        try:
            value = parse_change(change.field, change.value)
        except PayloadError as exc:
            raise Poison(str(exc)) from exc
        if isinstance(value, MessagesValue):
            await self._on_messages(value, retried=delivery.attempt > 1)
        elif isinstance(value, EchoesValue):
            await self._on_echoes(value, retried=delivery.attempt > 1)
        else:
            log.info("router.change_ignored", field=change.field)

    async def on_command(self, delivery: Delivery) -> None:
        event: Event
        if delivery.type == RequestHandoff.TYPE:
            handoff = RequestHandoff.model_validate_json(delivery.body)
            conversation_id = handoff.conversation_id
            event = BotRequestedHandoff(
                epoch=handoff.epoch, reason=handoff.reason, summary=handoff.summary
            )
        elif delivery.type == BotTurnFinished.TYPE:
            turn = BotTurnFinished.model_validate_json(delivery.body)
            conversation_id = turn.conversation_id
            event = BotReplied(
                request_id=turn.request_id, epoch=turn.epoch, reply_count=turn.reply_count
            )
        else:
            raise Poison(f"router does not handle {delivery.type!r}")
        with structlog.contextvars.bound_contextvars(conversation_id=conversation_id):
            try:
                decision = await self._conversations.apply(conversation_id, event)
            except UnknownConversation as exc:
                raise Poison(f"unknown conversation {conversation_id}") from exc
            log.info(
                "router.bot_command",
                command=delivery.type,
                mode=decision.state.mode.value,
                ignored=decision.ignored.value if decision.ignored else None,
            )

    # --- customers -----------------------------------------------------------------------

    async def _on_messages(self, value: MessagesValue, *, retried: bool) -> None:
        phone_number_id = value.metadata.phone_number_id
        # Only a change with customer messages pays for the lookup (statuses are the bulk).
        if value.messages and await self._offboarded.disabled(phone_number_id):
            self._ignored_offboarded("customer", phone_number_id, len(value.messages))
        else:
            for message in value.messages:
                await self._on_customer_message(value, phone_number_id, message, retried=retried)
        # Statuses of an offboarded number are still recorded: they describe messages that did
        # leave while it was connected, touch no conversation state, ask no bot and send
        # nothing, and keep what agents see of those messages true.
        for status in value.statuses:
            await self._on_status(phone_number_id, status, retried=retried)
        for error in value.errors:
            log.error("router.whatsapp_error", code=error.code, title=error.title)

    async def _on_customer_message(
        self,
        value: MessagesValue,
        phone_number_id: PhoneNumberId,
        message: WaMessage,
        *,
        retried: bool,
    ) -> None:
        contact = value.contact_for(message.from_)
        wa_id = await self._customer_wa_id(phone_number_id, message)
        text = render_text(message)
        stored = await self._store.record_inbound_for_routing(
            NewInbound(
                phone_number_id=phone_number_id,
                wa_id=wa_id,
                wamid=message.id,
                type=message.type,
                body=text,
                sent_at=message.timestamp,
                payload=message.raw,
                customer_name=contact.name if contact else None,
            )
        )
        conversation = stored.conversation
        # Media (issue 18): the file is downloaded apart (bot service), during the debounce.
        fetch = fetch_command(
            phone_number_id, message, conversation_id=conversation.id, wa_id=conversation.wa_id
        )
        if fetch is not None and (stored.stored_now or retried):
            await self._broker.publish_command(fetch)
        with structlog.contextvars.bound_contextvars(
            conversation_id=conversation.id, wamid=message.id
        ):
            mode: Mode
            if not stored.stored_now and stored.routed:
                log.info("router.inbound_duplicate")
                metrics.DUPLICATES.labels(kind="customer").inc()
                if not retried:
                    return
                mode = conversation.mode  # a retry may have saved the state but not announced
            else:
                decision = await self._conversations.apply(
                    conversation.id,
                    CustomerWrote(
                        wamid=message.id,
                        timestamp=message.timestamp,
                        type=message.type,
                        text=text,
                        # A click-to-WhatsApp ad opens a 72 h window (issue 12).
                        from_ad=message.referral is not None,
                    ),
                    loaded=stored.state,  # read with the message: saves a round trip
                )
                mode = decision.state.mode
                log.info("router.inbound", type=message.type, mode=mode.value)
            await self._announce_received(
                conversation,
                message.id,
                Author.CUSTOMER,
                message.type,
                text,
                message.timestamp,
                mode,
            )

    async def _customer_wa_id(self, phone_number_id: PhoneNumberId, message: WaMessage) -> str:
        """Whose conversation a message belongs to: a number-change notice moves it first."""
        system = message.system
        new_wa_id = system.number_changed_to if system is not None else None
        if system is None or new_wa_id is None or new_wa_id == message.from_:
            return message.from_
        result = await self._store.move_customer(
            NumberChange(
                phone_number_id=phone_number_id,
                wamid=message.id,
                old_wa_id=system.customer or message.from_,
                new_wa_id=new_wa_id,
                at=message.timestamp,
            )
        )
        if result.recorded_now:
            metrics.NUMBER_CHANGES.labels(outcome=result.outcome.value).inc()
        log.info(
            "router.customer_number_changed",
            outcome=result.outcome.value,
            conversation_id=result.conversation_id,
            recorded_now=result.recorded_now,
        )
        # The notice itself is kept in the conversation the customer now writes from.
        return new_wa_id

    async def _on_status(
        self, phone_number_id: PhoneNumberId, status: Status, *, retried: bool
    ) -> None:
        try:
            kind = DeliveryStatus.parse(str(status.status))
        except KeyError:
            log.warning("router.status_unknown", status=str(status.status))
            return
        error = status.errors[0] if status.errors else None
        fresh = await self._store.record_status(
            StatusUpdate(
                phone_number_id=phone_number_id,
                wamid=status.id,
                status=kind,
                at=status.timestamp,
                error_code=error.code if error else None,
                error_title=error.title if error else None,
            )
        )
        # A retried delivery may have recorded the status but failed to announce it.
        if not fresh and not retried:
            return
        conversation = await self._store.conversation_of_message(phone_number_id, status.id)
        if conversation is None:
            return  # its send is not recorded yet; agents see the status with the message
        await self._announce(
            f"status:{status.id}:{kind.name.lower()}",
            MessageStatusChanged(
                conversation_id=conversation.id,
                phone_number_id=phone_number_id,
                wa_id=conversation.wa_id,
                at=self._conversations.now(),
                wamid=status.id,
                status=kind.name.lower(),
                error_code=error.code if error else None,
            ),
        )

    # --- the owner in the WhatsApp Business App ------------------------------------------

    async def _on_echoes(self, value: EchoesValue, *, retried: bool) -> None:
        phone_number_id = value.metadata.phone_number_id
        if value.message_echoes and await self._offboarded.disabled(phone_number_id):
            self._ignored_offboarded("echo", phone_number_id, len(value.message_echoes))
            return
        policy = self._conversations.policy(phone_number_id)
        for echo in value.message_echoes:
            if echo.to is None:
                log.warning("router.echo_without_recipient", wamid=echo.id)
                continue
            text = render_text(echo)
            command = echo.type == "text" and parse_owner_command(text, policy) is not None
            stored_type = COMMAND_TYPE if command else echo.type
            conversation, outcome = await self._store.record_echo(
                NewEcho(
                    phone_number_id=phone_number_id,
                    wa_id=echo.to,
                    wamid=echo.id,
                    type=stored_type,
                    body=text,
                    sent_at=echo.timestamp,
                    payload=echo.raw,
                )
            )
            with structlog.contextvars.bound_contextvars(
                conversation_id=conversation.id, wamid=echo.id
            ):
                if outcome is EchoOutcome.DUPLICATE:
                    # Dedupe before the state: an old echo redelivered must not pause again.
                    log.info("router.echo_duplicate")
                    metrics.DUPLICATES.labels(kind="echo").inc()
                    if retried:  # the failed attempt may have saved the state but not announced
                        await self._announce_received(
                            conversation, echo.id, Author.APP, stored_type, text, echo.timestamp,
                            conversation.mode,
                        )  # fmt: skip
                    continue
                own_send = outcome is EchoOutcome.OWN_SEND
                decision = await self._conversations.apply(
                    conversation.id,
                    EchoReceived(
                        wamid=echo.id,
                        timestamp=echo.timestamp,
                        type=echo.type,
                        text=text,
                        from_api=own_send,
                    ),
                )
                log.info(
                    "router.echo",
                    command=command,
                    own_send=own_send,
                    mode=decision.state.mode.value,
                )
                if not own_send:
                    await self._announce_received(
                        conversation, echo.id, Author.APP, stored_type, text, echo.timestamp,
                        decision.state.mode,
                    )  # fmt: skip

    async def _announce_received(
        self,
        conversation: Conversation,
        wamid: Wamid,
        author: Author,
        type: str,
        body: str,
        sent_at: datetime,
        mode: Mode,
    ) -> None:
        """Tell agents a customer or the owner wrote (announced once per wamid)."""
        await self._announce(
            f"received:{wamid}",
            MessageReceived(
                conversation_id=conversation.id,
                phone_number_id=conversation.phone_number_id,
                wa_id=conversation.wa_id,
                at=self._conversations.now(),
                wamid=wamid,
                author=author,
                type=type,
                body=body,
                sent_at=sent_at,
                mode=mode,
            ),
        )

    def _ignored_offboarded(self, kind: str, phone_number_id: PhoneNumberId, count: int) -> None:
        metrics.IGNORED.labels(kind=kind, reason=NUMBER_DISABLED).inc(count)
        log.info(
            "router.ignored_offboarded",
            kind=kind,
            count=count,
            phone_number_id=phone_number_id,
            reason=NUMBER_DISABLED,
        )

    async def _announce(self, message_id: str, event: ConversationEvent) -> None:
        """Publish an event for agents; its id is deterministic, so a retry is deduplicable."""
        await self._broker.publish_raw(
            EVENTS,
            event.TYPE,
            event.model_dump_json().encode(),
            type=event.TYPE,
            version=event.VERSION,
            message_id=message_id,
            mandatory=False,
        )
