"""The console's Prometheus metrics (`baton_console_*`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIONS = Counter(
    "baton_console_actions_total",
    "Agent and bot actions through the console, by action and outcome.",
    ["action", "outcome"],  # takeover|release|send_human|send_bot; ok|unchanged|conflict|…
)
AUTH_FAILURES = Counter(
    "baton_console_auth_failures_total",
    "Requests refused with 401, by reason.",
    ["reason"],  # missing|unknown_token|session_expired
)
FORBIDDEN = Counter(
    "baton_console_forbidden_total",
    "Requests refused with 403 (an authenticated caller acting beyond its rights).",
)
SSE_CLIENTS = Gauge("baton_console_sse_clients", "Clients connected to GET /events.")
SSE_EVENTS = Counter(
    "baton_console_sse_events_total",
    "Conversation events fanned out to SSE clients, by outcome.",
    ["outcome"],  # received|delivered|dropped
)
# --- mcp/audit (issue 14) ---
AUDIT_FAILURES = Counter(
    "baton_console_audit_failures_total",
    "Accepted actions whose audit row or AgentActed event could not be written, by step.",
    ["step"],  # store|event
)
MCP_CALLS = Counter(
    "baton_console_mcp_tool_calls_total",
    "MCP tool calls, by tool and outcome.",
    ["tool", "outcome"],  # ok|refused|error
)
# --- desk (issue 11) ---
SIGN_INS = Counter(
    "baton_console_sign_ins_total",
    "Desk sign-in attempts, by outcome.",
    ["outcome"],  # ok|refused|throttled
)
CSRF_REFUSED = Counter(
    "baton_console_csrf_refused_total",
    "Desk writes refused for a missing or wrong CSRF token or a foreign Origin.",
)
# --- workflow (issue 12) ---
ASSIGNMENTS = Counter(
    "baton_console_assignments_total",
    "Conversations given to an agent, by how.",
    ["how"],  # auto|transfer|takeover
)
REQUEUED = Counter(
    "baton_console_requeued_total",
    "Conversations put back in the queue, by cause.",
    ["cause"],  # transfer|offline
)
RESOLVED = Counter(
    "baton_console_resolved_total",
    "Human services ended by resolve, by outcome (unknown outcomes count as other).",
    ["outcome"],  # none|solved|not_solved|spam|other
)
FIRST_RESPONSE_SECONDS = Histogram(
    "baton_console_first_response_seconds",
    "From the handoff to the first human answer, for resolved services.",
    buckets=(10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400),
)
HANDLING_SECONDS = Histogram(
    "baton_console_handling_seconds",
    "From the handoff to the resolve, for resolved services.",
    buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
)
QUEUE_WAIT_SECONDS = Histogram(
    "baton_console_queue_wait_seconds",
    "How long a customer had waited when auto-assignment gave the conversation to an agent.",
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600),
)
AGENTS = Gauge(
    "baton_console_agents",
    "Configured agents by presence (as of this replica's last sweep).",
    ["status"],  # online|away|offline
)
QUEUE_WAITING = Gauge(
    "baton_console_queue_waiting",
    "Human-mode conversations nobody holds on auto-assigned numbers (last sweep).",
)
NOTES = Counter("baton_console_notes_total", "Private notes written.")
