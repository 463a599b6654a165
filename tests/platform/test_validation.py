"""The input checks every door shares: each refuses with BadInput (400, a message, the field)
and never lets an input through that a database, a hash or a page could not take."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mycelia_ops.validation import (
    BadInput,
    bounded_int,
    clean_text,
    finite_float,
    parse_json_body,
    sane_datetime,
)

# ---- parse_json_body ---------------------------------------------------------------------


def test_parse_json_body__object__parsed():
    assert parse_json_body(b'{"name": "x", "n": 1.5, "l": [1, {"a": null}]}') == {
        "name": "x",
        "n": 1.5,
        "l": [1, {"a": None}],
    }


def test_parse_json_body__empty__the_empty_value():
    assert parse_json_body(b"") is None
    assert parse_json_body(b"  \n", empty={}) == {}


def test_parse_json_body__nested_50000_deep__bad_input_not_recursion_error():
    raw = b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(BadInput) as caught:
        parse_json_body(raw)
    assert caught.value.status == 400 and "deeper than 32" in caught.value.message


def test_parse_json_body__past_max_depth__refused_and_at_it_accepted():
    assert parse_json_body(b"[" * 3 + b"]" * 3, max_depth=3) == [[[]]]
    with pytest.raises(BadInput, match="deeper than 3"):
        parse_json_body(b'{"a": {"b": {"c": {}}}}', max_depth=3)


def test_parse_json_body__brackets_inside_strings__not_counted_as_depth():
    assert parse_json_body(json.dumps({"a": "[[[[[[{{{{"}).encode(), max_depth=2) == {
        "a": "[[[[[[{{{{"
    }


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"n": NaN}', "NaN"),
        (b'{"n": Infinity}', "Infinity"),
        (b'{"n": -Infinity}', "-Infinity"),
        (b'{"n": 1e999}', "too large"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_parse_json_body__bad_bodies__bad_input_naming_the_problem(raw, needle):
    with pytest.raises(BadInput) as caught:
        parse_json_body(raw)
    assert needle in caught.value.message and caught.value.field is None


def test_parse_json_body__over_max_bytes__refused_unread():
    with pytest.raises(BadInput, match="larger than 10 bytes"):
        parse_json_body(b'{"a": "0123456789"}', max_bytes=10)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_parse_json_body__any_bytes__a_value_or_bad_input(raw):
    with contextlib.suppress(BadInput):
        parse_json_body(raw)


# ---- clean_text --------------------------------------------------------------------------


def test_clean_text__ordinary_text__returned_with_tabs_newlines_and_emoji():
    assert clean_text("a\tb\nc 🍄 é", field="reason", max_length=50) == "a\tb\nc 🍄 é"


def test_clean_text__crlf__becomes_lf():
    assert clean_text("one\r\ntwo", field="description", max_length=50) == "one\ntwo"


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("\ud800", "lone surrogate"),
        ("ok \udfff", "lone surrogate"),
        ("nul\x00", "control character (U+0000)"),
        ("bell\x07", "U+0007"),
        ("cr alone\r", "U+000D"),
        ("esc\x1b[31m", "U+001B"),
        ("c1\x85", "U+0085"),
        (3, "must be a string"),
        (None, "must be a string"),
        ("x" * 11, "longer than 10"),
    ],
)
def test_clean_text__bad_text__bad_input_naming_the_field(value, needle):
    with pytest.raises(BadInput) as caught:
        clean_text(value, field="reason", max_length=10)
    assert needle in caught.value.message
    assert caught.value.field == "reason" and "'reason'" in caught.value.message


def test_clean_text__required_and_blank__refused():
    with pytest.raises(BadInput, match="must not be empty"):
        clean_text("  ", field="name", max_length=10, required=True)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_clean_text__any_text__refused_or_encodable_without_controls(value):
    try:
        cleaned = clean_text(value, field="f", max_length=40)
    except BadInput as exc:
        assert exc.field == "f"
        return
    cleaned.encode("utf-8")
    assert not any(ord(c) < 32 and c not in "\t\n" for c in cleaned)


# ---- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(5, 5), ("42", 42), (" 7 ", 7), (3.0, 3)])
def test_bounded_int__whole_numbers__accepted(value, expected):
    assert bounded_int(value, field="page", low=0, high=100) == expected


@pytest.mark.parametrize(
    "value",
    [2**63, -1, 101, True, 1.5, float("nan"), float("inf"), "1e3", "9" * 40, "", None, [1]],
)
def test_bounded_int__out_of_range_or_not_whole__bad_input(value):
    with pytest.raises(BadInput) as caught:
        bounded_int(value, field="window_minutes", low=0, high=100)
    assert caught.value.field == "window_minutes"


@pytest.mark.parametrize(("value", "expected"), [(2, 2.0), (0.5, 0.5), ("1.25", 1.25)])
def test_finite_float__numbers__accepted(value, expected):
    assert finite_float(value, field="hours", low=0, high=10) == expected


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), "nan", "-inf", "1e999", 10**400, True, None, "x", 11, -0.5],
)
def test_finite_float__nan_inf_overflow_or_out_of_range__bad_input(value):
    with pytest.raises(BadInput) as caught:
        finite_float(value, field="hours", low=0, high=10)
    assert caught.value.field == "hours"


def test_finite_float__one_bound__message_says_which():
    with pytest.raises(BadInput, match="at least 1"):
        finite_float(0, field="hours", low=1)


# ---- dates -------------------------------------------------------------------------------


def test_sane_datetime__iso_string__aware_datetime():
    assert sane_datetime("2026-05-01T14:30:00Z", field="window_start") == datetime(
        2026, 5, 1, 14, 30, tzinfo=UTC
    )


def test_sane_datetime__naive__taken_in_current_time_zone(settings):
    settings.TIME_ZONE = "UTC"
    moment = sane_datetime("2026-05-01T14:30", field="window_start")
    assert moment.tzinfo is not None and moment.hour == 14


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:00",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "2026-02-30T10:00",
        "2026-05-01T10:00+99:00",
        "tomorrow",
        "\ud800",
        "2" * 100,
        20260501,
        None,
    ],
)
def test_sane_datetime__out_of_range_or_not_a_date__bad_input(value):
    with pytest.raises(BadInput) as caught:
        sane_datetime(value, field="window_start")
    assert caught.value.field == "window_start"


def test_bad_input__as_dict__error_and_field():
    assert BadInput("x", field="f").as_dict() == {"error": "x", "field": "f"}
