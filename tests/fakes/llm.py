"""A fake OpenAI-compatible LLM: a real HTTP server on 127.0.0.1 with scripted behaviour.

In-process::

    async with serve_fake_llm() as fake:
        client = LLMClient(base_url=fake.base_url, model="fake", api_key="k")
        fake.fail_next(2, status=503)       # then the default reply
        hold = fake.hold_next()             # the next call waits until hold.release()

As a process: ``python -m tests.fakes.llm --port 8090``; base URL ``http://127.0.0.1:8090/v1``.

Every call to ``POST /v1/chat/completions`` is recorded and consumes the next scripted `Step`
(when none is left: the default reply, ``"Resposta: <last user message>"``). Control over HTTP:

- ``POST /_control/steps`` with ``{"steps": [Step, ...]}`` appends steps;
- ``POST /_control/holds`` → ``{"hold_id": ...}``: the next call waits until released;
- ``GET /_control/holds/{id}`` → ``{"arrived": bool, "released": bool}``;
- ``POST /_control/holds/{id}/release``;
- ``GET /_control/requests`` → the recorded requests; ``POST /_control/reset``.

Speech-to-text (media, issue 18): ``POST /v1/audio/transcriptions`` (multipart ``file`` +
``model``, as OpenAI's) answers ``{"text": ...}``: whatever follows ``TRANSCRIPT:`` in the
audio bytes (tests "record" speech that way), else ``"(inaudible)"``; ``fail_transcriptions(n)``
makes the next n answer 500; ``GET /_control/transcriptions`` lists what was asked. A chat
completion whose user turn carries an ``image_url`` part answers a fixed description naming the
image's size, like a vision model.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile as FormFile

ECHO_PREFIX = "Resposta: "
TRANSCRIPT_MARKER = b"TRANSCRIPT:"  # fake "speech": the words after it in the audio bytes
VISION_PREFIX = "A photo: "  # the fake vision model's description starts so


class Step(BaseModel):
    """What the fake does for one call."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["reply", "tool_call", "empty", "error", "hang", "malformed"] = "reply"
    text: str | None = None  # reply: None → the echo reply
    status: int = 500  # error: the HTTP status
    retry_after: float | None = None  # error: a Retry-After header, in seconds
    reason: str = "the customer needs a person"  # tool_call
    summary: str = ""  # tool_call
    arguments: str | None = None  # tool_call: raw JSON arguments, overriding reason/summary
    delay_seconds: float = Field(default=0.0, ge=0)  # answer this late


class RecordedRequest(BaseModel):
    """One call the fake received."""

    model_config = ConfigDict(frozen=True)

    body: dict[str, Any]
    authorization: str | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        found = self.body.get("messages", [])
        return found if isinstance(found, list) else []


class Hold:
    """A gate on one call: it waits, after arriving, until `release()`."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()

    @property
    def arrived(self) -> bool:
        return self._arrived.is_set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def wait_arrived(self, timeout: float = 5.0) -> None:
        """Wait until the held call reached the fake (raises TimeoutError)."""
        async with asyncio.timeout(timeout):
            await self._arrived.wait()

    def release(self) -> None:
        self._released.set()

    async def pass_through(self) -> None:
        """Called by the held request: announce arrival, then wait for the release."""
        self._arrived.set()
        await self._released.wait()


class FakeLLM:
    """The fake's state and its FastAPI app."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.base_url = ""
        self._steps: deque[Step] = deque()
        self._pending_holds: deque[Hold] = deque()
        self._holds: dict[str, Hold] = {}
        self._stopping = asyncio.Event()
        self.transcriptions: list[dict[str, Any]] = []
        self._failing_transcriptions = 0
        self.app = self._build_app()

    # --- scripting ---------------------------------------------------------------------------

    def script(self, *steps: Step) -> None:
        """Queue steps for the next calls, in order."""
        self._steps.extend(steps)

    def reply_next(self, text: str, *, delay_seconds: float = 0.0) -> None:
        self.script(Step(text=text, delay_seconds=delay_seconds))

    def fail_next(
        self, count: int = 1, *, status: int = 500, retry_after: float | None = None
    ) -> None:
        self.script(*[Step(kind="error", status=status, retry_after=retry_after)] * count)

    def hang_next(self, count: int = 1) -> None:
        """The next `count` calls never answer (until the fake stops): the client times out."""
        self.script(*[Step(kind="hang")] * count)

    def handoff_next(self, reason: str = "the customer needs a person", summary: str = "") -> None:
        self.script(Step(kind="tool_call", reason=reason, summary=summary))

    def empty_next(self) -> None:
        self.script(Step(kind="empty"))

    def fail_transcriptions(self, count: int = 1) -> None:
        """The next `count` transcription requests answer HTTP 500."""
        self._failing_transcriptions += count

    def hold_next(self) -> Hold:
        """Hold the next call that arrives until the returned gate is released."""
        hold = Hold()
        self._pending_holds.append(hold)
        self._holds[hold.id] = hold
        return hold

    def reset(self) -> None:
        """Forget steps and recorded requests; release every hold."""
        self._steps.clear()
        self.requests.clear()
        self.transcriptions.clear()
        self._failing_transcriptions = 0
        self.release_all()
        self._pending_holds.clear()
        self._holds.clear()

    def release_all(self) -> None:
        for hold in self._holds.values():
            hold.release()

    def stop(self) -> None:
        """Let hanging and held calls finish so the server can shut down."""
        self._stopping.set()
        self.release_all()

    # --- the app -----------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            if not isinstance(body, dict):
                raise HTTPException(status_code=400, detail="body must be an object")
            self.requests.append(
                RecordedRequest(body=body, authorization=request.headers.get("authorization"))
            )
            step = self._steps.popleft() if self._steps else Step()
            if self._pending_holds:
                hold = self._pending_holds.popleft()
                await hold.pass_through()
            if step.delay_seconds:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), step.delay_seconds)
            return await self._respond(step, body)

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Response:
            async with request.form() as form:
                upload = form.get("file")
                audio = await upload.read() if isinstance(upload, FormFile) else b""
                model = form.get("model")
                self.transcriptions.append(
                    {
                        "model": model if isinstance(model, str) else None,
                        "bytes": len(audio),
                        "filename": upload.filename if isinstance(upload, FormFile) else None,
                        "authorization": request.headers.get("authorization"),
                    }
                )
            if self._failing_transcriptions > 0:
                self._failing_transcriptions -= 1
                return JSONResponse({"error": {"message": "scripted failure"}}, status_code=500)
            _, marker, spoken = audio.partition(TRANSCRIPT_MARKER)
            text = spoken.decode("utf-8", "replace").strip() if marker else "(inaudible)"
            return JSONResponse({"text": text})

        @app.get("/_control/transcriptions")
        async def list_transcriptions() -> list[dict[str, Any]]:
            return self.transcriptions

        @app.post("/_control/steps", status_code=204)
        async def add_steps(request: Request) -> None:
            payload = await request.json()
            self.script(*(Step.model_validate(step) for step in payload.get("steps", [])))

        @app.post("/_control/holds")
        async def add_hold() -> dict[str, str]:
            return {"hold_id": self.hold_next().id}

        @app.get("/_control/holds/{hold_id}")
        async def get_hold(hold_id: str) -> dict[str, bool]:
            hold = self._hold(hold_id)
            return {"arrived": hold.arrived, "released": hold.released}

        @app.post("/_control/holds/{hold_id}/release", status_code=204)
        async def release_hold(hold_id: str) -> None:
            self._hold(hold_id).release()

        @app.get("/_control/requests")
        async def list_requests() -> list[dict[str, Any]]:
            return [recorded.model_dump() for recorded in self.requests]

        @app.post("/_control/reset", status_code=204)
        async def reset() -> None:
            self.reset()

        return app

    def _hold(self, hold_id: str) -> Hold:
        hold = self._holds.get(hold_id)
        if hold is None:
            raise HTTPException(status_code=404, detail="unknown hold")
        return hold

    async def _respond(self, step: Step, body: dict[str, Any]) -> Response:
        model = str(body.get("model", "fake"))
        if step.kind == "error":
            headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after else None
            error = {"error": {"message": "scripted failure", "type": "fake_error"}}
            return JSONResponse(error, status_code=step.status, headers=headers)
        if step.kind == "malformed":  # 200, but not a completion
            return JSONResponse({"object": "something.else"})
        if step.kind == "hang":
            await self._stopping.wait()
            return JSONResponse({"error": {"message": "fake stopped"}}, status_code=503)
        if step.kind == "tool_call":
            arguments = step.arguments
            if arguments is None:
                arguments = json.dumps({"reason": step.reason, "summary": step.summary})
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {"name": "handoff_to_human", "arguments": arguments},
                    }
                ],
            }
            return JSONResponse(_completion(model, message, "tool_calls"))
        content = "" if step.kind == "empty" else step.text
        image = _image_part(body)
        if content is None and image is not None:
            content = f"{VISION_PREFIX}{image}"
        if content is None:
            content = ECHO_PREFIX + _last_user_text(body)
        return JSONResponse(_completion(model, {"role": "assistant", "content": content}, "stop"))


def _completion(model: str, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _image_part(body: dict[str, Any]) -> str | None:
    """A description of the last user turn's image (`image_url` data URL), if it has one."""
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            url = part.get("image_url", {}).get("url", "") if isinstance(part, dict) else ""
            if isinstance(url, str) and url.startswith("data:"):
                header, _, data = url.partition(",")
                size = len(base64.b64decode(data)) if ";base64" in header else len(data)
                return f"{header.removeprefix('data:').split(';')[0]} of {size} bytes"
    return None


def _last_user_text(body: dict[str, Any]) -> str:
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
    return ""


class _Server(uvicorn.Server):
    # In-process the test runner owns the signals; uvicorn must not take SIGINT/SIGTERM over.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _config(app: FastAPI, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", ws="none", **kwargs
    )


@contextlib.asynccontextmanager
async def serve_fake_llm(*, startup_timeout: float = 5.0) -> AsyncIterator[FakeLLM]:
    """Run a `FakeLLM` on a free 127.0.0.1 port for the duration of the block."""
    fake = FakeLLM()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(_config(fake.app, timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if task.done():
                task.result()  # raises the startup error
                raise RuntimeError("fake LLM server exited during startup")
            if time.monotonic() > deadline:
                raise TimeoutError("fake LLM server did not start")
            await asyncio.sleep(0.01)
        fake.base_url = f"http://127.0.0.1:{port}/v1"
        yield fake
    finally:
        fake.stop()
        server.should_exit = True
        await task
        sock.close()


def main(argv: list[str] | None = None) -> None:
    """Run the fake as a process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    fake = FakeLLM()
    uvicorn.Server(_config(fake.app, host=args.host, port=args.port)).run()


if __name__ == "__main__":
    main()
