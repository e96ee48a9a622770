"""The fake LLM (tests/fakes/llm.py) as its own process on uvloop, answering every call late.

    .venv/bin/python -m bench.llm_sim PORT [DELAY_SECONDS]

Every chat completion answers the fake's echo reply after DELAY_SECONDS (a real model's time to
answer), concurrently. The fake records each request for tests; a benchmark sends tens of
thousands, so the record is cleared every second to keep the process's memory flat.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools

import uvloop

from simulator import serving
from tests.fakes.llm import FakeLLM, Step

_SCRIPTED = 1_000_000  # references to one step: a few MB, more calls than any run makes


async def _serve(port: int, delay: float) -> None:
    fake = FakeLLM()
    fake.script(*itertools.repeat(Step(delay_seconds=delay), _SCRIPTED))
    async with serving(fake.app, port=port):
        while True:
            await asyncio.sleep(1.0)
            fake.requests.clear()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("delay", type=float, nargs="?", default=0.3)
    args = parser.parse_args()
    uvloop.run(_serve(args.port, args.delay))
