"""The built-in offline responder: what the bot says when no LLM is configured.

It keeps the stack usable end to end with no network, and it is deliberately modest. Given the
customer's burst (one or more messages) and the number's policy, the first rule that applies
wins:

1. **FAQ**: a message contains one of an entry's question variants, or nearly all of a
   variant's longer words (so "qual é o valor do frete?" finds "valor do frete") → its answer;
   asking for the opening hours ("horário", "what time do you open", "a qué hora abren" …) →
   whether the business is open right now in its time zone (holidays included), until or from
   when, and the week's hours; or the free-text `business_hours`. With no hours configured the
   question is *not answered* (rule 5): the bot never invents facts.
2. **Greeting**: every word of the burst is a greeting ("oi", "bom dia", "hello", "hola,
   buenas tardes") → a greeting that introduces the bot as an automated virtual assistant.
3. **Thanks / goodbye**: every word is thanks or goodbye ("obrigado!", "thanks, bye") →
   "you're welcome".
4. **Acknowledgement**: the burst is only "ok", "blz", "vale", emoji and the like → no reply.
5. **Anything else is not answered**: the reply starts with the fixed "I can't answer that
   yet" sentence of the number's language, echoes a short summary of the burst ("I noted your
   message: “…”") and says which word reaches a person. It counts towards the failure streak
   that hands off to a human after `max_failed_turns`.

Replies are in the number's language (pt-BR by default, en, es) and never pretend to come from
a human.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.bot._text import clip, find, words
from services.bot.knowledge import hours_answer
from services.bot.policy import BotPolicy
from services.bot.texts import assistant_name

ECHO_CHARS = 120

HOURS_PHRASES: tuple[str, ...] = (
    # pt
    "horario", "horarios", "que horas abre", "que horas abrem", "que horas fecha",
    "que horas fecham", "ate que horas", "voces abrem", "esta aberto", "estao abertos",
    "funcionamento", "abre hoje", "abrem hoje",
    # es
    "a que hora abren", "a que hora cierran", "hasta que hora", "estan abiertos",
    "esta abierto", "abren hoy",
    # en
    "opening hours", "business hours", "office hours", "store hours", "your hours",
    "what time do you open", "what time do you close", "are you open", "when do you open",
    "when do you close", "open today",
)  # fmt: skip

GREETING_WORDS: frozenset[str] = frozenset(
    {
        "oi", "ola", "opa", "eai", "bom", "boa", "dia", "tarde", "noite", "tudo", "bem",
        "hola", "buenas", "buenos", "dias", "tardes", "noches", "que", "tal",
        "hi", "hello", "hey", "good", "morning", "afternoon", "evening", "there",
    }
)  # fmt: skip

THANKS_WORDS: frozenset[str] = frozenset(
    {
        "obrigado", "obrigada", "obg", "brigado", "valeu", "muito", "tchau", "ate", "mais",
        "logo", "gracias", "muchas", "adios", "hasta", "luego",
        "thanks", "thank", "you", "thx", "ty", "much", "so", "bye", "goodbye", "see", "later",
    }
)  # fmt: skip
_THANKS_CORE = frozenset(
    {"obrigado", "obrigada", "obg", "brigado", "valeu", "gracias", "thanks", "thank", "thx", "ty"}
    | {"tchau", "adios", "bye", "goodbye"}
)

ACK_WORDS: frozenset[str] = frozenset(
    {"ok", "okay", "okk", "blz", "beleza", "certo", "entendi", "vale", "dale", "perfeito"}
    | {"perfecto", "entendido", "got", "it", "cool", "k", "kk", "sure", "fine", "great"}
)


class OfflineAnswer(BaseModel):
    """The offline responder's answer: `text` None means send nothing."""

    model_config = ConfigDict(frozen=True)

    text: str | None
    answered: bool


# A variant matches loosely when the burst holds this share of its words of 4+ letters.
FAQ_COVERAGE = 0.75
_CONTENT_WORD_LETTERS = 4


def respond(
    messages: Sequence[str], policy: BotPolicy, *, now: datetime | None = None
) -> OfflineAnswer:
    """Answer a burst of customer messages without an LLM (rules in the module docstring)."""
    texts = policy.texts
    burst = [message for message in messages if message.strip()]
    tokens = tuple(token for message in burst for token in words(message))
    for entry in policy.faq:
        if any(_asks(tokens, phrase) for phrase in entry.phrases):
            return OfflineAnswer(text=entry.answer, answered=True)
    asks_hours = any(find(tokens, words(phrase)) >= 0 for phrase in HOURS_PHRASES)
    if asks_hours and policy.hours is not None and now is not None:
        return OfflineAnswer(text=hours_answer(policy.hours, now, policy.language), answered=True)
    if asks_hours and policy.business_hours:
        return OfflineAnswer(text=texts.hours.format(hours=policy.business_hours), answered=True)
    if not asks_hours and tokens:
        vocabulary = set(tokens)
        if vocabulary <= GREETING_WORDS:
            assistant = assistant_name(texts, policy.business_name)
            return OfflineAnswer(text=texts.greeting.format(assistant=assistant), answered=True)
        if vocabulary & _THANKS_CORE and vocabulary <= THANKS_WORDS | GREETING_WORDS:
            return OfflineAnswer(text=texts.thanks, answered=True)
    if not tokens or set(tokens) <= ACK_WORDS:
        return OfflineAnswer(text=None, answered=True)
    echo = clip(" / ".join(burst), ECHO_CHARS)
    return OfflineAnswer(
        text=texts.offline_unanswered.format(cannot_answer=texts.cannot_answer, echo=echo),
        answered=False,
    )


def _asks(tokens: Sequence[str], variant: str) -> bool:
    """The burst contains the variant, or most of its content words."""
    wanted = words(variant)
    if find(tokens, wanted) >= 0:
        return True
    content = {word for word in wanted if len(word) >= _CONTENT_WORD_LETTERS}
    if len(content) < 2:
        return False
    return len(content & set(tokens)) / len(content) >= FAQ_COVERAGE
