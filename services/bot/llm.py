"""Async client for any OpenAI-compatible Chat Completions endpoint, with bounded retries."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Literal, Protocol, Self

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from baton import tracing
from baton.settings import Settings
from services.bot.metrics import BotMetrics, default_metrics

logger = structlog.get_logger()

HANDOFF_TOOL_NAME = "handoff_to_human"

HANDOFF_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": HANDOFF_TOOL_NAME,
        "description": (
            "Hand the conversation to a human agent of the business. Use it when the customer "
            "asks for a person, is upset, or needs something only a person can do."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "reason": {
                    "type": "string",
                    "description": "Why a human is needed, in a few words.",
                },
                "summary": {
                    "type": "string",
                    "description": (
                        "Short summary for the agent: what the customer wants and any order "
                        "ids, e-mails or other details they gave."
                    ),
                },
            },
            "required": ["reason", "summary"],
        },
    },
}

Outcome = Literal[
    "ok", "timeout", "rate_limited", "server_error", "rejected", "transport_error", "bad_response"
]
_RETRYABLE: frozenset[Outcome] = frozenset(
    {"timeout", "rate_limited", "server_error", "transport_error"}
)


class LLMUnavailable(Exception):
    """The LLM gave no usable answer: retries exhausted, or the request was rejected (4xx)."""

    def __init__(self, reason: Outcome, *, attempts: int, status_code: int | None = None) -> None:
        super().__init__(f"LLM unavailable: {reason} after {attempts} attempt(s)")
        self.reason: Outcome = reason
        self.attempts = attempts
        self.status_code = status_code


class ChatMessage(BaseModel):
    """One message of the prompt."""

    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class HandoffCall(BaseModel):
    """The arguments of a `handoff_to_human` tool call (empty when the model sent bad JSON)."""

    model_config = ConfigDict(frozen=True)

    reason: str = ""
    summary: str = ""


class LLMReply(BaseModel):
    """The model's answer: text content and, if it called the tool, the handoff."""

    model_config = ConfigDict(frozen=True)

    content: str = ""
    handoff: HandoffCall | None = None


class ChatModel(Protocol):
    """What the bot needs from an LLM."""

    async def complete(self, messages: Sequence[ChatMessage]) -> LLMReply: ...


# --- the wire format, parsed at once -------------------------------------------------------


class _Function(BaseModel):
    name: str
    arguments: str | dict[str, Any] = ""


class _ToolCall(BaseModel):
    function: _Function


class _Message(BaseModel):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(BaseModel):
    message: _Message


class _Completion(BaseModel):
    choices: list[_Choice] = Field(min_length=1)


def parse_completion(payload: object) -> LLMReply:
    """Turn a Chat Completions response body into an `LLMReply` (raises ValidationError)."""
    message = _Completion.model_validate(payload).choices[0].message
    handoff = None
    for call in message.tool_calls or ():
        if call.function.name == HANDOFF_TOOL_NAME:
            handoff = _handoff_arguments(call.function.arguments)
            break
    return LLMReply(content=message.content or "", handoff=handoff)


def _handoff_arguments(raw: str | dict[str, Any]) -> HandoffCall:
    # The model writes the arguments; a broken one still hands off, only without details.
    try:
        decoded = json.loads(raw) if isinstance(raw, str) else raw
        return HandoffCall.model_validate(decoded)
    except (ValueError, ValidationError):
        return HandoffCall()


# --- the client ------------------------------------------------------------------------------


class LLMClient:
    """Chat Completions over httpx: `POST {base_url}/chat/completions` with the handoff tool."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_seconds: float = 30.0,
        max_attempts: int = 3,
        backoff_base_seconds: float = 0.5,
        backoff_max_seconds: float = 8.0,
        temperature: float | None = None,
        metrics: BotMetrics | None = None,
        http: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff_base = backoff_base_seconds
        self._backoff_max = backoff_max_seconds
        self._temperature = temperature
        self._metrics = metrics or default_metrics()
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), transport=tracing.http_transport("llm")
        )
        self._rng = rng or random.Random()

    @classmethod
    def from_settings(cls, settings: Settings, *, metrics: BotMetrics | None = None) -> Self | None:
        """A client for the configured LLM, or None when BATON_LLM_BASE_URL is unset."""
        if not settings.llm_base_url:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=key,
            timeout_seconds=settings.llm_timeout_seconds,
            max_attempts=settings.llm_max_attempts,
            metrics=metrics,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_http:
            await self._http.aclose()

    async def complete(self, messages: Sequence[ChatMessage]) -> LLMReply:
        """Ask the model; retry timeouts, 429 and 5xx with backoff, then raise LLMUnavailable."""
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [message.model_dump() for message in messages],
            "tools": [HANDOFF_TOOL],
            "tool_choice": "auto",
        }
        if self._temperature is not None:
            body["temperature"] = self._temperature
        for attempt in range(1, self._max_attempts + 1):
            outcome, response = await self._attempt(body)
            if outcome == "ok" and response is not None:
                try:
                    return parse_completion(response.json())
                except ValueError:  # JSONDecodeError and ValidationError alike
                    outcome = "bad_response"
            status = response.status_code if response is not None else None
            if outcome not in _RETRYABLE or attempt == self._max_attempts:
                self._metrics.llm_gave_up.labels(reason=outcome).inc()
                logger.warning("llm.gave_up", reason=outcome, status_code=status, attempts=attempt)
                raise LLMUnavailable(outcome, attempts=attempt, status_code=status)
            delay = self._backoff(attempt, response)
            logger.info(
                "llm.retrying", reason=outcome, status_code=status, attempt=attempt, delay=delay
            )
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    async def _attempt(self, body: dict[str, Any]) -> tuple[Outcome, httpx.Response | None]:
        started = time.perf_counter()
        outcome: Outcome
        response: httpx.Response | None = None
        try:
            # A hard deadline per attempt: httpx's own timeouts apply per phase, not in total.
            async with asyncio.timeout(self._timeout):
                response = await self._http.post(self._url, json=body, headers=self._headers)
        except (TimeoutError, httpx.TimeoutException):
            outcome = "timeout"
        except httpx.TransportError:
            outcome = "transport_error"
        else:
            outcome = _classify(response.status_code)
        self._metrics.llm_latency.observe(time.perf_counter() - started)
        self._metrics.llm_requests.labels(outcome=outcome).inc()
        return outcome, response

    def _backoff(self, attempt: int, response: httpx.Response | None) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * 2.0 ** (attempt - 1))
        delay = ceiling * self._rng.uniform(0.5, 1.0)
        retry_after = _retry_after_seconds(response)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self._backoff_max)


def _classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status == 408:
        return "timeout"
    return "rejected"


def _retry_after_seconds(response: httpx.Response | None) -> float | None:
    if response is None:
        return None
    raw: str = response.headers.get("retry-after", "")
    try:
        return max(float(raw), 0.0)
    except ValueError:  # absent, or an HTTP date: fall back to our own backoff
        return None
