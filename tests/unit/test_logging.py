"""Every line a service prints is one JSON object, stdlib loggers included (uvicorn, asyncpg …)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    """
    import logging
    import structlog
    from baton.logging import configure_logging

    configure_logging("svc", level="INFO", json=True)
    structlog.contextvars.bind_contextvars(conversation_id=7, message_id="m-1")
    structlog.get_logger().info("ours.happened", count=1)
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("aio_pika").warning("connection lost")
    logging.getLogger("asyncpg.pool").info("below the level: never printed")
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("uvicorn.error").exception("boom")
    """
)


def test_stdlib_and_structlog_lines_are_all_json_with_the_bound_ids() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": "libs"},
    )
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [
        "ours.happened",
        "Started server process",
        "connection lost",
        "boom",
    ]
    for line in lines:
        assert line["service"] == "svc"
        assert line["conversation_id"] == 7
        assert line["message_id"] == "m-1"
        assert "timestamp" in line
    assert lines[1]["logger"] == "uvicorn.error"
    assert lines[2]["level"] == "warning"
    assert "ZeroDivisionError" in lines[3]["exception"]
