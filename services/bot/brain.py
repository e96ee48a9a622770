"""The bot's decision for one debounced burst: reply, stay silent, or hand off to a human.

Order: a customer asking for a person hands off without asking the LLM for a reply; otherwise
the LLM (or the offline responder when none is configured) answers. A `handoff_to_human` tool
call hands off; the cannot-help marker, or an offline "no answer", is a fallback reply unless it
is the `max_failed_turns`-th in a row, which hands off; an LLM that stays down after its bounded
retries hands off with an extractive summary, so no customer is silently dropped. When an LLM
is configured, a handoff the bot decided itself (keywords, repeated failures) carries the
model's own summary for the agent above the extracted facts, bounded by SUMMARY_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, TypeAlias

import structlog

from baton.messages import AskBot
from baton.store.knowledge_records import PastAnswer
from baton.types import Author
from services.bot import handoff_rules, offline
from services.bot.knowledge import examples_for_model, hours_for_model
from services.bot.llm import HANDOFF_TOOL_NAME, ChatMessage, ChatModel, LLMUnavailable
from services.bot.metrics import BotMetrics
from services.bot.policy import BotPolicy
from services.bot.summary import summarize
from services.bot.types import BotDecision, Handoff, HandoffReason, NoReply, Reply, Turn

logger = structlog.get_logger()

_Role: TypeAlias = Literal["user", "assistant"]

# Message types whose content WhatsApp does not give us (a poll, a view-once photo …).
UNREADABLE_TYPES = frozenset({"unsupported"})

# WhatsApp caps a text at 4096 characters; leave room for a configured bot prefix.
MAX_REPLY_CHARS = 4000

# Whose words a turn is, from the model's point of view. The business's people speak as the
# assistant so that the bot stays consistent with them.
_ROLES: dict[Author, _Role] = {
    Author.CUSTOMER: "user",
    Author.BOT: "assistant",
    Author.HUMAN: "assistant",
    Author.APP: "assistant",
    Author.SYSTEM: "assistant",
}


async def answer(
    request: AskBot,
    history: Sequence[Turn],
    *,
    llm: ChatModel | None,
    policy: BotPolicy,
    metrics: BotMetrics | None = None,
    examples: Sequence[PastAnswer] = (),
    now: datetime | None = None,
) -> BotDecision:
    """Decide what to do with `request`'s burst, given the earlier turns (oldest first).

    `examples` are this number's past answers to similar questions (for the LLM); `now` is the
    moment opening hours are judged at (default: the burst's last message).
    """
    if now is None and request.messages:
        now = request.messages[-1].timestamp
    log = logger.bind(
        conversation_id=request.conversation_id, request_id=request.request_id, epoch=request.epoch
    )
    prior = prior_turns(request, history)
    decision = await _decide(request, prior, llm=llm, policy=policy, examples=examples, now=now)
    if isinstance(decision, Handoff) and decision.reason in _LLM_SUMMARIZED and llm is not None:
        burst = _burst(request)
        headline = await _llm_summary(llm, prior, burst, policy)
        if headline is not None:
            decision = _handoff(decision.reason, prior, burst, policy, headline=headline)
    if isinstance(decision, Handoff):
        log.info("bot.handoff", reason=decision.reason.value)
    elif isinstance(decision, NoReply):
        log.info("bot.no_reply")
    else:
        log.info("bot.reply", answered=decision.answered, chars=len(decision.text))
    if metrics is not None:
        metrics.observe_decision(decision)
    return decision


async def _decide(
    request: AskBot,
    prior: Sequence[Turn],
    *,
    llm: ChatModel | None,
    policy: BotPolicy,
    examples: Sequence[PastAnswer],
    now: datetime | None,
) -> BotDecision:
    if request.messages and all(m.type in UNREADABLE_TYPES for m in request.messages):
        # Nothing to read, so nothing for the model or the rules to go on: say so, in the
        # number's language. Not a failed turn: it never counts towards a handoff.
        return Reply(text=policy.texts.unreadable)
    burst = _burst(request)
    if not burst:
        return NoReply()
    if handoff_rules.asks_for_human(burst, policy.handoff_phrases) is not None:
        return _handoff(HandoffReason.CUSTOMER_ASKED, prior, burst, policy)
    if llm is None:
        found = offline.respond(burst, policy, now=now)
        if found.text is None:
            return NoReply()
        if found.answered:
            return Reply(text=found.text)
        return _unanswered(found.text, prior, burst, policy)
    try:
        reply = await llm.complete(build_messages(prior, burst, policy, examples=examples, now=now))
    except LLMUnavailable as exc:
        logger.warning(
            "bot.llm_unavailable",
            conversation_id=request.conversation_id,
            request_id=request.request_id,
            reason=exc.reason,
            attempts=exc.attempts,
        )
        return _handoff(HandoffReason.LLM_UNAVAILABLE, prior, burst, policy)
    except Exception:
        # A bug or an unexpected client error would otherwise be retried and dead-lettered,
        # leaving the customer unanswered; a human is the better failure.
        logger.exception(
            "bot.llm_error", conversation_id=request.conversation_id, request_id=request.request_id
        )
        return _handoff(HandoffReason.LLM_UNAVAILABLE, prior, burst, policy)
    if reply.handoff is not None:
        note = reply.handoff.reason.strip() or None
        return _handoff(
            HandoffReason.LLM_TOOL_CALL,
            prior,
            burst,
            policy,
            note=note,
            headline=reply.handoff.summary,
        )
    text = reply.content.strip()
    if policy.cannot_help_marker in text:
        texts = policy.texts
        return _unanswered(
            texts.llm_unanswered.format(cannot_answer=texts.cannot_answer), prior, burst, policy
        )
    if not text:
        return NoReply()
    return Reply(text=text[:MAX_REPLY_CHARS])


def _burst(request: AskBot) -> list[str]:
    return [message.text.strip() for message in request.messages if message.text.strip()]


# Handoffs the bot decided without the model's own summary; when an LLM is configured it writes
# one for the agent (a tool-call handoff brings its own; an LLM that is down cannot).
_LLM_SUMMARIZED = frozenset({HandoffReason.CUSTOMER_ASKED, HandoffReason.BOT_FAILED})
# The handoff waits this long for the model's summary at most, then goes with the extractive one.
SUMMARY_TIMEOUT_SECONDS = 8.0

_SUMMARY_PROMPT = """A human agent of the business is taking over this WhatsApp conversation from the automated \
assistant. Write a summary for the agent in {language}: one or two short sentences saying what \
the customer wants and anything they are waiting for. Do not greet, do not address the customer, \
do not invent facts.\
"""


async def _llm_summary(
    llm: ChatModel, prior: Sequence[Turn], burst: Sequence[str], policy: BotPolicy
) -> str | None:
    """The model's summary of the conversation for the agent, or None to keep the extractive one."""
    recent = prior[-policy.history_turns :] if policy.history_turns else []
    transcript = "\n".join(
        [*(f"{_ROLES[turn.author]}: {turn.text.strip()}" for turn in recent)]
        + [f"user: {text}" for text in burst]
    )
    prompt = _SUMMARY_PROMPT.format(language=policy.texts.language_name)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_SECONDS):
            reply = await llm.complete(
                [
                    ChatMessage(role="system", content=prompt),
                    ChatMessage(role="user", content=transcript),
                ]
            )
    except (LLMUnavailable, TimeoutError) as exc:
        logger.warning("bot.summary_unavailable", error=repr(exc))
        return None
    except Exception:  # the handoff must not fail for want of a nicer summary
        logger.exception("bot.summary_failed")
        return None
    text = (reply.handoff.summary if reply.handoff is not None else reply.content).strip()
    if not text or policy.cannot_help_marker in text:
        return None
    return text


def prior_turns(request: AskBot, history: Sequence[Turn]) -> list[Turn]:
    """`history` without empty turns and without the burst's own messages (matched by wamid)."""
    in_burst = {message.wamid for message in request.messages}
    return [
        turn
        for turn in history
        if turn.text.strip() and (turn.wamid is None or turn.wamid not in in_burst)
    ]


def build_messages(
    prior: Sequence[Turn],
    burst: Sequence[str],
    policy: BotPolicy,
    *,
    examples: Sequence[PastAnswer] = (),
    now: datetime | None = None,
) -> list[ChatMessage]:
    """The prompt: system rules, past-answer examples, the last `history_turns` turns, then the
    burst as one user turn."""
    recent = prior[-policy.history_turns :] if policy.history_turns else []
    turns: list[tuple[_Role, str]] = [(_ROLES[turn.author], turn.text.strip()) for turn in recent]
    turns.append(("user", "\n".join(burst)))
    merged: list[tuple[_Role, str]] = []
    # Some servers' chat templates demand alternating roles, so consecutive turns are merged.
    for role, content in turns:
        if merged and merged[-1][0] == role:
            merged[-1] = (role, merged[-1][1] + "\n" + content)
        else:
            merged.append((role, content))
    hours_now = (
        hours_for_model(policy.hours, now, policy.language)
        if policy.hours is not None and now is not None
        else None
    )
    system = [
        ChatMessage(
            role="system", content=policy.full_system_prompt(HANDOFF_TOOL_NAME, hours_now=hours_now)
        )
    ]
    shown = examples_for_model(examples)
    if shown is not None:
        system.append(ChatMessage(role="system", content=shown))
    return [*system, *(ChatMessage(role=role, content=content) for role, content in merged)]


def _unanswered(
    text: str, prior: Sequence[Turn], burst: Sequence[str], policy: BotPolicy
) -> BotDecision:
    streak = handoff_rules.unanswered_streak(prior, policy.unanswered_markers)
    if handoff_rules.too_many_failures(streak, policy.max_failed_turns):
        return _handoff(HandoffReason.BOT_FAILED, prior, burst, policy)
    return Reply(text=text, answered=False)


def _handoff(
    reason: HandoffReason,
    prior: Sequence[Turn],
    burst: Sequence[str],
    policy: BotPolicy,
    *,
    note: str | None = None,
    headline: str | None = None,
) -> Handoff:
    customer = [turn.text for turn in prior if turn.author is Author.CUSTOMER]
    summary = summarize(
        [*customer, *burst],
        language=policy.language,
        reason_note=note or policy.texts.reason_notes[reason],
        headline=headline,
    )
    return Handoff(reason=reason, summary=summary.text)
