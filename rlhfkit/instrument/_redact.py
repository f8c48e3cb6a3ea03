"""A PII redactor usable as an instrumentor: emails, phone numbers, card numbers, API keys, bearer tokens.

Example::

    instrumentation.add_instrumentor(redact_pii)            # the defaults
    instrumentation.add_instrumentor(PIIRedactor(kinds={"email", "card"}, placeholder="<{kind}>"))

Redacts the prompt, the response, every context message, tool call arguments
and the error message. Card numbers are only redacted when they pass the Luhn
check, so order numbers and timestamps are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .._models import Interaction

__all__ = ["PIIRedactor", "redact_pii"]

_PATTERNS: dict[str, re.Pattern[str]] = {
    # Bearer tokens first: their value may look like an API key.
    "bearer": re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    "api_key": re.compile(
        r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}|rk_[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|xox[abpr]-[A-Za-z0-9\-]{10,})\b"
    ),
    "email": re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"),
    "card": re.compile(r"\b(?:\d[ \-]?){12,18}\d\b"),
    # International numbers need their "+"; national ones the 3-3-4 form. A
    # number that runs on into more digit groups (an order id) is not a phone.
    "phone": re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)|\d{1,4})(?:[\s.\-]?\d{2,4}){2,3}"
        r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}|\d{3}[\s.\-]\d{3}[\s.\-]\d{4})(?![\s.\-]?\d)"
    ),
}
KINDS = tuple(_PATTERNS)


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


class PIIRedactor:
    """Replaces personal data and secrets in an interaction's text with ``[REDACTED_<KIND>]``.

    ``kinds`` chooses among ``bearer``, ``api_key``, ``email``, ``card`` and
    ``phone``; ``placeholder`` may use ``{kind}``.
    """

    def __init__(self, kinds: Iterable[str] = KINDS, placeholder: str = "[REDACTED_{kind}]") -> None:
        chosen = tuple(kinds)
        unknown = sorted(set(chosen) - set(KINDS))
        if unknown:
            from ..errors import ValidationError

            raise ValidationError("kinds", f"unknown kinds {unknown}; known: {', '.join(KINDS)}", chosen)
        self.kinds = [k for k in KINDS if k in chosen]
        self.placeholder = placeholder

    def redact(self, text: str) -> str:
        """``text`` with every match replaced."""
        if not text:
            return text
        for kind in self.kinds:
            label = self.placeholder.format(kind=kind.upper())
            if kind == "card":
                text = _PATTERNS[kind].sub(_card_replacer(label), text)
            else:
                text = _PATTERNS[kind].sub(label, text)
        return text

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v) for v in value]
        return value

    def __call__(self, interaction: Interaction) -> Interaction:
        """A copy of ``interaction`` with its texts redacted (an instrumentor)."""
        update: dict[str, Any] = {
            "prompt": self.redact(interaction.prompt) or "[REDACTED]",
            "response": self.redact(interaction.response),
            "context": [
                m.model_copy(update={"content": self.redact(m.content)}) for m in interaction.context
            ],
            "tool_calls": self._value(interaction.tool_calls),
        }
        if interaction.error is not None:
            update["error"] = interaction.error.model_copy(
                update={"message": self.redact(interaction.error.message)}
            )
        return interaction.model_copy(update=update)


def _card_replacer(label: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return label if _card(match.group(0)) else match.group(0)

    return replace


def _card(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 13 <= len(digits) <= 19 and _luhn(digits)


redact_pii = PIIRedactor()
"""The default redactor (every kind), ready to pass to ``add_instrumentor``."""
