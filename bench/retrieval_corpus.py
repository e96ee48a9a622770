"""A synthetic evaluation set for past-answer retrieval, in pt-BR, es and en.

Each *intent* is one thing a customer wants to know about one business ("do you deliver to
Campinas?") with the business's answer. Customers ask it in several ways: the backlog uses
some paraphrases, the evaluation asks with held-out ones the backlog never contains. Noise
conversations (greetings, thanks, unrelated questions) fill the backlog to its size. The
generator is deterministic for a seed, so runs compare.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

# (family, backlog paraphrases, held-out paraphrases, answer) per language; {x} is the slot.
_FAMILIES: dict[str, list[tuple[str, list[str], list[str], str]]] = {
    "pt-BR": [
        (
            "delivery",
            ["Vocês entregam em {x}?", "Fazem entrega para {x}?", "Tem entrega pra {x}?"],
            ["vcs entregam la em {x}??", "Consigo receber meu pedido em {x}?"],
            "Entregamos em {x} sim, em até 3 dias úteis.",
        ),
        (
            "price",
            ["Quanto custa o {x}?", "Qual o preço do {x}?", "Qual o valor do {x}?"],
            ["quanto tá o {x} hoje", "me passa o preço do {x} por favor"],
            "O {x} está saindo por R$ {n},90 à vista.",
        ),
        (
            "stock",
            ["Tem {x} em estoque?", "O {x} está disponível?", "Ainda tem {x}?"],
            ["vocês têm {x} pra pronta entrega?", "chegou {x}?"],
            "Temos {x} em estoque, pode pedir pelo site.",
        ),
        (
            "payment",
            ["Aceitam {x}?", "Posso pagar com {x}?", "Dá pra pagar no {x}?"],
            ["vcs aceitam pagamento via {x}?", "consigo pagar usando {x}?"],
            "Aceitamos {x}, sim; o pagamento é confirmado na hora.",
        ),
        (
            "warranty",
            ["Qual a garantia do {x}?", "O {x} tem garantia?", "Quanto tempo de garantia tem o {x}?"],
            ["se o {x} der defeito tem garantia?", "a garantia do {x} é de quanto tempo"],
            "O {x} tem {n} meses de garantia do fabricante.",
        ),
        (
            "store",
            ["Tem loja física em {x}?", "Onde fica a loja de {x}?", "Qual o endereço em {x}?"],
            ["posso ir pessoalmente na loja de {x}?", "vocês atendem presencial em {x}?"],
            "Nossa loja de {x} fica na Rua {n} de Maio, aberta das 9h às 18h.",
        ),
    ],
    "es": [
        (
            "delivery",
            ["¿Hacen envíos a {x}?", "¿Envían a {x}?", "¿Llegan los pedidos a {x}?"],
            ["hacen envio hasta {x}?", "¿puedo recibir mi pedido en {x}?"],
            "Sí, enviamos a {x} en 2 a 4 días hábiles.",
        ),
        (
            "price",
            ["¿Cuánto cuesta el {x}?", "¿Qué precio tiene el {x}?", "¿Cuál es el precio del {x}?"],
            ["cuanto sale el {x}", "me pasas el precio del {x} porfa"],
            "El {x} cuesta {n},90 euros.",
        ),
        (
            "stock",
            ["¿Tienen {x} en stock?", "¿Hay {x} disponible?", "¿Les queda {x}?"],
            ["tienen {x} para entrega inmediata?", "¿ya llegó el {x}?"],
            "Tenemos {x} disponible, puedes pedirlo en la web.",
        ),
        (
            "payment",
            ["¿Aceptan {x}?", "¿Puedo pagar con {x}?", "¿Se puede pagar por {x}?"],
            ["aceptan pago con {x}?", "¿es posible pagar usando {x}?"],
            "Sí, aceptamos {x} y el pago se confirma al momento.",
        ),
        (
            "warranty",
            ["¿Qué garantía tiene el {x}?", "¿El {x} tiene garantía?", "¿Cuánto dura la garantía del {x}?"],
            ["si el {x} falla tiene garantía?", "la garantía del {x} de cuánto es"],
            "El {x} tiene {n} meses de garantía del fabricante.",
        ),
        (
            "store",
            ["¿Tienen tienda física en {x}?", "¿Dónde está la tienda de {x}?", "¿Cuál es la dirección en {x}?"],
            ["¿puedo ir en persona a la tienda de {x}?", "atienden presencial en {x}?"],
            "Nuestra tienda de {x} está en la Calle {n} de Mayo, de 9 a 18 h.",
        ),
    ],
    "en": [
        (
            "delivery",
            ["Do you deliver to {x}?", "Do you ship to {x}?", "Can you deliver in {x}?"],
            ["does shipping reach {x}?", "can I get my order delivered in {x}?"],
            "Yes, we deliver to {x} within 3 business days.",
        ),
        (
            "price",
            ["How much is the {x}?", "What's the price of the {x}?", "How much does the {x} cost?"],
            ["price for the {x} pls", "what are you charging for the {x}"],
            "The {x} is ${n}.90.",
        ),
        (
            "stock",
            ["Do you have the {x} in stock?", "Is the {x} available?", "Is the {x} in stock?"],
            ["got any {x} left?", "is the {x} back in stock yet?"],
            "The {x} is in stock, you can order it on our site.",
        ),
        (
            "payment",
            ["Do you accept {x}?", "Can I pay with {x}?", "Is {x} accepted?"],
            ["can I use {x} to pay?", "do you take {x} payments?"],
            "Yes, we accept {x}; payment is confirmed right away.",
        ),
        (
            "warranty",
            ["What's the warranty on the {x}?", "Does the {x} have a warranty?", "How long is the {x} warranty?"],
            ["if the {x} breaks is it covered?", "how many months of warranty for the {x}"],
            "The {x} has a {n}-month manufacturer warranty.",
        ),
        (
            "store",
            ["Do you have a store in {x}?", "Where is your {x} store?", "What's the address in {x}?"],
            ["can I visit your shop in {x}?", "is there a physical shop in {x}?"],
            "Our {x} store is at {n} May Street, open 9am to 6pm.",
        ),
    ],
}  # fmt: skip

_CITIES = ["Campinas", "Santos", "Sorocaba", "Curitiba", "Recife", "Salvador", "Goiânia",
           "Belém", "Manaus", "Natal", "Londrina", "Joinville"]  # fmt: skip
_PRODUCTS = ["notebook", "celular", "fone", "monitor", "teclado", "mouse", "tablet",
             "roteador", "smartwatch", "carregador", "impressora", "câmera"]  # fmt: skip
_PAYMENTS = {
    "pt-BR": ["pix", "boleto", "cartão de crédito", "cartão de débito", "PayPal", "Mercado Pago",
              "vale-refeição", "transferência", "dinheiro", "criptomoeda", "Apple Pay", "Google Pay"],
    "es": ["Bizum", "transferencia", "tarjeta de crédito", "tarjeta de débito", "PayPal",
           "efectivo", "Mercado Pago", "contra reembolso", "criptomonedas", "Apple Pay",
           "Google Pay", "cheque"],
    "en": ["Venmo", "bank transfer", "credit card", "debit card", "PayPal", "cash",
           "Zelle", "cash on delivery", "crypto", "Apple Pay", "Google Pay", "checks"],
}  # fmt: skip
_SLOTS = {"delivery": "city", "store": "city", "price": "product", "stock": "product",
          "warranty": "product", "payment": "payment"}  # fmt: skip

_NOISE = {
    "pt-BR": (["oi", "bom dia", "boa tarde, tudo bem?", "obrigado!", "valeu", "ok", "👍",
               "pode ser", "vou ver e te falo", "tá bom"],
              ["Olá! Como posso ajudar?", "Por nada!", "Qualquer coisa é só chamar.", "Combinado!"]),
    "es": (["hola", "buenos días", "buenas tardes, ¿qué tal?", "gracias!", "vale", "ok", "👍",
            "perfecto", "lo miro y te digo", "de acuerdo"],
           ["¡Hola! ¿En qué te ayudo?", "¡De nada!", "Cualquier cosa, escríbenos.", "¡Perfecto!"]),
    "en": (["hi", "good morning", "hey, how are you?", "thanks!", "cool", "ok", "👍",
            "sounds good", "I'll check and get back", "alright"],
           ["Hi! How can I help?", "You're welcome!", "Let us know anytime.", "Great!"]),
}  # fmt: skip


@dataclass(frozen=True)
class Intent:
    key: str  # language/family/slot
    language: str
    backlog_questions: tuple[str, ...]
    eval_questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Turn:
    author: str  # customer | app | human
    body: str


def intents() -> list[Intent]:
    """Every intent of every language: 3 languages x 6 families x 12 slot values = 216."""
    found = []
    for language, families in _FAMILIES.items():
        for family, backlog, held_out, answer in families:
            kind = _SLOTS[family]
            values = (
                _CITIES
                if kind == "city"
                else _PRODUCTS
                if kind == "product"
                else _PAYMENTS[language]
            )
            for index, value in enumerate(values):
                found.append(
                    Intent(
                        key=f"{language}/{family}/{value}",
                        language=language,
                        backlog_questions=tuple(q.format(x=value) for q in backlog),
                        eval_questions=tuple(q.format(x=value) for q in held_out),
                        answer=answer.format(x=value, n=index + 11),
                    )
                )
    return found


def conversations(language: str, count: int, seed: int) -> Iterator[list[Turn]]:
    """`count` conversations of one language: each asks an intent once or is only noise."""
    rng = random.Random(seed)
    pool = [i for i in intents() if i.language == language]
    hellos, replies = _NOISE[language]
    for _ in range(count):
        turns = [Turn("customer", rng.choice(hellos)), Turn("app", rng.choice(replies))]
        if rng.random() < 0.7:
            intent = rng.choice(pool)
            turns.append(Turn("customer", rng.choice(intent.backlog_questions)))
            turns.append(Turn(rng.choice(("app", "human")), intent.answer))
        turns.append(Turn("customer", rng.choice(hellos)))
        turns.append(Turn("app", rng.choice(replies)))
        yield turns
