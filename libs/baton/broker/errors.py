"""Broker errors, and which failures mean "a dependency is down" rather than "this work is bad"."""

from __future__ import annotations

import errno

import aio_pika
import aiormq
import asyncpg


class BrokerUnavailable(Exception):
    """No connection to the broker right now."""


class PublishFailed(Exception):
    """The broker did not confirm a publish (nack, unroutable, timeout or lost channel)."""


# A store that is restarting, refusing connections or dropped ours mid-query.
_STORE_DOWN = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,  # "connection is closed" and its kin
)
_NETWORK_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT, errno.ECONNABORTED}


def is_outage(exc: BaseException) -> bool:
    """The failure is a dependency's outage (broker, store, network), not the message's fault.

    Work that failed this way is retried for as long as the outage lasts instead of counting
    towards dead-lettering: a store restart must never park good messages.
    """
    if isinstance(exc, (BrokerUnavailable, ConnectionError, *_STORE_DOWN)):
        return True
    if isinstance(exc, PublishFailed):
        # A nack or a return is the broker's answer about this message; anything else (a lost
        # channel or connection, a confirm that never came) is the broker being away.
        return not isinstance(
            exc.__cause__, aiormq.exceptions.DeliveryError | aiormq.exceptions.PublishError
        )
    if isinstance(
        exc, aio_pika.exceptions.ChannelInvalidStateError | aiormq.exceptions.ConnectionClosed
    ):
        return True
    return isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS
