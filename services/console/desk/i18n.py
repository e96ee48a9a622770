"""The desk's words in pt-BR (the default), en and es, and which one a request gets."""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("pt-BR", "en", "es")
DEFAULT: Final = "pt-BR"
LANG_COOKIE: Final = "baton_lang"
NAMES: Final = {"pt-BR": "Português", "en": "English", "es": "Español"}

# key → (pt-BR, en, es); `{name}` placeholders are filled by `t(...)`.
_WORDS: Final[dict[str, tuple[str, str, str]]] = {
    "sign_in_title": ("Entrar no atendimento", "Sign in to the desk", "Entrar al escritorio"),
    "agent": ("Agente", "Agent", "Agente"),
    "password": ("Senha", "Password", "Contraseña"),
    "sign_in": ("Entrar", "Sign in", "Iniciar sesión"),
    "sign_out": ("Sair", "Sign out", "Cerrar sesión"),
    "wrong_password": (
        "Agente ou senha incorretos.",
        "Wrong agent or password.",
        "Agente o contraseña incorrectos.",
    ),
    "throttled": (
        "Muitas tentativas sem sucesso. Tente de novo em alguns minutos.",
        "Too many failed sign-ins. Try again in a few minutes.",
        "Demasiados intentos fallidos. Inténtalo de nuevo en unos minutos.",
    ),
    "form_expired": (
        "O formulário expirou. Tente de novo.",
        "The form expired. Please try again.",
        "El formulario caducó. Inténtalo de nuevo.",
    ),
    "expired": (
        "Sua sessão terminou. Entre de novo.",
        "Your session ended. Please sign in again.",
        "Tu sesión terminó. Vuelve a iniciar sesión.",
    ),
    "signed_out": ("Você saiu.", "You signed out.", "Cerraste sesión."),
    "language": ("Idioma", "Language", "Idioma"),
    "views": ("Visões", "Views", "Vistas"),
    "inbox": ("Caixa de entrada", "Inbox", "Bandeja de entrada"),
    "view_waiting": ("Aguardando atendente", "Waiting for a human", "Esperando a un agente"),
    "view_mine": ("Minhas", "Mine", "Mías"),
    "view_bot": ("Bot", "Bot", "Bot"),
    "view_paused": ("Pausadas pelo dono", "Paused by the owner", "Pausadas por el dueño"),
    "view_all": ("Todas", "All", "Todas"),
    "number": ("Número da empresa", "Business number", "Número de la empresa"),
    "all_numbers": ("Todos os números", "All numbers", "Todos los números"),
    "search": (
        "Buscar por nome ou telefone",
        "Search by name or phone",
        "Buscar por nombre o teléfono",
    ),
    "search_button": ("Buscar", "Search", "Buscar"),
    "empty": ("Nenhuma conversa aqui.", "No conversations here.", "No hay conversaciones aquí."),
    "waiting_for": ("aguardando há {duration}", "waiting {duration}", "esperando hace {duration}"),
    "unread": ("{n} não lidas", "{n} unread", "{n} sin leer"),
    "badge_bot": ("bot", "bot", "bot"),
    "badge_queue": ("na fila", "in queue", "en cola"),
    "badge_paused": ("pausada até {time}", "paused until {time}", "pausada hasta {time}"),
    "badge_you": ("{agent} (você)", "{agent} (you)", "{agent} (tú)"),
    "take_over": ("Assumir", "Take over", "Tomar el control"),
    "return_to_bot": ("Devolver ao bot", "Return to bot", "Devolver al bot"),
    "send": ("Enviar", "Send", "Enviar"),
    "message": ("Mensagem", "Message", "Mensaje"),
    "composer_hint": (
        "Enter envia · Shift+Enter nova linha",
        "Enter sends · Shift+Enter new line",
        "Enter envía · Shift+Enter nueva línea",
    ),
    "holds": (
        "{agent} está com esta conversa",
        "{agent} holds this conversation",
        "{agent} tiene esta conversación",
    ),
    "you_hold": (
        "Você está com esta conversa",
        "You hold this conversation",
        "Tienes esta conversación",
    ),
    "bot_answers": ("O bot já está respondendo", "The bot already answers", "El bot ya responde"),
    "take_over_to_reply": (
        "Assuma a conversa para responder",
        "Take over to reply",
        "Toma el control para responder",
    ),
    "window_closed": (
        "A janela de 24 horas fechou: o WhatsApp só aceita modelos aprovados até o cliente"
        " escrever de novo.",
        "The 24-hour window has closed: WhatsApp accepts only approved templates until the"
        " customer writes again.",
        "La ventana de 24 horas se cerró: WhatsApp solo acepta plantillas aprobadas hasta que el"
        " cliente vuelva a escribir.",
    ),
    "window_closes": (
        "A janela de 24 horas fecha em",
        "The 24-hour window closes on",
        "La ventana de 24 horas se cierra el",
    ),
    "older": ("Carregar mensagens anteriores", "Load older messages", "Cargar mensajes anteriores"),
    "imported": (
        "importada do histórico do celular",
        "imported from the phone's history",
        "importado del historial del teléfono",
    ),
    "from_app": (
        "enviada pelo app WhatsApp Business",
        "sent from the WhatsApp Business app",
        "enviado desde la app WhatsApp Business",
    ),
    "author_customer": ("Cliente", "Customer", "Cliente"),
    "author_bot": ("Bot", "Bot", "Bot"),
    "author_app": ("Dono (celular)", "Owner (phone)", "Dueño (teléfono)"),
    "author_system": ("Aviso automático", "Automatic notice", "Aviso automático"),
    "author_note": ("Nota interna", "Private note", "Nota interna"),
    "status_pending": ("enviando…", "sending…", "enviando…"),
    "status_accepted": ("aceita", "accepted", "aceptado"),
    "status_sent": ("enviada", "sent", "enviado"),
    "status_delivered": ("entregue", "delivered", "entregado"),
    "status_read": ("lida", "read", "leído"),
    "status_played": ("ouvida", "played", "reproducido"),
    "status_failed": ("falhou: {reason}", "failed: {reason}", "falló: {reason}"),
    "retrying": (
        "sem conexão, tentando de novo…",
        "offline, retrying…",
        "sin conexión, reintentando…",
    ),
    "not_sent": ("não enviada: {reason}", "not sent: {reason}", "no enviado: {reason}"),
    "details": ("Detalhes", "Details", "Detalles"),
    "handoff_reason": ("Motivo da transferência", "Handoff reason", "Motivo del traspaso"),
    "handoff_summary": ("Resumo", "Summary", "Resumen"),
    "customer": ("Cliente", "Customer", "Cliente"),
    "phone": ("Telefone", "Phone", "Teléfono"),
    "who_answers": ("Quem responde", "Who answers", "Quién responde"),
    "mode_bot": ("o bot", "the bot", "el bot"),
    "mode_human": ("um atendente", "an agent", "un agente"),
    "mode_paused": ("o dono, pelo celular", "the owner, on the phone", "el dueño, en el teléfono"),
    "waiting_since": ("Aguardando desde", "Waiting since", "Esperando desde"),
    "none": ("—", "—", "—"),
    "offline": (
        "Sem conexão — reconectando…",
        "Offline — reconnecting…",
        "Sin conexión — reconectando…",
    ),
    "sound": ("Som de alerta", "Alert sound", "Sonido de alerta"),
    "choose": ("Escolha uma conversa.", "Choose a conversation.", "Elige una conversación."),
    "skip": ("Pular para a conversa", "Skip to the conversation", "Saltar a la conversación"),
    "back": ("← Caixa de entrada", "← Inbox", "← Bandeja de entrada"),
    "signed_in_as": ("Conectado como {agent}", "Signed in as {agent}", "Conectado como {agent}"),
    "actions": ("Ações", "Actions", "Acciones"),
    "history": ("Histórico", "History", "Historial"),
    "media": ("[{type}]", "[{type}]", "[{type}]"),
    "busy": ("Tente de novo.", "Please try again.", "Inténtalo de nuevo."),
    # Agent workflow (issue 12) and media (issue 18), where those APIs exist.
    "resolve": ("Resolver", "Resolve", "Resolver"),
    "transfer": ("Transferir", "Transfer", "Transferir"),
    "transfer_to": ("Transferir para", "Transfer to", "Transferir a"),
    "to_queue": (
        "A fila (qualquer atendente)",
        "The queue (any agent)",
        "La cola (cualquier agente)",
    ),
    "not_with_agent": (
        "Só enquanto um atendente cuida dela",
        "Only while an agent handles it",
        "Solo mientras un agente la atiende",
    ),
    "note": (
        "Nota interna (não vai para o cliente)",
        "Private note (never sent)",
        "Nota interna (no se envía)",
    ),
    "add_note": ("Adicionar nota", "Add note", "Añadir nota"),
    "presence": ("Status", "Status", "Estado"),
    "presence_online": ("Disponível", "Online", "Disponible"),
    "presence_away": ("Ausente", "Away", "Ausente"),
    "presence_offline": ("Offline", "Offline", "Desconectado"),
    "attach": ("Anexar arquivo", "Attach file", "Adjuntar archivo"),
    "media_pending": ("baixando o arquivo…", "downloading the file…", "descargando el archivo…"),
    "media_unavailable": (
        "arquivo indisponível: {reason}",
        "media unavailable: {reason}",
        "archivo no disponible: {reason}",
    ),
    "transcript": ("Transcrição", "Transcript", "Transcripción"),
}
_INDEX: Final = {lang: i for i, lang in enumerate(LANGUAGES)}


def t(lang: str, key: str, **params: object) -> str:
    """The text of `key` in `lang` (pt-BR if unknown), with its placeholders filled."""
    text = _WORDS[key][_INDEX.get(lang, 0)]
    return text.format(**params) if params else text


def catalog(lang: str) -> dict[str, str]:
    """Every text in `lang`: what the page's script needs to speak the same language."""
    return {key: t(lang, key) for key in _WORDS}


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The chosen language (the cookie) or the browser's best supported one, else pt-BR."""
    if cookie in LANGUAGES:
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag:
            ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if primary == "pt":
            return "pt-BR"
        if primary in ("en", "es"):
            return primary
    return DEFAULT
