"""The console's audit trail: every accepted action, with who did it and through which door.

Each takeover, release and send accepted by the agent API (`via: api`) or an MCP client
(`via: mcp`) leaves one row in the store's audit log and one `AgentActed` event on
`baton.events` (so `/events` shows it). Both come right after the change itself: the change
is already saved and, for a send, already with the outbox, so a failure here is logged and
counted but never turns a done action into an error the caller would retry.
"""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from baton.messages import AgentActed, utcnow
from baton.store.audit_records import AuditEntry, Via
from baton.types import ConversationId, Mode, PhoneNumberId, WaId
from services.console import metrics
from services.console.agents import Principal
from services.console.context import Console

log = structlog.get_logger()

__all__ = ["Via", "record"]


async def record(
    console: Console,
    principal: Principal,
    action: str,
    *,
    via: Via,
    conversation_id: ConversationId,
    phone_number_id: PhoneNumberId,
    wa_id: WaId,
    mode: Mode,
    epoch: int,
    changed: bool,
    detail: Mapping[str, str] | None = None,
) -> None:
    """Audit one accepted action and announce it as an `AgentActed` event."""
    now = utcnow()
    entry = AuditEntry(
        at=now,
        principal=principal.id,
        principal_kind=principal.kind.value,
        via=via,
        action=action,
        conversation_id=conversation_id,
        phone_number_id=phone_number_id,
        changed=changed,
        mode=mode,
        epoch=epoch,
        detail=dict(detail or {}),
    )
    # Broad on purpose: the action is done; a lost audit row is logged and counted, not raised.
    try:
        await console.store.record_audit(entry)
    except Exception:
        metrics.AUDIT_FAILURES.labels(step="store").inc()
        log.exception("console.audit_not_recorded", conversation_id=conversation_id, action=action)
    event = AgentActed(
        conversation_id=conversation_id,
        phone_number_id=phone_number_id,
        wa_id=wa_id,
        at=now,
        action=action,
        principal=principal.id,
        principal_kind=principal.kind.value,
        via=via.value,
        changed=changed,
        mode=mode,
        epoch=epoch,
        idempotency_key=(detail or {}).get("idempotency_key"),
    )
    try:
        await console.broker.publish_event(event)
    except Exception:
        metrics.AUDIT_FAILURES.labels(step="event").inc()
        log.exception("console.audit_event_not_published", conversation_id=conversation_id)
