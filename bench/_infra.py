"""What every benchmark sets up around itself: free loopback ports and a throwaway vhost."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise SystemExit("rabbitmqctl not found: the benchmark needs the local RabbitMQ")
    subprocess.run([ctl, *args], check=True, capture_output=True)


@contextlib.contextmanager
def throwaway_vhost(prefix: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost for one run (its AMQP URL), deleted afterwards."""
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield AMQP + vhost
    finally:
        _rabbitmqctl("delete_vhost", vhost)
