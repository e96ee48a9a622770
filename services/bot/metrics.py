"""The bot's Prometheus metrics, registered on an injected registry."""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from services.bot.types import BotDecision, Handoff, NoReply

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


class BotMetrics:
    """LLM calls and bot decisions; build one per registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.llm_requests = Counter(
            "baton_llm_requests",
            "HTTP requests to the LLM, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.llm_latency = Histogram(
            "baton_llm_latency_seconds",
            "Duration of one HTTP request to the LLM, whatever its outcome.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.llm_gave_up = Counter(
            "baton_llm_gave_up",
            "LLM calls abandoned after bounded retries or a rejected request, by last outcome.",
            ["reason"],
            registry=registry,
        )
        self.decisions = Counter(
            "baton_bot_decisions",
            "Bot decisions: reply, unanswered (fallback reply), no_reply or handoff.",
            ["decision", "reason"],
            registry=registry,
        )

    def observe_decision(self, decision: BotDecision) -> None:
        """Count one decision."""
        if isinstance(decision, Handoff):
            self.decisions.labels(decision="handoff", reason=decision.reason.value).inc()
        elif isinstance(decision, NoReply):
            self.decisions.labels(decision="no_reply", reason="").inc()
        else:
            kind = "reply" if decision.answered else "unanswered"
            self.decisions.labels(decision=kind, reason="").inc()


@cache
def default_metrics() -> BotMetrics:
    """The process-wide metrics on prometheus-client's default registry (registered once)."""
    return BotMetrics(REGISTRY)
