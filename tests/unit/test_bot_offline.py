import pytest

from services.bot.offline import OfflineAnswer, respond
from services.bot.policy import BotPolicy, FaqEntry
from services.bot.texts import EN, ES, PT_BR, Texts
from services.bot.types import Language

PT = BotPolicy()


@pytest.mark.parametrize("burst", [["oi"], ["Olá!", "bom dia"], ["Oi, tudo bem?"]])
def test_greeting_introduces_an_automated_assistant(burst: list[str]) -> None:
    assert respond(burst, PT) == OfflineAnswer(
        text="Olá! Sou o assistente virtual automático. Como posso ajudar?", answered=True
    )


@pytest.mark.parametrize(
    ("language", "greeting", "expected"),
    [
        ("pt-BR", "boa tarde", "Olá! Sou o assistente virtual automático da Loja X."),
        ("en", "Hello there", "Hello! I'm the automated virtual assistant of Loja X."),
        ("es", "Hola, buenas tardes", "¡Hola! Soy el asistente virtual automático de Loja X."),
    ],
)
def test_greeting_in_the_number_language_names_the_business(
    language: Language, greeting: str, expected: str
) -> None:
    found = respond([greeting], BotPolicy(language=language, business_name="Loja X"))
    assert found.answered
    assert found.text is not None
    assert found.text.startswith(expected)


@pytest.mark.parametrize("burst", [["obrigado!"], ["Muito obrigada, tchau"], ["valeu"]])
def test_thanks(burst: list[str]) -> None:
    assert respond(burst, PT) == OfflineAnswer(text=PT_BR.thanks, answered=True)


@pytest.mark.parametrize("burst", [["ok"], ["👍"], ["Beleza", "ok!"], ["   "], []])
def test_acknowledgements_need_no_reply(burst: list[str]) -> None:
    assert respond(burst, PT) == OfflineAnswer(text=None, answered=True)


def test_hours_answered_only_when_configured() -> None:
    policy = BotPolicy(business_hours="seg a sex, 9h às 18h")
    assert respond(["oi", "qual o horário de vocês?"], policy) == OfflineAnswer(
        text="Nosso horário de atendimento: seg a sex, 9h às 18h.", answered=True
    )
    unknown = respond(["qual o horário de vocês?"], PT)
    assert not unknown.answered
    assert unknown.text is not None
    assert unknown.text.startswith(PT_BR.cannot_answer)


@pytest.mark.parametrize(
    ("language", "question"),
    [("en", "What time do you open?"), ("es", "¿A qué hora abren?"), ("pt-BR", "Que horas abre?")],
)
def test_hours_questions_in_each_language(language: Language, question: str) -> None:
    found = respond([question], BotPolicy(language=language, business_hours="9-18"))
    assert found.answered
    assert found.text is not None
    assert "9-18" in found.text


def test_configured_faq_wins() -> None:
    policy = BotPolicy(faq=(FaqEntry(phrases=("Pix",), answer="Aceitamos Pix e cartão."),))
    assert respond(["Vocês aceitam PIX?"], policy) == OfflineAnswer(
        text="Aceitamos Pix e cartão.", answered=True
    )


@pytest.mark.parametrize(("language", "texts"), [("pt-BR", PT_BR), ("en", EN), ("es", ES)])
def test_anything_else_is_acknowledged_with_an_echo_and_not_answered(
    language: Language, texts: Texts
) -> None:
    found = respond(["Quero trocar o tamanho", "da camiseta\n azul"], BotPolicy(language=language))
    assert not found.answered
    assert found.text is not None
    assert found.text.startswith(texts.cannot_answer)
    assert "“Quero trocar o tamanho / da camiseta azul”" in found.text


def test_echo_is_trimmed() -> None:
    found = respond(["a" * 500], PT)
    assert found.text is not None
    assert "a" * 119 + "…”" in found.text
    assert "a" * 120 not in found.text


def test_greeting_mixed_with_a_request_is_not_a_greeting() -> None:
    found = respond(["oi", "quero cancelar meu pedido"], PT)
    assert not found.answered
