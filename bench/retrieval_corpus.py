"""A synthetic evaluation set for past-answer retrieval, in pt-BR, es and en.

Each *intent* is one thing a customer wants to know about one business ("do you deliver to
Campinas?") with the business's answer. Customers ask it in several ways: the backlog uses
some paraphrases, the evaluation asks with held-out ones the backlog never contains. Noise
conversations (greetings, thanks) and long-tail support conversations fill the backlog to its
size. The generator is deterministic for a seed, so runs compare.

The long tail is what makes a real backlog hard to search fast: customers write order numbers,
names, neighbourhoods, models and slang, and agents answer by name, so most pairs are distinct
(the dedupe of identical pairs only folds greetings and thanks). Its support questions share the
intents' common words (delivery, order, price, the same cities and products), so retrieval has
to rank them apart, and their rare words follow a Zipf law over a large vocabulary.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
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


# Long-tail support talk: {num} an order number, {p} a product, {c} a city, {w} rare words,
# {name} the customer's first name. (questions, answers) per language.
_SUPPORT = {
    "pt-BR": (["meu pedido {num} ainda não chegou em {c}, {w}",
               "quero trocar o {p} {w} que comprei semana passada",
               "o {p} {w} veio com defeito, e agora?",
               "preciso da nota fiscal do pedido {num}",
               "dá pra cancelar o pedido {num}? {w}",
               "qual o prazo de entrega do {p} {w} pra {c}?",
               "o rastreio do pedido {num} não atualiza desde ontem",
               "comprei um {p} {w} e não sei configurar",
               "o entregador deixou o pedido {num} no {w} errado",
               "vocês têm {p} {w} na cor preta?"],
              ["Oi {name}, o pedido {num} saiu para entrega hoje, código {code}.",
               "{name}, a troca do {p} está aberta no protocolo {code}.",
               "Oi {name}! Mandei a nota do pedido {num} no seu e-mail.",
               "{name}, cancelamos o pedido {num}; o estorno sai em até 7 dias.",
               "Oi {name}, o rastreio {code} volta a atualizar em 24 h.",
               "{name}, segue o manual do {p}: loja.com/ajuda/{code}"]),
    "es": (["mi pedido {num} todavía no llegó a {c}, {w}",
            "quiero cambiar el {p} {w} que compré la semana pasada",
            "el {p} {w} llegó con un defecto, ¿y ahora?",
            "necesito la factura del pedido {num}",
            "¿puedo cancelar el pedido {num}? {w}",
            "¿cuál es el plazo de envío del {p} {w} a {c}?",
            "el seguimiento del pedido {num} no se actualiza desde ayer",
            "compré un {p} {w} y no sé configurarlo",
            "el repartidor dejó el pedido {num} en el {w} equivocado",
            "¿tienen el {p} {w} en color negro?"],
           ["Hola {name}, el pedido {num} salió hoy, código {code}.",
            "{name}, el cambio del {p} está abierto con el número {code}.",
            "¡Hola {name}! Te mandé la factura del pedido {num} por correo.",
            "{name}, cancelamos el pedido {num}; el reembolso llega en 7 días.",
            "Hola {name}, el seguimiento {code} se actualiza en 24 h.",
            "{name}, aquí está el manual del {p}: tienda.es/ayuda/{code}"]),
    "en": (["my order {num} still hasn't arrived in {c}, {w}",
            "I want to exchange the {p} {w} I bought last week",
            "the {p} {w} arrived broken, what now?",
            "I need the invoice for order {num}",
            "can I cancel order {num}? {w}",
            "how long does shipping the {p} {w} to {c} take?",
            "tracking for order {num} hasn't updated since yesterday",
            "I bought a {p} {w} and can't set it up",
            "the courier left order {num} at the wrong {w}",
            "do you have the {p} {w} in black?"],
           ["Hi {name}, order {num} is out for delivery today, code {code}.",
            "{name}, the exchange for the {p} is open as case {code}.",
            "Hi {name}! I emailed you the invoice for order {num}.",
            "{name}, we cancelled order {num}; the refund takes up to 7 days.",
            "Hi {name}, tracking {code} updates again within 24 h.",
            "{name}, here is the {p} manual: shop.com/help/{code}"]),
}  # fmt: skip
_NAMES = ["Ana", "Bruno", "Carla", "Diego", "Elisa", "Fábio", "Gabi", "Hugo", "Inês", "João",
          "Karen", "Lucas", "Marina", "Nando", "Olívia", "Paulo", "Rafa", "Sofia", "Tiago",
          "Vera", "Wagner", "Yara", "Zeca", "Lúcia", "Pedro", "Camila", "Rodrigo", "Bia"]  # fmt: skip
_SYLLABLES = {
    "pt-BR": ["ba", "be", "ca", "ção", "da", "de", "fa", "ga", "go", "lha", "lo", "ma", "me",
              "nha", "no", "pa", "po", "que", "ra", "re", "sa", "ta", "te", "to", "va", "xi"],
    "es": ["ba", "be", "ca", "ción", "da", "do", "fe", "ga", "go", "lla", "lo", "ma", "me",
           "ña", "no", "pa", "po", "que", "ra", "rro", "sa", "ta", "te", "to", "va", "za"],
    "en": ["ber", "bly", "cal", "dex", "ing", "fen", "gor", "ham", "ly", "mor", "ner", "on",
           "pet", "quin", "ray", "ster", "tin", "ton", "ver", "wick", "wood", "ex", "ash"],
}  # fmt: skip
_VOCABULARY = 20_000  # rare words a language's customers use; drawn by a Zipf law


def _rare_words(language: str) -> tuple[list[str], list[float]]:
    """A language's long-tail vocabulary (pseudo-words) and its cumulative Zipf weights."""
    rng = random.Random(f"vocabulary/{language}")
    syllables = _SYLLABLES[language]
    words: dict[str, None] = {}
    while len(words) < _VOCABULARY:
        words["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))] = None
    weights = itertools.accumulate(1.0 / (rank + 1) ** 1.05 for rank in range(_VOCABULARY))
    return list(words), list(weights)


def _some(rng: random.Random, words: Sequence[str], cumulative: list[float], k: int) -> str:
    return " ".join(rng.choices(words, cum_weights=cumulative, k=k))


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
    """`count` conversations of one language: an intent (35 %), long-tail support talk (45 %)
    or only greetings; half the agents' answers greet the customer by name."""
    rng = random.Random(seed)
    pool = [i for i in intents() if i.language == language]
    hellos, replies = _NOISE[language]
    questions, answers = _SUPPORT[language]
    words, cumulative = _rare_words(language)
    cities, products = _CITIES, _PRODUCTS
    for _ in range(count):
        name = rng.choice(_NAMES)
        turns = [Turn("customer", rng.choice(hellos)), Turn("app", rng.choice(replies))]
        kind = rng.random()
        if kind < 0.35:
            intent = rng.choice(pool)
            turns.append(Turn("customer", rng.choice(intent.backlog_questions)))
            if rng.random() < 0.3:  # a second message before the answer: context
                turns.append(Turn("customer", _some(rng, words, cumulative, rng.randint(2, 4))))
            greeting = f"{name}, " if rng.random() < 0.5 else ""
            turns.append(Turn(rng.choice(("app", "human")), greeting + intent.answer))
        elif kind < 0.8:
            slots = {
                "num": str(rng.randint(10000, 99999)),
                "p": rng.choice(products),
                "c": rng.choice(cities),
                "name": name,
                "code": f"{rng.randint(0, 16**6):06x}",
            }
            question = rng.choice(questions).format(
                w=_some(rng, words, cumulative, rng.randint(1, 3)), **slots
            )
            turns.append(Turn("customer", question))
            turns.append(Turn(rng.choice(("app", "human")), rng.choice(answers).format(**slots)))
        turns.append(Turn("customer", rng.choice(hellos)))
        turns.append(Turn("app", rng.choice(replies)))
        yield turns
