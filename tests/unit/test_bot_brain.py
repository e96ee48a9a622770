"""The brain without an LLM (offline responder) and its pure helpers."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from baton.messages import AskBot, BurstMessage
from baton.settings import NumberSettings
from baton.types import Author
from services.bot.brain import answer, build_messages, prior_turns
from services.bot.handoff_rules import DEFAULT_HANDOFF_PHRASES
from services.bot.llm import ChatMessage, LLMReply
from services.bot.metrics import BotMetrics
from services.bot.policy import BotPolicy
from services.bot.texts import PT_BR
from services.bot.types import Handoff, HandoffReason, NoReply, Reply, Turn

T0 = datetime(2025, 1, 1, 12, tzinfo=UTC)


def ask(*texts: str, prefix: str = "w") -> AskBot:
    return AskBot(
        conversation_id=7,
        phone_number_id="pn1",
        wa_id="5511999990000",
        epoch=3,
        messages=tuple(
            BurstMessage(
                wamid=f"{prefix}{i}", type="text", text=text, timestamp=T0 + timedelta(seconds=i)
            )
            for i, text in enumerate(texts)
        ),
    )


def turn(author: Author, text: str, minute: int, wamid: str | None = None) -> Turn:
    return Turn(author=author, text=text, at=T0 - timedelta(minutes=60 - minute), wamid=wamid)


POLICY = BotPolicy()
FALLBACK = PT_BR.cannot_answer + " Anotei sua mensagem: “x”."


async def test_keyword_hands_off_with_an_extractive_summary() -> None:
    history = [turn(Author.CUSTOMER, "meu pedido #12345 não chegou", 1)]
    decision = await answer(
        ask("isso não ajuda", "quero falar com um atendente"), history, llm=None, policy=POLICY
    )
    assert isinstance(decision, Handoff)
    assert decision.reason is HandoffReason.CUSTOMER_ASKED
    assert decision.summary.startswith("Motivo: o cliente pediu para falar com uma pessoa\n")
    assert "- quero falar com um atendente" in decision.summary
    assert "Pedidos: 12345" in decision.summary


async def test_offline_greeting_reply() -> None:
    decision = await answer(ask("Oi!"), [], llm=None, policy=POLICY)
    assert decision == Reply(text="Olá! Sou o assistente virtual automático. Como posso ajudar?")


@pytest.mark.parametrize("texts", [("ok",), ("  ", ""), ()])
async def test_nothing_to_answer_is_no_reply(texts: tuple[str, ...]) -> None:
    assert await answer(ask(*texts), [], llm=None, policy=POLICY) == NoReply()


async def test_unanswered_replies_until_the_limit_then_hands_off() -> None:
    policy = BotPolicy(max_failed_turns=3)
    history: list[Turn] = []
    decisions = []
    for minute in range(3):
        decision = await answer(
            ask("blorp?", prefix=f"m{minute}-"), history, llm=None, policy=policy
        )
        decisions.append(decision)
        history.append(turn(Author.CUSTOMER, "blorp?", minute * 2))
        if isinstance(decision, Reply):
            history.append(turn(Author.BOT, decision.text, minute * 2 + 1))
    first, second, third = decisions
    assert isinstance(first, Reply)
    assert not first.answered
    assert first.text.startswith(PT_BR.cannot_answer)
    assert isinstance(second, Reply)
    assert not second.answered
    assert isinstance(third, Handoff)
    assert third.reason is HandoffReason.BOT_FAILED


async def test_a_human_turn_resets_the_failure_streak() -> None:
    history = [
        turn(Author.BOT, FALLBACK, 1),
        turn(Author.BOT, FALLBACK, 2),
        turn(Author.HUMAN, "Oi, sou a Ana. Voltando para o assistente.", 3),
    ]
    decision = await answer(ask("blorp?"), history, llm=None, policy=BotPolicy(max_failed_turns=3))
    assert isinstance(decision, Reply)
    assert not decision.answered


async def test_failure_rule_can_be_disabled() -> None:
    history = [turn(Author.BOT, FALLBACK, m) for m in range(10)]
    decision = await answer(
        ask("blorp?"), history, llm=None, policy=BotPolicy(max_failed_turns=None)
    )
    assert isinstance(decision, Reply)


async def test_decisions_are_counted_when_metrics_are_given() -> None:
    registry = CollectorRegistry()
    metrics = BotMetrics(registry)
    await answer(ask("oi"), [], llm=None, policy=POLICY, metrics=metrics)
    await answer(ask("atendente"), [], llm=None, policy=POLICY, metrics=metrics)
    await answer(ask("ok"), [], llm=None, policy=POLICY, metrics=metrics)
    await answer(ask("blorp"), [], llm=None, policy=POLICY, metrics=metrics)

    def count(decision: str, reason: str = "") -> float | None:
        labels = {"decision": decision, "reason": reason}
        return registry.get_sample_value("baton_bot_decisions_total", labels)

    assert count("reply") == 1
    assert count("handoff", "customer_asked") == 1
    assert count("no_reply") == 1
    assert count("unanswered") == 1


class BrokenModel:
    """A chat model whose client fails in a way the client does not classify."""

    async def complete(self, messages: Sequence[ChatMessage]) -> LLMReply:
        raise RuntimeError("boom")


async def test_an_unexpected_llm_error_hands_off_instead_of_dropping() -> None:
    decision = await answer(ask("meu pedido 98765?"), [], llm=BrokenModel(), policy=POLICY)
    assert isinstance(decision, Handoff)
    assert decision.reason is HandoffReason.LLM_UNAVAILABLE
    assert "Pedidos: 98765" in decision.summary


def test_prior_turns_drop_the_burst_and_empty_turns() -> None:
    request = ask("a", "b")
    history = [
        turn(Author.CUSTOMER, "antes", 1, wamid="old"),
        turn(Author.BOT, "  ", 2),
        turn(Author.CUSTOMER, "a", 3, wamid="w0"),
        turn(Author.CUSTOMER, "b", 4, wamid="w1"),
    ]
    assert [t.text for t in prior_turns(request, history)] == ["antes"]


def test_build_messages_roles_merge_and_window() -> None:
    prior = [
        turn(Author.CUSTOMER, "velho", 0),
        turn(Author.CUSTOMER, "oi", 1),
        turn(Author.BOT, "Olá!", 2),
        turn(Author.HUMAN, "Aqui é a Ana, o prazo é 3 dias.", 3),
        turn(Author.APP, "Confirmado.", 4),
        turn(Author.CUSTOMER, "e o frete?", 5),
    ]
    messages = build_messages(prior, ["quanto custa", "para SP"], BotPolicy(history_turns=5))
    assert [(m.role, m.content) for m in messages[1:]] == [
        ("user", "oi"),
        ("assistant", "Olá!\nAqui é a Ana, o prazo é 3 dias.\nConfirmado."),
        ("user", "e o frete?\nquanto custa\npara SP"),
    ]
    system = messages[0]
    assert system.role == "system"
    assert "[[CANNOT_HELP]]" in system.content
    assert "handoff_to_human" in system.content
    assert "Never claim or pretend to be a human" in system.content
    assert "Brazilian Portuguese" in system.content


def test_history_can_be_left_out() -> None:
    messages = build_messages([turn(Author.CUSTOMER, "x", 1)], ["y"], BotPolicy(history_turns=0))
    assert [(m.role, m.content) for m in messages[1:]] == [("user", "y")]


def test_business_prompt_and_facts_go_before_the_rules() -> None:
    policy = BotPolicy(
        language="es",
        system_prompt="Eres Sofía, asistente de la Pizzería Roma.",
        business_name="Pizzería Roma",
        business_hours="18h-23h",
    )
    content = build_messages([], ["hola"], policy)[0].content
    assert content.startswith("Eres Sofía, asistente de la Pizzería Roma.\n\n")
    assert "Opening hours: 18h-23h" in content
    assert content.index("Opening hours") < content.index("Rules you must always follow")
    assert "Reply in Spanish" in content


def test_policy_for_number() -> None:
    default = BotPolicy.for_number(NumberSettings(phone_number_id="1"))
    assert default.language == "pt-BR"
    assert default.handoff_phrases == DEFAULT_HANDOFF_PHRASES
    custom = BotPolicy.for_number(
        NumberSettings(phone_number_id="1", language="en", handoff_keywords=("human",))
    )
    assert custom.language == "en"
    assert custom.handoff_phrases == ("human",)


@pytest.mark.parametrize(
    ("language", "start"),
    [
        ("pt-BR", "Desculpe, não consegui ler"),
        ("en", "Sorry, I could not read"),
        ("es", "Lo siento"),
    ],
)
async def test_a_burst_we_cannot_read_is_answered_in_the_numbers_language(
    language: str, start: str
) -> None:
    unreadable = ask("[unsupported message]").model_copy(
        update={
            "messages": (
                BurstMessage(
                    wamid="u1", type="unsupported", text="[unsupported message]", timestamp=T0
                ),
            )
        }
    )
    decision = await answer(unreadable, [], llm=None, policy=BotPolicy(language=language))
    assert isinstance(decision, Reply) and decision.text.startswith(start)


async def test_an_unreadable_message_beside_text_leaves_the_text_to_the_responder() -> None:
    mixed = ask("Oi!").model_copy(
        update={
            "messages": (
                BurstMessage(wamid="t1", type="text", text="Oi!", timestamp=T0),
                BurstMessage(
                    wamid="u1", type="unsupported", text="[unsupported message]", timestamp=T0
                ),
            )
        }
    )
    decision = await answer(mixed, [], llm=None, policy=POLICY)
    assert isinstance(decision, Reply) and not decision.text.startswith(PT_BR.unreadable[:20])
