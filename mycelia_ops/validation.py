"""Checks for input from outside (API bodies, query strings, form fields) that would otherwise
reach Python, the database or a hash as something they cannot take: JSON nested deeper than
the interpreter's stack, text with lone surrogates or control characters, numbers past what a
column or `timedelta` holds, NaN, and dates in the year 9999.

Each check returns the clean value or raises BadInput (status 400, a message for people, and
the field it is about), which every door answers as 400 naming the field.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from mycelia_ops import errors as _errors

DEFAULT_MAX_BYTES = 1_000_000  # a JSON body larger than this is refused unread
DEFAULT_MAX_DEPTH = 32
MAX_DATETIME_CHARS = 64

# C0 controls except tab and line feed, DEL, and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INTEGER = re.compile(r"^[+-]?\d{1,30}$")


# The family's 400: raised here, answered by mycelia_ops.errors.
BadInput = _errors.BadInput


# ---------------------------------------------------------------------------------------------
# JSON bodies


def _reject_constant(what: str) -> Any:
    def reject(name: str) -> Any:
        raise BadInput(f"{what} holds {name}, which is not a number JSON allows.")

    return reject


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadInput(f"The number {text[:40]} is too large.")
    return value


def _depth_over(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (a loop, not recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_json_body(
    raw: bytes | str,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int = DEFAULT_MAX_BYTES,
    empty: Any = None,
    what: str = "The request body",
    field: str | None = None,
) -> Any:
    """The JSON value of a request body, or BadInput naming what is wrong with it: too large,
    not UTF-8, not JSON, NaN/Infinity or a number too large for a float, or containers nested
    deeper than `max_depth`. An empty body gives `empty` (None unless said). `what` and `field`
    name the JSON in the messages when it is one field of a form, not a body."""
    try:
        return _parse_json(raw, max_depth=max_depth, max_bytes=max_bytes, empty=empty, what=what)
    except BadInput as exc:
        exc.field = field
        raise


def _parse_json(raw: bytes | str, *, max_depth: int, max_bytes: int, empty: Any, what: str) -> Any:
    if len(raw) > max_bytes:
        raise BadInput(f"{what} is larger than {max_bytes} bytes.")
    if not raw or not raw.strip():
        return empty
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInput(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}.") from None
    else:
        text = raw
    try:
        value = json.loads(text, parse_constant=_reject_constant(what), parse_float=_finite)
    except RecursionError:
        # the traceback of a 50,000-deep parse is of no use to anyone
        raise BadInput(f"{what} nests deeper than {max_depth} levels.") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise BadInput(f"{what} is not valid JSON: {exc}.") from None
    # Cheap first: a body with fewer brackets than the limit cannot nest past it.
    if text.count("[") + text.count("{") > max_depth and _depth_over(value, max_depth):
        raise BadInput(f"{what} nests deeper than {max_depth} levels.")
    return value


# ---------------------------------------------------------------------------------------------
# Text


def clean_text(value: Any, *, field: str, max_length: int, required: bool = False) -> str:
    """`value` as text a database, a hash and a page can all take: a string of at most
    `max_length` characters, without lone surrogates or control characters (tab and line feed
    are fine; a browser's CRLF line breaks become LF). `required`: not empty or blank."""
    if not isinstance(value, str):
        raise BadInput(f"'{field}' must be a string.", field=field)
    if len(value) > max_length:
        raise BadInput(f"'{field}' is longer than {max_length} characters.", field=field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(
            f"'{field}' holds a lone surrogate (\\u{ord(value[_surrogate_at(value)]):04x}): "
            "not a character text can carry.",
            field=field,
        ) from None
    if "\r" in value:
        value = value.replace("\r\n", "\n")
    bad = _CONTROL.search(value)
    if bad:
        raise BadInput(
            f"'{field}' holds a control character (U+{ord(bad.group()):04X}) at position "
            f"{bad.start()}.",
            field=field,
        )
    if required and not value.strip():
        raise BadInput(f"'{field}' must not be empty.", field=field)
    return value


def _surrogate_at(value: str) -> int:
    return next(i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF)


# ---------------------------------------------------------------------------------------------
# Numbers


def bounded_int(value: Any, *, field: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`: an int, an integral finite float, or a string of
    digits (a query parameter). Booleans, NaN, infinity and overflow are refused."""
    number: int
    if isinstance(value, bool):
        raise BadInput(f"'{field}' must be a whole number, not true or false.", field=field)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise BadInput(f"'{field}' must be a whole number.", field=field)
        number = int(value)
    elif isinstance(value, str) and _INTEGER.match(value.strip()):
        number = int(value.strip())
    else:
        raise BadInput(f"'{field}' must be a whole number.", field=field)
    if not low <= number <= high:
        raise BadInput(f"'{field}' must be from {low} to {high}.", field=field)
    return number


def finite_float(
    value: Any, *, field: str, low: float | None = None, high: float | None = None
) -> float:
    """A finite number (an int, a float or a numeric string), within `low`..`high` when given.
    NaN, infinity, booleans and numbers too large for a float are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadInput(f"'{field}' must be a number.", field=field)
    try:
        number = float(value.strip()[:100] if isinstance(value, str) else value)
    except (ValueError, OverflowError):
        raise BadInput(f"'{field}' must be a number.", field=field) from None
    if not math.isfinite(number):
        raise BadInput(f"'{field}' must be a finite number.", field=field)
    if (low is not None and number < low) or (high is not None and number > high):
        span = f"from {low:g} to {high:g}" if low is not None and high is not None else ""
        span = span or (f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise BadInput(f"'{field}' must be {span}.", field=field)
    return number


# ---------------------------------------------------------------------------------------------
# Dates


def sane_datetime(
    value: Any, *, field: str, low_year: int = 2000, high_year: int = 2100
) -> datetime:
    """An aware datetime from `low_year` to `high_year`, from a datetime or an ISO 8601
    string. A naive one is taken in the current time zone."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_DATETIME_CHARS:
            raise BadInput(f"'{field}' is not a date and time.", field=field)
        try:
            moment = parse_datetime(text)
        except ValueError:  # well formed, impossible: 2026-02-30
            moment = None
        if moment is None:
            raise BadInput(
                f"'{field}' must be a date and time in ISO 8601, e.g. 2026-05-01T14:30:00Z.",
                field=field,
            )
    else:
        raise BadInput(f"'{field}' must be a date and time in ISO 8601.", field=field)
    if not low_year <= moment.year <= high_year:
        raise BadInput(f"'{field}' must be between {low_year} and {high_year}.", field=field)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
