"""Text from forms and callers, checked before it reaches the database, a hash or a mail: lone
surrogates and control characters are refused with a sentence naming the field (400)."""

from __future__ import annotations

from typing import Any

from comms.exceptions import InvalidInput
from mycelia_ops.validation import BadInput, clean_text


def text_clean(value: Any, *, field: str, max_length: int) -> str:
    """`value` (None reads as empty) as clean text, or InvalidInput naming `field`."""
    try:
        return clean_text("" if value is None else value, field=field, max_length=max_length)
    except BadInput as exc:
        raise InvalidInput(exc.message) from None


def texts_clean(values: Any, *, field: str, max_length: int) -> list[str]:
    return [text_clean(v, field=field, max_length=max_length) for v in values or []]
