import pytest
from hypothesis import given
from hypothesis import strategies as st

from baton.facts import detect_topics, extract_emails, extract_order_ids, extract_phones
from services.bot.summary import (
    MAX_REQUESTS,
    REQUEST_CHARS,
    summarize,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meu pedido #12345 não chegou", ("12345",)),
        ("Pedido 987654 atrasado", ("987654",)),
        ("pedido nº 4567", ("4567",)),
        ("o número do pedido é o 55501", ("55501",)),
        ("meu pedido é o 12345", ("12345",)),
        ("Order number: 12345-B", ("12345-B",)),
        ("my order #AB-99 and order 77777", ("AB-99", "77777")),
        ("orden 31415 no llegó", ("31415",)),
        ("código ABC-1234 na nota", ("ABC-1234",)),
        ("pedido de 2 camisetas", ()),
        ("pedido de camisetas", ()),
        ("#bot", ()),
        ("sem nada aqui", ()),
    ],
)
def test_order_ids(text: str, expected: tuple[str, ...]) -> None:
    assert extract_order_ids(text) == expected


def test_order_ids_are_unique_and_capped() -> None:
    text = " ".join(f"#{n}1111" for n in range(9)) + " #01111"
    found = extract_order_ids(text)
    assert len(found) == 5
    assert len(set(found)) == 5


def test_emails_lower_cased_and_deduplicated() -> None:
    text = "meu e-mail é Maria.Silva+loja@Exemplo.com.br. Repito: maria.silva+loja@exemplo.com.br"
    assert extract_emails(text) == ("maria.silva+loja@exemplo.com.br",)


@given(
    st.from_regex(r"[a-z][a-z0-9._]{0,10}[a-z0-9]", fullmatch=True),
    st.from_regex(r"[a-z]{2,10}\.(com|org|com\.br|es)", fullmatch=True),
)
def test_any_plain_email_is_found(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert extract_emails(f"escreve para {address} por favor") == (address,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("me liga no +55 11 91234-5678", ("+55 11 91234-5678",)),
        ("(11) 91234-5678", ("(11) 91234-5678",)),
        ("11912345678", ("11912345678",)),
        ("call +1 415 555 0100", ("+1 415 555 0100",)),
        ("meu cpf é 123.456.789-00", ()),
        ("nota 1234-5678", ()),  # too short for a phone with area code
        ("R$ 1.234,56", ()),
    ],
)
def test_phones(text: str, expected: tuple[str, ...]) -> None:
    assert extract_phones(text) == expected


def test_a_number_taken_as_order_id_is_not_a_phone() -> None:
    text = "pedido 12345678901"
    orders = extract_order_ids(text)
    assert orders == ("12345678901",)
    assert extract_phones(text, exclude=orders) == ()


def test_topics() -> None:
    assert detect_topics(["quero cancelar", "e o reembolso?"]) == ("cancel", "refund")
    assert detect_topics(["My package has not arrived"]) == ("delivery",)
    assert detect_topics(["Pagué con tarjeta"]) == ("payment",)
    assert detect_topics(["oi"]) == ()


def test_summary_keeps_the_last_requests_trimmed() -> None:
    long = "quero trocar " + "muito " * 100
    texts = ["oi", "primeiro", "segundo", long, ""]
    summary = summarize(texts, language="pt-BR")
    assert len(summary.requests) == MAX_REQUESTS
    assert summary.requests[:2] == ("primeiro", "segundo")
    assert len(summary.requests[2]) == REQUEST_CHARS
    assert summary.requests[2].endswith("…")


def test_summary_text_in_portuguese() -> None:
    summary = summarize(
        ["oi", "meu pedido #12345 não chegou", "meu email é ana@x.com, tel (11) 91234-5678"],
        language="pt-BR",
        reason_note="o cliente pediu para falar com uma pessoa",
    )
    assert summary.text == (
        "Motivo: o cliente pediu para falar com uma pessoa\n"
        "Últimas mensagens do cliente:\n"
        "- oi\n"
        "- meu pedido #12345 não chegou\n"
        "- meu email é ana@x.com, tel (11) 91234-5678\n"
        "Pedidos: 12345\n"
        "E-mails: ana@x.com\n"
        "Telefones: (11) 91234-5678\n"
        "Assunto: entrega"
    )


def test_headline_replaces_the_request_list_but_keeps_the_facts() -> None:
    summary = summarize(
        ["order #4242 is late", "I want a refund"],
        language="en",
        reason_note="angry customer",
        headline="Customer wants a refund for a late order.",
    )
    assert summary.text == (
        "Reason: angry customer\n"
        "Summary: Customer wants a refund for a late order.\n"
        "Orders: 4242\n"
        "Topic: return/refund"
    )


def test_blank_headline_is_ignored() -> None:
    summary = summarize(["hola"], language="es", headline="  ")
    assert summary.headline is None
    assert summary.text == "Últimos mensajes del cliente:\n- hola"
