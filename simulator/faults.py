"""Meta-shaped error bodies and the faults a test can queue on the simulator."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from baton.types import JSON


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)


def error_body(code: int, message: str, details: str | None = None) -> JSON:
    """`{"error": {...}}` exactly as the Graph API shapes it (ref §7)."""
    error: JSON = {"message": message, "type": "OAuthException", "code": code}
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = fbtrace_id()
    return {"error": error}


@dataclass(frozen=True)
class GraphErrorSpec:
    """An error answer: Meta's JSON body, or `html` for a proxy's page (then `code` is None)."""

    http_status: int
    code: int | None
    message: str
    details: str | None = None
    html: str | None = None

    def body(self) -> JSON | str:
        if self.html is not None or self.code is None:
            return self.html or ""
        return error_body(self.code, self.message, self.details)


THROUGHPUT = GraphErrorSpec(
    400, 130429, "(#130429) Rate limit hit", "Cloud API message throughput has been reached."
)
PAIR_RATE = GraphErrorSpec(
    400,
    131056,
    "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    "Message failed to send because there were too many messages sent from this phone number "
    "to the same phone number in a short period of time.",
)
SERVER_ERROR = GraphErrorSpec(
    500, 131000, "(#131000) Something went wrong", "Message failed to send due to an unknown error."
)
UNAVAILABLE = GraphErrorSpec(
    503, 131016, "(#131016) Service unavailable", "A service is temporarily unavailable."
)
OUTSIDE_WINDOW = GraphErrorSpec(
    400,
    131047,
    "(#131047) Re-engagement message",
    "More than 24 hours have passed since the recipient last replied to the sender number.",
)
UNDELIVERABLE = GraphErrorSpec(
    400, 131026, "(#131026) Message undeliverable", "Message failed to send: recipient unknown."
)
SPAM = GraphErrorSpec(
    400,
    131048,
    "(#131048) Spam rate limit hit",
    "Message failed to send because there are restrictions on how many messages can be sent "
    "from this phone number.",
)
MAINTENANCE = GraphErrorSpec(
    400, 131057, "(#131057) Account in maintenance mode", "Throughput upgrade in progress."
)
AUTH = GraphErrorSpec(401, 190, "Invalid OAuth access token - Cannot parse access token")
UNKNOWN_OBJECT = GraphErrorSpec(
    400,
    100,
    "Unsupported post request. Object with ID does not exist, cannot be loaded due to missing "
    "permissions, or does not support this operation.",
)
# Meta's answer to a repeated smb_app_data sync is undocumented: a permanent-class 400 stands in.
SYNC_ALREADY_REQUESTED = GraphErrorSpec(
    400,
    100,
    "(#100) Invalid parameter",
    "This sync type was already requested for this phone number; it can be requested once.",
)


def invalid_parameter(details: str) -> GraphErrorSpec:
    return GraphErrorSpec(400, 100, "(#100) Invalid parameter", details)


class Endpoint(StrEnum):
    """Which kind of request a fault applies to."""

    SEND = "send"
    MARK_READ = "mark_read"
    SMB_APP_DATA = "smb_app_data"
    MEDIA_INFO = "media_info"  # GET /{media-id}
    MEDIA_DOWNLOAD = "media_download"  # the short-lived URL
    MEDIA_UPLOAD = "media_upload"  # POST /{phone_number_id}/media


class FaultKind(StrEnum):
    THROUGHPUT = "throughput"  # 400 / 130429
    PAIR_RATE = "pair_rate"  # 400 / 131056
    SERVER_ERROR = "server_error"  # 500 / 131000
    UNAVAILABLE = "unavailable"  # 503 / 131016
    OUTSIDE_WINDOW = "outside_window"  # 400 / 131047
    UNDELIVERABLE = "undeliverable"  # 400 / 131026
    SPAM = "spam"  # 400 / 131048
    MAINTENANCE = "maintenance"  # 400 / 131057
    AUTH = "auth"  # 401 / 190
    ERROR = "error"  # any http_status + code given in the fault
    BAD_GATEWAY = "bad_gateway"  # a load balancer's HTML 502, no Meta body
    DELAY = "delay"  # processed normally, answered after `seconds`
    HANG = "hang"  # processed normally, answered only when the simulator stops or resets


PRESETS: dict[FaultKind, GraphErrorSpec] = {
    FaultKind.THROUGHPUT: THROUGHPUT,
    FaultKind.PAIR_RATE: PAIR_RATE,
    FaultKind.SERVER_ERROR: SERVER_ERROR,
    FaultKind.UNAVAILABLE: UNAVAILABLE,
    FaultKind.OUTSIDE_WINDOW: OUTSIDE_WINDOW,
    FaultKind.UNDELIVERABLE: UNDELIVERABLE,
    FaultKind.SPAM: SPAM,
    FaultKind.MAINTENANCE: MAINTENANCE,
    FaultKind.AUTH: AUTH,
}

BAD_GATEWAY = GraphErrorSpec(
    502, None, "Bad Gateway", html="<html><body><h1>502 Bad Gateway</h1></body></html>"
)


class Fault(BaseModel):
    """Answer the next `count` requests of `endpoint` for a number ("*" = any) this way.

    Delay and hang faults do not change the outcome, only when it is told: the request is
    processed (a send is accepted and recorded) and the answer comes late or never, which is
    what a client timeout against Meta looks like.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    phone_number_id: str = "*"
    endpoint: Endpoint = Endpoint.SEND
    count: int = Field(default=1, ge=1)
    http_status: int | None = None
    code: int | None = None
    message: str | None = None
    details: str | None = None
    seconds: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.kind is FaultKind.ERROR and (self.http_status is None or self.code is None):
            raise ValueError("an 'error' fault needs http_status and code")
        if self.kind is FaultKind.DELAY and self.seconds is None:
            raise ValueError("a 'delay' fault needs seconds")
        return self

    @property
    def holds(self) -> bool:
        return self.kind in (FaultKind.DELAY, FaultKind.HANG)

    @property
    def hold_seconds(self) -> float:
        """How long a delay or hang holds the answer (`math.inf`: until released)."""
        return self.seconds if self.kind is FaultKind.DELAY and self.seconds else math.inf

    def error(self) -> GraphErrorSpec:
        """The error this fault answers with (not meaningful for delay and hang)."""
        if self.kind is FaultKind.BAD_GATEWAY:
            return BAD_GATEWAY
        preset = PRESETS.get(self.kind)
        http_status = self.http_status or (preset.http_status if preset else 400)
        code = self.code if self.code is not None else (preset.code if preset else 0)
        message = self.message or (preset.message if preset else f"(#{code}) Simulated error")
        details = self.details if self.details is not None else (preset.details if preset else None)
        return GraphErrorSpec(http_status, code, message, details)
