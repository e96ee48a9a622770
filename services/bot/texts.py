"""The bot's own wording per language: customer-facing texts, summary labels, prompt rules."""

from __future__ import annotations

from dataclasses import dataclass

from services.bot.types import HandoffReason, Language


@dataclass(frozen=True)
class Texts:
    """Everything the bot says or writes on its own, in one language."""

    language_name: str  # how the system prompt names the language to the model
    greeting: str  # {assistant}: "assistente virtual automático" plus " da <business>" if known
    assistant: str
    assistant_of: str  # "{assistant} da {business}"
    thanks: str
    hours: str  # {hours}
    # Fixed first sentence of every "could not answer" reply: the failure streak is counted by
    # finding it in the bot's earlier turns, so it must stay stable once deployed.
    cannot_answer: str
    offline_unanswered: str  # {cannot_answer} {echo}
    llm_unanswered: str  # {cannot_answer}
    # The answer to a message WhatsApp could not show us (a poll, a view-once photo…).
    unreadable: str
    default_persona: str  # {assistant}
    summary_reason: str
    summary_headline: str
    summary_requests: str
    summary_orders: str
    summary_emails: str
    summary_phones: str
    summary_topics: str
    reason_notes: dict[HandoffReason, str]
    topics: dict[str, str]


PT_BR = Texts(
    unreadable=(
        "Desculpe, não consegui ler a sua última mensagem: esse tipo de mensagem não chega "
        "até mim. Pode escrever em texto? Se preferir falar com uma pessoa, escreva “atendente”."
    ),
    language_name="Brazilian Portuguese",
    greeting="Olá! Sou o {assistant}. Como posso ajudar?",
    assistant="assistente virtual automático",
    assistant_of="{assistant} da {business}",
    thanks="Por nada! Se precisar de mais alguma coisa, é só escrever.",
    hours="Nosso horário de atendimento: {hours}.",
    cannot_answer="Desculpe, ainda não sei responder isso.",
    offline_unanswered=(
        "{cannot_answer} Anotei sua mensagem: “{echo}”. "
        "Se quiser falar com uma pessoa, escreva “atendente”."
    ),
    llm_unanswered=(
        "{cannot_answer} Pode explicar de outro jeito? "
        "Se quiser falar com uma pessoa, escreva “atendente”."
    ),
    default_persona=(
        "Você é o {assistant} desta empresa no WhatsApp. Responda de forma curta, "
        "educada e objetiva."
    ),
    summary_reason="Motivo",
    summary_headline="Resumo",
    summary_requests="Últimas mensagens do cliente",
    summary_orders="Pedidos",
    summary_emails="E-mails",
    summary_phones="Telefones",
    summary_topics="Assunto",
    reason_notes={
        HandoffReason.CUSTOMER_ASKED: "o cliente pediu para falar com uma pessoa",
        HandoffReason.LLM_TOOL_CALL: "o assistente encaminhou a conversa",
        HandoffReason.BOT_FAILED: "o bot não conseguiu responder várias vezes seguidas",
        HandoffReason.LLM_UNAVAILABLE: "o assistente (LLM) está indisponível",
    },
    topics={
        "cancel": "cancelamento",
        "refund": "troca/devolução",
        "delivery": "entrega",
        "payment": "pagamento",
    },
)

EN = Texts(
    unreadable=(
        "Sorry, I could not read your last message: that kind of message does not reach me. "
        "Could you write it as text? If you would rather talk to a person, type “agent”."
    ),
    language_name="English",
    greeting="Hello! I'm the {assistant}. How can I help?",
    assistant="automated virtual assistant",
    assistant_of="{assistant} of {business}",
    thanks="You're welcome! If you need anything else, just write.",
    hours="Our opening hours: {hours}.",
    cannot_answer="Sorry, I can't answer that yet.",
    offline_unanswered=(
        "{cannot_answer} I noted your message: “{echo}”. "
        "If you'd like to talk to a person, type “agent”."
    ),
    llm_unanswered=(
        "{cannot_answer} Could you put it another way? "
        "If you'd like to talk to a person, type “agent”."
    ),
    default_persona=(
        "You are the {assistant} of this business on WhatsApp. Answer briefly, politely "
        "and to the point."
    ),
    summary_reason="Reason",
    summary_headline="Summary",
    summary_requests="Latest customer messages",
    summary_orders="Orders",
    summary_emails="E-mails",
    summary_phones="Phones",
    summary_topics="Topic",
    reason_notes={
        HandoffReason.CUSTOMER_ASKED: "the customer asked to talk to a person",
        HandoffReason.LLM_TOOL_CALL: "the assistant handed the conversation over",
        HandoffReason.BOT_FAILED: "the bot could not answer several times in a row",
        HandoffReason.LLM_UNAVAILABLE: "the assistant (LLM) is unavailable",
    },
    topics={
        "cancel": "cancellation",
        "refund": "return/refund",
        "delivery": "delivery",
        "payment": "payment",
    },
)

ES = Texts(
    unreadable=(
        "Lo siento, no pude leer tu último mensaje: ese tipo de mensaje no me llega. "
        "¿Puedes escribirlo como texto? Si prefieres hablar con una persona, escribe “agente”."
    ),
    language_name="Spanish",
    greeting="¡Hola! Soy el {assistant}. ¿En qué puedo ayudarte?",
    assistant="asistente virtual automático",
    assistant_of="{assistant} de {business}",
    thanks="¡De nada! Si necesitas algo más, solo escríbenos.",
    hours="Nuestro horario de atención: {hours}.",
    cannot_answer="Lo siento, todavía no sé responder eso.",
    offline_unanswered=(
        "{cannot_answer} Anoté tu mensaje: “{echo}”. "
        "Si quieres hablar con una persona, escribe “agente”."
    ),
    llm_unanswered=(
        "{cannot_answer} ¿Puedes explicarlo de otra manera? "
        "Si quieres hablar con una persona, escribe “agente”."
    ),
    default_persona=(
        "Eres el {assistant} de esta empresa en WhatsApp. Responde de forma breve, "
        "amable y directa."
    ),
    summary_reason="Motivo",
    summary_headline="Resumen",
    summary_requests="Últimos mensajes del cliente",
    summary_orders="Pedidos",
    summary_emails="Correos",
    summary_phones="Teléfonos",
    summary_topics="Asunto",
    reason_notes={
        HandoffReason.CUSTOMER_ASKED: "el cliente pidió hablar con una persona",
        HandoffReason.LLM_TOOL_CALL: "el asistente transfirió la conversación",
        HandoffReason.BOT_FAILED: "el bot no pudo responder varias veces seguidas",
        HandoffReason.LLM_UNAVAILABLE: "el asistente (LLM) no está disponible",
    },
    topics={
        "cancel": "cancelación",
        "refund": "cambio/devolución",
        "delivery": "entrega",
        "payment": "pago",
    },
)

TEXTS: dict[Language, Texts] = {"pt-BR": PT_BR, "en": EN, "es": ES}


def texts_for(language: Language) -> Texts:
    """The texts of `language`."""
    return TEXTS[language]


def assistant_name(texts: Texts, business_name: str | None) -> str:
    """How the bot names itself: always an automated assistant, never a person."""
    if business_name:
        return texts.assistant_of.format(assistant=texts.assistant, business=business_name)
    return texts.assistant
