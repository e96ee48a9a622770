"""The simulator's memory and decisions, free of HTTP: each request in, one `Reply` out.

Order of checks for a send, as Meta would plausibly apply them: unknown number, auth, body
validation, queued faults, the number's throughput window, the pair limit, then accept.
Throughput counts accepted sends only: rejected attempts do not eat the window (Meta's own
accounting is undocumented), so a client that backs off recovers within a second.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from baton.types import JSON
from simulator import faults
from simulator.config import NumberConfig, SimConfig
from simulator.faults import Endpoint, Fault, GraphErrorSpec
from simulator.media import SEND_KINDS, StoredMedia, new_media, upload_problem
from simulator.records import (
    MediaFetch,
    MediaUpload,
    NumberStats,
    Outcome,
    ReadReceipt,
    SentMessage,
    Stats,
    SyncRequest,
    WebhookDelivery,
)
from simulator.webhooks import new_wamid

MAX_TEXT_LENGTH = 4096
SYNC_TYPES = frozenset({"smb_app_state_sync", "history"})
_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class Reply:
    """What to answer: status and body, after `delay` seconds (`inf`: until released)."""

    http_status: int
    body: JSON | str  # str: a non-JSON (HTML) body
    delay: float = 0.0
    accepted_send: SentMessage | None = None  # drives status webhooks


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int


class SimState:
    """Numbers, throughput windows, queued faults and everything received."""

    def __init__(self, config: SimConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self.numbers: dict[str, NumberConfig] = {n.phone_number_id: n for n in config.numbers}
        self._listeners: list[Callable[[], None]] = []
        self.reset()

    def reset(self) -> None:
        """Forget traffic, faults, windows and syncs; keep numbers and config."""
        self.sent: list[SentMessage] = []
        self.reads: list[ReadReceipt] = []
        self.syncs: list[SyncRequest] = []
        self.deliveries: list[WebhookDelivery] = []
        self._faults: deque[_QueuedFault] = deque()
        self._windows: dict[str, deque[float]] = {}
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._stats: dict[str, NumberStats] = {}
        self._synced: set[tuple[str, str]] = set()
        self.media: dict[str, StoredMedia] = {}
        self.uploads: list[MediaUpload] = []
        self.media_fetches: list[MediaFetch] = []
        self._seq = 0
        self._changed()

    # --- configuration ---------------------------------------------------------------

    def register(self, number: NumberConfig) -> None:
        self.numbers[number.phone_number_id] = number

    def rate_limit(self, number: NumberConfig) -> int:
        if number.rate is not None:
            return number.rate
        return self.config.coexistence_rate if number.coexistence else self.config.default_rate

    def inject(self, fault: Fault) -> None:
        self._faults.append(_QueuedFault(fault, fault.count))

    def clear_faults(self) -> None:
        self._faults.clear()

    def pending_faults(self) -> list[Fault]:
        return [q.fault.model_copy(update={"count": q.remaining}) for q in self._faults]

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every new record (lets in-process tests wait on events)."""
        self._listeners.append(listener)

    # --- queries ---------------------------------------------------------------------

    def messages(
        self,
        phone_number_id: str | None = None,
        to: str | None = None,
        outcome: Outcome | None = None,
    ) -> list[SentMessage]:
        wa_id = to.removeprefix("+") if to else None
        return [
            m
            for m in self.sent
            if (phone_number_id is None or m.phone_number_id == phone_number_id)
            and (wa_id is None or m.wa_id == wa_id)
            and (outcome is None or m.outcome is outcome)
        ]

    def stats(self) -> Stats:
        numbers = {pnid: s.model_copy() for pnid, s in self._stats.items()}
        return Stats(
            throughput_errors=sum(s.throughput_errors for s in numbers.values()),
            pair_rate_errors=sum(s.pair_rate_errors for s in numbers.values()),
            accepted=sum(s.accepted for s in numbers.values()),
            rejected=sum(s.rejected for s in numbers.values()),
            numbers=numbers,
        )

    def record_delivery(self, delivery: WebhookDelivery) -> None:
        self.deliveries.append(delivery)
        self._changed()

    # --- POST /{version}/{phone_number_id}/messages -----------------------------------

    def post_messages(self, phone_number_id: str, authorization: str | None, body: Any) -> Reply:
        number = self._number(phone_number_id)
        if number is None:
            return _error(faults.UNKNOWN_OBJECT)
        if isinstance(body, dict) and body.get("status") == "read":
            return self._mark_read(number, authorization, body)
        return self._send(number, authorization, body)

    def _send(self, number: NumberConfig, authorization: str | None, body: Any) -> Reply:
        now = self._clock()
        record = SentMessage(
            seq=0,
            phone_number_id=number.phone_number_id,
            outcome=Outcome.REJECTED,
            http_status=0,
            at=now,
            received_at=datetime.now(UTC),
            **_send_fields(body),
        )
        if not self._authorized(number, authorization):
            return self._reject_send(record, faults.AUTH)
        problem = _send_problem(body) or self._media_problem(number, record)
        if problem is not None:
            return self._reject_send(record, faults.invalid_parameter(problem))
        error, delay = self._apply_fault(number.phone_number_id, Endpoint.SEND)
        if error is not None:
            return self._reject_send(record, error)
        stats = self._stats_for(number.phone_number_id)
        if not self._within_throughput(number, now):
            stats.throughput_errors += 1
            return self._reject_send(record, faults.THROUGHPUT)
        if not self._within_pair_rate(number.phone_number_id, record.wa_id, now):
            stats.pair_rate_errors += 1
            return self._reject_send(record, faults.PAIR_RATE)
        self._windows.setdefault(number.phone_number_id, deque()).append(now)
        wamid = new_wamid()
        accepted = self._store_send(
            record.model_copy(
                update={"outcome": Outcome.ACCEPTED, "http_status": 200, "wamid": wamid}
            )
        )
        response = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": record.to, "wa_id": record.wa_id}],
            "messages": [{"id": wamid}],
        }
        return Reply(200, response, delay=delay, accepted_send=accepted)

    def _reject_send(self, record: SentMessage, error: GraphErrorSpec) -> Reply:
        self._store_send(
            record.model_copy(update={"http_status": error.http_status, "error_code": error.code})
        )
        return _error(error)

    def _store_send(self, record: SentMessage) -> SentMessage:
        stored = record.model_copy(update={"seq": self._next_seq()})
        self.sent.append(stored)
        stats = self._stats_for(stored.phone_number_id)
        if stored.outcome is Outcome.ACCEPTED:
            stats.accepted += 1
        else:
            stats.rejected += 1
        self._changed()
        return stored

    def _mark_read(self, number: NumberConfig, authorization: str | None, body: JSON) -> Reply:
        message_id = body.get("message_id")
        indicator = body.get("typing_indicator")
        error: GraphErrorSpec | None = None
        delay = 0.0
        if not self._authorized(number, authorization):
            error = faults.AUTH
        elif body.get("messaging_product") != "whatsapp":
            error = faults.invalid_parameter("The parameter messaging_product is required.")
        elif not isinstance(message_id, str) or not message_id:
            error = faults.invalid_parameter("The parameter message_id is required.")
        else:
            error, delay = self._apply_fault(number.phone_number_id, Endpoint.MARK_READ)
        self.reads.append(
            ReadReceipt(
                seq=self._next_seq(),
                phone_number_id=number.phone_number_id,
                outcome=Outcome.REJECTED if error else Outcome.ACCEPTED,
                http_status=error.http_status if error else 200,
                error_code=error.code if error else None,
                at=self._clock(),
                received_at=datetime.now(UTC),
                message_id=message_id if isinstance(message_id, str) else None,
                typing=isinstance(indicator, dict) and indicator.get("type") == "text",
            )
        )
        self._changed()
        if error is not None:
            return _error(error)
        return Reply(200, {"success": True}, delay=delay)

    # --- media (ref §8) ------------------------------------------------------------------

    def add_media(
        self, content: bytes, mime_type: str, *, filename: str | None = None
    ) -> StoredMedia:
        """A file a customer sent: webhooks name its id, Baton downloads it."""
        media = new_media(content, mime_type, filename=filename)
        self.media[media.id] = media
        return media

    def get_media_info(
        self, media_id: str, authorization: str | None, download_root: str
    ) -> Reply | None:
        """`GET /{media-id}`; None when `media_id` is no media (it may be a phone number)."""
        media = self.media.get(media_id)
        if media is None:
            return None
        error, delay = self._media_access(media, authorization, Endpoint.MEDIA_INFO)
        self._record_fetch(media, "info", error)
        if error is not None:
            return _error(error)
        url = f"{download_root}/_media/{media.id}?hash={media.download_token}"
        body = {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": media.mime_type,
            "sha256": media.sha256_hex,
            "file_size": len(media.content),
            "id": media.id,
        }
        return Reply(200, body, delay=delay)

    def download_media(
        self, media_id: str, token: str | None, authorization: str | None
    ) -> tuple[Reply, bytes | None]:
        """The short-lived URL: the bytes, only with its hash and the bearer token."""
        media = self.media.get(media_id)
        if media is None or token != media.download_token:
            return Reply(404, {"error": {"message": "URL signature mismatch"}}), None
        error, delay = self._media_access(media, authorization, Endpoint.MEDIA_DOWNLOAD)
        self._record_fetch(media, "download", error)
        if error is not None:
            return _error(error), None
        return Reply(200, {}, delay=delay), media.content

    def upload_media(
        self,
        phone_number_id: str,
        authorization: str | None,
        form: dict[str, str],
        content: bytes | None,
        filename: str | None,
    ) -> Reply:
        """`POST /{phone_number_id}/media` (multipart: file, type, messaging_product)."""
        number = self._number(phone_number_id)
        if number is None:
            return _error(faults.UNKNOWN_OBJECT)
        mime_type = form.get("type")
        error: GraphErrorSpec | None = None
        delay = 0.0
        media_id: str | None = None
        if not self._authorized(number, authorization):
            error = faults.AUTH
        elif form.get("messaging_product") != "whatsapp":
            error = faults.invalid_parameter("The parameter messaging_product is required.")
        elif content is None or not mime_type:
            error = faults.invalid_parameter("The parameters file and type are required.")
        elif (problem := upload_problem(mime_type, len(content))) is not None:
            error = faults.invalid_parameter(problem)
        else:
            error, delay = self._apply_fault(number.phone_number_id, Endpoint.MEDIA_UPLOAD)
        if error is None and content is not None and mime_type:
            media = new_media(
                content,
                mime_type,
                phone_number_id=number.phone_number_id,
                uploaded=True,
                filename=filename,
            )
            self.media[media.id] = media
            media_id = media.id
        self.uploads.append(
            MediaUpload(
                seq=self._next_seq(),
                phone_number_id=number.phone_number_id,
                outcome=Outcome.REJECTED if error else Outcome.ACCEPTED,
                http_status=error.http_status if error else 200,
                error_code=error.code if error else None,
                at=self._clock(),
                received_at=datetime.now(UTC),
                mime_type=mime_type,
                size=len(content or b""),
                filename=filename,
                media_id=media_id,
            )
        )
        self._changed()
        if error is not None:
            return _error(error)
        return Reply(200, {"id": media_id}, delay=delay)

    def _media_access(
        self, media: StoredMedia, authorization: str | None, endpoint: Endpoint
    ) -> tuple[GraphErrorSpec | None, float]:
        owner = media.phone_number_id
        number = self.numbers.get(owner) if owner != "*" else None
        expected = (number.token if number else None) or self.config.token
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or token != expected:
            return faults.AUTH, 0.0
        return self._apply_fault(owner, endpoint)

    def _record_fetch(self, media: StoredMedia, step: str, error: GraphErrorSpec | None) -> None:
        self.media_fetches.append(
            MediaFetch(
                seq=self._next_seq(),
                phone_number_id=media.phone_number_id,
                outcome=Outcome.REJECTED if error else Outcome.ACCEPTED,
                http_status=error.http_status if error else 200,
                error_code=error.code if error else None,
                at=self._clock(),
                received_at=datetime.now(UTC),
                media_id=media.id,
                step=step,
            )
        )
        self._changed()

    def _media_problem(self, number: NumberConfig, record: SentMessage) -> str | None:
        """A file sent by id must be one this number uploaded (as Meta's ids are per number)."""
        if record.type not in SEND_KINDS:
            return None
        media = self.media.get(record.media_id or "")
        if media is None or not media.uploaded or media.phone_number_id != number.phone_number_id:
            return f"Param {record.type}['id'] is not a valid media id for this phone number."
        return None

    # --- POST /{version}/{phone_number_id}/smb_app_data --------------------------------

    def post_smb_app_data(
        self, phone_number_id: str, authorization: str | None, body: Any
    ) -> Reply:
        number = self._number(phone_number_id)
        if number is None:
            return _error(faults.UNKNOWN_OBJECT)
        raw_type = body.get("sync_type") if isinstance(body, dict) else None
        sync_type = raw_type if isinstance(raw_type, str) else None
        error: GraphErrorSpec | None = None
        delay = 0.0
        request_id: str | None = None
        if not self._authorized(number, authorization):
            error = faults.AUTH
        elif not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            error = faults.invalid_parameter("The parameter messaging_product is required.")
        elif sync_type not in SYNC_TYPES:
            error = faults.invalid_parameter(
                "Param sync_type must be one of {smb_app_state_sync, history}."
            )
        else:
            error, delay = self._apply_fault(number.phone_number_id, Endpoint.SMB_APP_DATA)
            if error is None and (number.phone_number_id, sync_type) in self._synced:
                error = faults.SYNC_ALREADY_REQUESTED
            if error is None:
                self._synced.add((number.phone_number_id, sync_type))
                request_id = uuid.uuid4().hex
        self.syncs.append(
            SyncRequest(
                seq=self._next_seq(),
                phone_number_id=number.phone_number_id,
                outcome=Outcome.REJECTED if error else Outcome.ACCEPTED,
                http_status=error.http_status if error else 200,
                error_code=error.code if error else None,
                at=self._clock(),
                received_at=datetime.now(UTC),
                sync_type=sync_type,
                request_id=request_id,
            )
        )
        self._changed()
        if error is not None:
            return _error(error)
        return Reply(200, {"messaging_product": "whatsapp", "request_id": request_id}, delay=delay)

    # --- helpers -----------------------------------------------------------------------

    def _number(self, phone_number_id: str) -> NumberConfig | None:
        number = self.numbers.get(phone_number_id)
        if number is None and not self.config.strict_numbers:
            number = NumberConfig(phone_number_id=phone_number_id)
            self.numbers[phone_number_id] = number
        return number

    def _authorized(self, number: NumberConfig, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        expected = number.token or self.config.token
        return scheme.lower() == "bearer" and token == expected

    def _apply_fault(
        self, phone_number_id: str, endpoint: Endpoint
    ) -> tuple[GraphErrorSpec | None, float]:
        """The next queued fault as (error to answer, seconds to hold the answer)."""
        fault = self._take_fault(phone_number_id, endpoint)
        if fault is None:
            return None, 0.0
        if fault.holds:
            return None, fault.hold_seconds
        return fault.error(), 0.0

    def _take_fault(self, phone_number_id: str, endpoint: Endpoint) -> Fault | None:
        # A fault for this very number wins over a wildcard one queued earlier.
        candidates = [
            q
            for q in self._faults
            if q.fault.endpoint is endpoint and q.fault.phone_number_id in (phone_number_id, "*")
        ]
        if not candidates:
            return None
        exact = [q for q in candidates if q.fault.phone_number_id == phone_number_id]
        queued = (exact or candidates)[0]
        queued.remaining -= 1
        if queued.remaining == 0:
            self._faults.remove(queued)
        return queued.fault

    def _within_throughput(self, number: NumberConfig, now: float) -> bool:
        window = self._windows.setdefault(number.phone_number_id, deque())
        while window and window[0] <= now - _WINDOW_SECONDS:
            window.popleft()
        return len(window) < self.rate_limit(number)

    def _within_pair_rate(self, phone_number_id: str, wa_id: str, now: float) -> bool:
        pair_rate = self.config.pair_rate
        if pair_rate is None:
            return True
        key = (phone_number_id, wa_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(pair_rate.burst), updated=now)
        refill = (now - bucket.updated) / pair_rate.seconds_per_message
        bucket.tokens = min(float(pair_rate.burst), bucket.tokens + refill)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _stats_for(self, phone_number_id: str) -> NumberStats:
        return self._stats.setdefault(phone_number_id, NumberStats())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


def _error(error: GraphErrorSpec) -> Reply:
    return Reply(error.http_status, error.body())


def _send_fields(body: Any) -> dict[str, Any]:
    """What can be read from a send body, however broken, for the record."""
    if not isinstance(body, dict):
        return {"to": "", "wa_id": ""}
    to = body.get("to")
    text = body.get("text")
    context = body.get("context")
    opaque = body.get("biz_opaque_callback_data")
    type_ = body.get("type", "text")
    to_str = to if isinstance(to, str) else ""
    message_body = text.get("body") if isinstance(text, dict) else None
    reply_to = context.get("message_id") if isinstance(context, dict) else None
    media = body.get(type_) if isinstance(type_, str) and type_ in SEND_KINDS else None
    media = media if isinstance(media, dict) else {}
    return {
        "to": to_str,
        "wa_id": to_str.strip().removeprefix("+"),
        "type": type_ if isinstance(type_, str) else None,
        "body": message_body if isinstance(message_body, str) else None,
        "reply_to": reply_to if isinstance(reply_to, str) else None,
        "biz_opaque_callback_data": opaque if isinstance(opaque, str) else None,
        "media_id": media.get("id") if isinstance(media.get("id"), str) else None,
        "caption": media.get("caption") if isinstance(media.get("caption"), str) else None,
        "filename": media.get("filename") if isinstance(media.get("filename"), str) else None,
    }


def _send_problem(body: Any) -> str | None:
    """Why Meta would refuse this send body (error 100), or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required."
    to = body.get("to")
    if not isinstance(to, str) or not to.strip():
        return "The parameter to is required."
    if not to.strip().removeprefix("+").isdigit():
        return "Param to must be a phone number."
    kind = body.get("type", "text")
    if kind in SEND_KINDS:
        media = body.get(kind)
        if not isinstance(media, dict) or not isinstance(media.get("id"), str):
            return f"The parameter {kind}['id'] is required (the simulator sends files by id)."
        caption = media.get("caption")
        if caption is not None and kind not in ("image", "video", "document"):
            return f"Param {kind}['caption'] is not allowed."
        return None
    if kind == "template":  # the workflow's templates (issue 12): name and language code
        template = body.get("template")
        language = template.get("language") if isinstance(template, dict) else None
        if not (
            isinstance(template, dict)
            and isinstance(template.get("name"), str)
            and isinstance(language, dict)
            and isinstance(language.get("code"), str)
        ):
            return "The parameters template['name'] and template['language']['code'] are required."
        return None
    if kind != "text":
        return "The simulator only accepts messages of type text or media sent by id."
    text = body.get("text")
    message_body = text.get("body") if isinstance(text, dict) else None
    if not isinstance(message_body, str) or not message_body:
        return "The parameter text['body'] is required."
    if len(message_body) > MAX_TEXT_LENGTH:
        return f"Param text['body'] must be at most {MAX_TEXT_LENGTH} characters long."
    context = body.get("context")
    if context is not None and not (
        isinstance(context, dict) and isinstance(context.get("message_id"), str)
    ):
        return "The parameter context['message_id'] is required."
    return None
