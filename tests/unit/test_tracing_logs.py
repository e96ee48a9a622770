"""Log lines written inside a span carry its trace id; lines outside one do not."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_PROGRAM = textwrap.dedent(
    """
    import logging
    import structlog
    from opentelemetry.sdk.trace import TracerProvider
    from baton import tracing
    from baton.logging import configure_logging

    configure_logging("svc", level="INFO", json=True)
    structlog.get_logger().info("before.on")
    tracing.use(TracerProvider())
    structlog.get_logger().info("outside.span")
    with tracing.span("work"):
        print(tracing.trace_id(), flush=True)
        structlog.get_logger().info("inside.span")
        logging.getLogger("uvicorn.error").warning("stdlib.inside")
    """
)


def test_trace_id_on_lines_inside_a_span_only() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PYTHONPATH": "libs"},
    )
    trace_id = done.stdout.strip()
    assert len(trace_id) == 32
    lines = {line["event"]: line for line in map(json.loads, done.stderr.splitlines())}
    assert "trace_id" not in lines["before.on"]
    assert "trace_id" not in lines["outside.span"]
    assert lines["inside.span"]["trace_id"] == trace_id
    assert lines["stdlib.inside"]["trace_id"] == trace_id
