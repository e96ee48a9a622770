"""Masking personal data in retrieved examples before they reach a model.

Retrieved examples come from other customers' conversations: their phone numbers, e-mails and
document numbers (CPF, CNPJ, RG, DNI, NIF, SSN …) must never reach the LLM. Masking is by shape,
so it errs on the side of hiding any long run of digits; order numbers a business wants the bot
to learn are short enough (under 7 digits) to pass.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Brazilian CPF/CNPJ and similar punctuated document numbers.
_DOCUMENT = re.compile(
    r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b"  # CPF
    r"|\b\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}\b"  # CNPJ
    r"|\b\d{2}\.\d{3}\.\d{3}-[\dxX]\b"  # RG
    r"|\b\d{3}-\d{2}-\d{4}\b"  # US SSN
    r"|\b\d{8}-?[A-Za-z]\b"  # Spanish DNI/NIE digits + letter
)
# A phone: optional +, then 8 or more digits possibly split by spaces, dots, dashes, parentheses.
_PHONE = re.compile(r"(?<![\w])\+?\(?\d(?:[\s().-]*\d){7,}")
# Any other long digit run (ids of people rather than of orders).
_LONG_NUMBER = re.compile(r"\b\d{7,}\b")


def mask_personal_data(text: str) -> str:
    """`text` with e-mails, documents, phones and long numbers replaced by placeholders."""
    text = _EMAIL.sub("[email]", text)
    text = _DOCUMENT.sub("[document]", text)
    text = _PHONE.sub("[phone]", text)
    return _LONG_NUMBER.sub("[number]", text)
