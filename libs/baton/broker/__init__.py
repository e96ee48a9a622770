"""RabbitMQ through aio-pika: topology, confirmed publishing, and settled consuming."""

from baton.broker.connection import Broker
from baton.broker.consumer import Delivery, Duplicate, Poison
from baton.broker.errors import BrokerUnavailable, PublishFailed, is_outage
from baton.broker.subscription import SupervisedConsumer
from baton.broker.topology import (
    COMMANDS,
    DLX,
    EVENTS,
    QUEUES,
    WEBHOOKS,
    QueueSpec,
    dead_letter_queue,
)

__all__ = [
    "COMMANDS",
    "DLX",
    "EVENTS",
    "QUEUES",
    "WEBHOOKS",
    "Broker",
    "BrokerUnavailable",
    "Delivery",
    "Duplicate",
    "Poison",
    "PublishFailed",
    "QueueSpec",
    "SupervisedConsumer",
    "dead_letter_queue",
    "is_outage",
]
