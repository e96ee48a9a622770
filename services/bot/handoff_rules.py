"""Pure rules that hand a conversation to a human without asking the LLM.

1. **The customer asks for a person.** Each configured entry is matched against each clause
   (a message cut at punctuation) of each customer message of the burst, accent- and
   case-insensitively, on whole words:

   - an entry of several words ("falar com atendente", "talk to a human") is a *phrase*: it
     matches anywhere in the clause, with articles ignored on both sides (so "falar com um
     atendente" matches "falar com atendente"), unless one of the three words before it is a
     negation ("não quero falar com atendente");
   - an entry of one word ("atendente", "agent") is a *keyword*: it matches only a clause made
     of keywords and filler words ("Atendente!", "agent please", "quero um humano"), so that
     "agentes de viagem" or "the agent at the store was rude" do not hand off.

   One flat tuple configures both (`NumberSettings.handoff_keywords`); the default is the
   Portuguese, Spanish and English lists together, since customers do not always write in the
   number's language.

2. **N consecutive turns the bot could not answer.** When the LLM answers with the
   cannot-help marker, or the offline responder has no answer, the bot replies with a fallback
   that starts with a fixed sentence (`Texts.cannot_answer`). The streak is counted from the
   history, so the bot keeps no state of its own: walking back from the newest turn, customer
   turns are skipped, each bot turn containing a fallback sentence adds one, and any other bot
   turn (an answer) or a human, app or system turn (someone else spoke; the conversation was
   handed over) ends the streak. The turn being answered hands off when it would be the Nth.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from baton.types import Author
from services.bot._text import clauses, find, without, words
from services.bot.types import Turn

PT_PHRASES: tuple[str, ...] = (
    "atendente",
    "humano",
    "gerente",
    "operador",
    "falar com atendente",
    "falar com humano",
    "falar com pessoa",
    "falar com alguem",
    "falar com gente",
    "falar com responsavel",
    "falar com gerente",
    "quero atendente",
    "quero humano",
    "quero pessoa",
    "preciso de atendente",
    "preciso de humano",
    "algum atendente",
    "atendimento humano",
    "atendente humano",
    "pessoa de verdade",
    "pessoa real",
    "ser humano",
    "chamar atendente",
    "chama atendente",
    "transferir para atendente",
    "me transfere",
    "nao quero falar com robo",
    "nao quero falar com bot",
    "nao quero robo",
)

ES_PHRASES: tuple[str, ...] = (
    "agente",
    "humano",
    "asesor",
    "operador",
    "representante",
    "hablar con agente",
    "hablar con humano",
    "hablar con persona",
    "hablar con alguien",
    "hablar con asesor",
    "hablar con operador",
    "hablar con representante",
    "hablar con encargado",
    "quiero agente",
    "quiero humano",
    "quiero persona",
    "necesito agente",
    "agente humano",
    "atencion humana",
    "persona real",
    "persona de verdad",
    "ser humano",
    "no quiero hablar con robot",
    "no quiero hablar con bot",
)

EN_PHRASES: tuple[str, ...] = (
    "agent",
    "human",
    "representative",
    "operator",
    "talk to human",
    "talk to person",
    "talk to someone",
    "talk to agent",
    "talk to representative",
    "talk to manager",
    "speak to human",
    "speak to person",
    "speak to someone",
    "speak to agent",
    "speak to representative",
    "speak to manager",
    "speak with human",
    "speak with agent",
    "real person",
    "real human",
    "live agent",
    "live person",
    "human agent",
    "customer service representative",
    "transfer me",
    "connect me to agent",
    "dont want to talk to bot",
    "dont want to talk to robot",
)

DEFAULT_HANDOFF_PHRASES: tuple[str, ...] = PT_PHRASES + ES_PHRASES + EN_PHRASES

ARTICLES: frozenset[str] = frozenset(
    {"o", "a", "os", "as", "um", "uma", "el", "la", "los", "las", "un", "una", "the", "an"}
)

NEGATIONS: frozenset[str] = frozenset({"nao", "nem", "nunca", "no", "ni", "not", "never", "dont"})

# Words that may surround a keyword without making the message about something else.
FILLERS: frozenset[str] = frozenset(
    {
        # pt
        "quero", "queria", "gostaria", "preciso", "de", "com", "falar", "por", "favor", "pfv",
        "pf", "agora", "ja", "me", "chama", "chamar", "pode", "poderia", "oi", "ola", "alo",
        "ok", "sim", "urgente", "so", "e", "um", "uma", "o", "a",
        # es
        "quiero", "necesito", "hablar", "con", "ahora", "ya", "pasame", "comunicame", "hola",
        "si", "porfa", "un", "el", "la",
        # en
        "i", "want", "need", "to", "talk", "speak", "with", "please", "pls", "plz", "now",
        "get", "hi", "hello", "yes", "can", "could", "an", "the",
    }
)  # fmt: skip

NEGATION_WINDOW = 3


def asks_for_human(messages: Iterable[str], phrases: Sequence[str]) -> str | None:
    """The configured entry that one of `messages` matches, or None."""
    keywords: set[str] = set()
    multi: list[tuple[str, tuple[str, ...]]] = []
    for entry in phrases:
        tokens = without(words(entry), ARTICLES)
        if len(tokens) == 1:
            keywords.add(tokens[0])
        elif tokens:
            multi.append((entry, tokens))
    for clause in (clause for message in messages for clause in clauses(message)):
        tokens = without(words(clause), ARTICLES)
        for entry, phrase in multi:
            if _has_unnegated(tokens, phrase):
                return entry
        found = [token for token in tokens if token in keywords]
        if found and all(token in keywords or token in FILLERS for token in tokens):
            return _entry_for_keyword(found[0], phrases)
    return None


def _has_unnegated(tokens: Sequence[str], phrase: Sequence[str]) -> bool:
    # A phrase that itself starts with a negation ("nao quero robo") is never negated again.
    start = find(tokens, phrase)
    while start >= 0:
        before = tokens[max(0, start - NEGATION_WINDOW) : start]
        if phrase[0] in NEGATIONS or not NEGATIONS.intersection(before):
            return True
        start = find(tokens, phrase, start + 1)
    return False


def _entry_for_keyword(keyword: str, phrases: Sequence[str]) -> str:
    for entry in phrases:
        if without(words(entry), ARTICLES) == (keyword,):
            return entry
    return keyword


def is_unanswered_reply(text: str, markers: Iterable[str]) -> bool:
    """True if a bot message is one of the "could not answer" fallbacks (contains a marker)."""
    tokens = words(text)
    return any(find(tokens, words(marker)) >= 0 for marker in markers)


def unanswered_streak(history: Sequence[Turn], markers: Iterable[str]) -> int:
    """How many of the bot's latest turns in a row were "could not answer" fallbacks."""
    fixed = tuple(markers)
    streak = 0
    for turn in reversed(history):
        if turn.author is Author.CUSTOMER:
            continue
        if turn.author is Author.BOT and is_unanswered_reply(turn.text, fixed):
            streak += 1
            continue
        break
    return streak


def too_many_failures(streak_before: int, max_failed_turns: int | None) -> bool:
    """True if one more unanswered turn after `streak_before` reaches the limit (None: never)."""
    return max_failed_turns is not None and streak_before + 1 >= max_failed_turns
