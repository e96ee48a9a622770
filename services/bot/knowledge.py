"""The bot's use of a number's knowledge: opening-hours answers, past-answer examples, sources.

Pure text functions first (what the customer or the model reads), then the two shells: where a
number's knowledge comes from (the console's stored edit, else the numbers file) and the
background pass that keeps the past-answer index up to date.
"""

from __future__ import annotations

import asyncio
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time

import structlog

from baton.backoff import Backoff, wait_or_stop
from baton.knowledge import Knowledge, OpeningHours, mask_personal_data, status_at
from baton.knowledge.hours import WEEKDAYS
from baton.settings import NumbersConfig
from baton.store import Store
from baton.store.knowledge_records import PastAnswer
from baton.types import PhoneNumberId
from services.bot.texts import TEXTS
from services.bot.types import Language

log = structlog.get_logger()


@dataclass(frozen=True)
class _HoursTexts:
    days: tuple[str, ...]  # Monday first
    closed: str
    open_now: str  # {closes}
    closed_now: str  # {next}
    closed_holiday: str  # {holiday} {next}
    no_next: str
    schedule: str  # {schedule}
    at: str  # "{day} {time}"


_HOURS: dict[Language, _HoursTexts] = {
    "pt-BR": _HoursTexts(
        days=("seg", "ter", "qua", "qui", "sex", "sáb", "dom"),
        closed="fechado",
        open_now="Estamos abertos agora, até {closes}.",
        closed_now="Agora estamos fechados. Abrimos {next}.",
        closed_holiday="Hoje estamos fechados ({holiday}). Abrimos {next}.",
        no_next="Agora estamos fechados.",
        schedule="Horário: {schedule}.",
        at="{day} às {time}",
    ),
    "en": _HoursTexts(
        days=("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
        closed="closed",
        open_now="We're open now, until {closes}.",
        closed_now="We're closed right now. We open {next}.",
        closed_holiday="We're closed today ({holiday}). We open {next}.",
        no_next="We're closed right now.",
        schedule="Hours: {schedule}.",
        at="{day} at {time}",
    ),
    "es": _HoursTexts(
        days=("lun", "mar", "mié", "jue", "vie", "sáb", "dom"),
        closed="cerrado",
        open_now="Estamos abiertos ahora, hasta las {closes}.",
        closed_now="Ahora estamos cerrados. Abrimos el {next}.",
        closed_holiday="Hoy estamos cerrados ({holiday}). Abrimos el {next}.",
        no_next="Ahora estamos cerrados.",
        schedule="Horario: {schedule}.",
        at="{day} a las {time}",
    ),
}


def weekly_schedule(hours: OpeningHours, language: Language) -> str:
    """ "seg 08:00-18:00; …; dom fechado" in the number's language."""
    texts = _HOURS[language]
    parts = []
    for index, day in enumerate(WEEKDAYS):
        intervals = hours.weekly.get(day, ())
        spans = ", ".join(f"{_hhmm(i.opens)}-{_hhmm(i.closes)}" for i in intervals)
        parts.append(f"{texts.days[index]} {spans or texts.closed}")
    return "; ".join(parts)


def hours_answer(hours: OpeningHours, now: datetime, language: Language) -> str:
    """The answer to "are you open now?": open or closed, until or from when, and the week."""
    texts = _HOURS[language]
    status = status_at(hours, now)
    if status.open_now:
        assert status.closes_at is not None
        first = texts.open_now.format(closes=_hhmm(status.closes_at.time()))
    elif status.next_opening is None:
        first = texts.no_next
    else:
        opening = status.next_opening
        when = texts.at.format(day=texts.days[opening.weekday()], time=_hhmm(opening.time()))
        template = texts.closed_holiday if status.holiday is not None else texts.closed_now
        holiday = status.holiday.name if status.holiday is not None else ""
        first = template.format(next=when, holiday=holiday or texts.closed)
    return f"{first} {texts.schedule.format(schedule=weekly_schedule(hours, language))}"


def hours_for_model(hours: OpeningHours, now: datetime, language: Language) -> str:
    """Opening hours as the system prompt states them, with the business's local time now."""
    status = status_at(hours, now)
    local = status.local_now.strftime("%Y-%m-%d %H:%M")
    return (
        f"Opening hours ({hours.timezone}): {weekly_schedule(hours, language)}. "
        f"Local time now: {local}. {hours_answer(hours, now, language)}"
    )


_EXAMPLES_HEADER = (
    "Past answers this business gave to similar questions from other customers. They show how "
    "the business answers; they are not facts about this customer, and they may be out of date: "
    "use them only where they fit."
)


def examples_for_model(examples: Sequence[PastAnswer]) -> str | None:
    """The retrieved examples as one system message, personal data masked; None when empty."""
    if not examples:
        return None
    blocks = [
        f"Example {index}:\nCustomer: {mask_personal_data(example.question)}\n"
        f"Business: {mask_personal_data(example.answer)}"
        for index, example in enumerate(examples, start=1)
    ]
    return "\n\n".join([_EXAMPLES_HEADER, *blocks])


def _hhmm(moment: time) -> str:
    # `time.max` is how a day that closes at midnight is kept.
    return "24:00" if moment == time.max else moment.strftime("%H:%M")


# Bot replies that say "I can't answer" teach nothing: the indexer skips them.
CANNOT_ANSWER_PREFIXES: tuple[str, ...] = tuple(texts.cannot_answer for texts in TEXTS.values())

# How long the bot trusts a knowledge base it read from the store.
CACHE_SECONDS = 10.0


class KnowledgeSource:
    """A number's knowledge: the console's stored edit if any, else the numbers file's."""

    def __init__(self, store: Store, numbers: NumbersConfig) -> None:
        self._store = store
        self._numbers = numbers
        self._cache: dict[PhoneNumberId, tuple[float, Knowledge]] = {}

    async def get(self, phone_number_id: PhoneNumberId) -> Knowledge:
        cached = self._cache.get(phone_number_id)
        now = clock.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        stored = await self._store.load_knowledge(phone_number_id)
        knowledge = (
            stored.knowledge if stored is not None else self._numbers.get(phone_number_id).knowledge
        )
        self._cache[phone_number_id] = (now, knowledge)
        return knowledge


# A pass that found this many new answers runs again at once; otherwise the indexer rests.
INDEX_BATCH = 5000
INDEX_IDLE_SECONDS = 1.0


async def keep_index_current(store: Store, numbers: NumbersConfig, stop: asyncio.Event) -> None:
    """Index new business answers until `stop`; a store outage only delays it."""
    languages = {number: cfg.language for number, cfg in numbers.numbers.items()}
    backoff = Backoff(base=0.5, cap=30.0)
    failures = 0
    while not stop.is_set():
        try:
            added, more = await store.index_past_answers(
                languages=languages,
                default_language="pt-BR",
                skip_bot_prefixes=CANNOT_ANSWER_PREFIXES,
                batch=INDEX_BATCH,
            )
        except Exception as exc:
            failures += 1
            log.warning("knowledge.index_failed", error=repr(exc), failures=failures)
            delay = backoff.delay(failures)
        else:
            failures = 0
            if added:
                log.debug("knowledge.indexed", pairs=added)
            delay = 0.0 if more else INDEX_IDLE_SECONDS
        if delay:
            await wait_or_stop(stop, delay)
