"""The broker topology, declared by code: exchanges, quorum queues and their dead-letter queues.

Routing:
- `baton.webhooks` (topic): ingest publishes one message per webhook change, routing key = the
  change's `field` (`messages`, `smb_message_echoes`, `history`, ...). A field nobody binds goes to
  the alternate exchange and waits in `webhooks.unrouted` instead of vanishing.
- `baton.commands` (topic): commands between services, routing key = the message's TYPE
  (`bot.ask`, `router.request_handoff`, `outbox.send_text`, ...).
- `baton.events` (topic): past-tense events; listeners (console SSE, ...) bind their own queues.
- `baton.dlx` (direct): a message that cannot be processed lands in `<queue>.dlq`, carrying the
  reason in its headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiormq.abc import FieldTable

WEBHOOKS = "baton.webhooks"
COMMANDS = "baton.commands"
EVENTS = "baton.events"
DLX = "baton.dlx"
UNROUTED = "baton.unrouted"

# The broker's own backstop against a consumer that dies before settling, again and again; the
# consumer wrapper dead-letters with a reason long before this.
BROKER_DELIVERY_LIMIT = 50


@dataclass(frozen=True)
class QueueSpec:
    name: str
    exchange: str
    bindings: tuple[str, ...]
    single_active_consumer: bool = False
    extra_arguments: FieldTable = field(default_factory=dict)
    dead_letter: bool = True  # False: what the queue drops (length, age) is gone for good

    def arguments(self) -> FieldTable:
        args: FieldTable = {"x-queue-type": "quorum", "x-delivery-limit": BROKER_DELIVERY_LIMIT}
        if self.dead_letter:
            args["x-dead-letter-exchange"] = DLX
            args["x-dead-letter-routing-key"] = self.name
        if self.single_active_consumer:
            args["x-single-active-consumer"] = True
        args.update(self.extra_arguments)
        return args


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


ROUTER_WEBHOOKS = QueueSpec("router.webhooks", WEBHOOKS, ("messages", "smb_message_echoes"))
ROUTER_COMMANDS = QueueSpec("router.commands", COMMANDS, ("router.#",))
BOT_REQUESTS = QueueSpec("bot.requests", COMMANDS, ("bot.#",))
# Outbox (issue 4): every send request lands in the intake first; its single active consumer
# (one across all outbox replicas, so order is kept) forwards each to the business number's own
# queue, `outbox.number.<phone_number_id>`, whose single active consumer paces that number.
OUTBOX_INTAKE = QueueSpec(
    "outbox.intake", COMMANDS, ("outbox.send_text",), single_active_consumer=True
)
OUTBOX_NUMBER_PREFIX = "outbox.number."
# The walking skeleton's queue, bound to `outbox.#`: outbox unbinds it at start-up if it exists.
LEGACY_OUTBOX_SENDS = "outbox.sends"


def outbox_number_queue(phone_number_id: str) -> QueueSpec:
    """The send queue of one business number; routing key = queue name on `baton.commands`."""
    name = f"{OUTBOX_NUMBER_PREFIX}{phone_number_id}"
    return QueueSpec(name, COMMANDS, (name,), single_active_consumer=True)


HISTORY_WEBHOOKS = QueueSpec(
    "history.webhooks",
    WEBHOOKS,
    (
        "history",
        "smb_app_state_sync",
        "account_update",
        # Account-level fields the history service keeps for templates (issue 10).
        "message_template_status_update",
        "template_category_update",
        "user_preferences",
    ),
)
# Fields nobody consumes (calls, quality updates, …) wait here for a person to look, bounded so
# they cannot fill the broker's disk: the oldest go first past UNROUTED_MAX_* or after
# UNROUTED_TTL_MS, and are not dead-lettered (a dead-letter queue would be unbounded again).
# Changing a queue's arguments needs the queue deleted first: see README "Upgrading".
UNROUTED_MAX_MESSAGES = 10_000
UNROUTED_MAX_BYTES = 100 * 1024 * 1024
UNROUTED_TTL_MS = 3 * 24 * 3600 * 1000
WEBHOOKS_UNROUTED = QueueSpec(
    "webhooks.unrouted",
    UNROUTED,
    ("#",),
    extra_arguments={
        "x-max-length": UNROUTED_MAX_MESSAGES,
        "x-max-length-bytes": UNROUTED_MAX_BYTES,
        "x-message-ttl": UNROUTED_TTL_MS,
        "x-overflow": "drop-head",
    },
    dead_letter=False,
)
# Chatwoot bridge (issue 13): what it mirrors into Chatwoot, in order (one active consumer).
# Deliberately not in QUEUES: the bridge is optional, and a queue every service declared would
# fill up forever where it is not deployed; the bridge declares it when it starts consuming.
CHATWOOT_EVENTS = QueueSpec(
    "chatwoot.events",
    EVENTS,
    ("event.conversation.#", "event.message_sent", "event.send_failed"),
    single_active_consumer=True,
)
# Media (issue 18): customers' files to download from Meta; consumed by the bot service.
MEDIA_FETCH = QueueSpec("media.fetch", COMMANDS, ("media.fetch",))

QUEUES: dict[str, QueueSpec] = {
    spec.name: spec
    for spec in (
        ROUTER_WEBHOOKS,
        ROUTER_COMMANDS,
        BOT_REQUESTS,
        OUTBOX_INTAKE,
        HISTORY_WEBHOOKS,
        MEDIA_FETCH,
        WEBHOOKS_UNROUTED,
    )
}
