"""Judging values: conditions, JSON paths, the status document and SLO thresholds."""

from __future__ import annotations

import contextlib
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upgrades.runners._common import (
    Outcome,
)

# --- conditions and JSON paths ---------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda value, limit: value in limit,
}


class ConditionError(ValueError):
    """A condition that cannot be judged: unknown op, or a value it cannot compare."""


def _numeric(value: Any) -> Any:
    # JSON figures sometimes arrive as strings ("0.002"); compare them as the numbers they are.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def condition_holds(value: Any, condition: Mapping[str, Any]) -> bool:
    """Whether ``value`` meets ``{"op": "<=", "value": 0.01}``; raises ConditionError."""
    op = condition.get("op") if isinstance(condition, Mapping) else None
    if op not in _OPS or "value" not in condition:
        raise ConditionError(
            f"the condition {condition!r} needs an op ({', '.join(_OPS)}) and a value"
        )
    limit = condition["value"]
    if op in ("<", "<=", ">", ">="):
        value, limit = _numeric(value), _numeric(limit)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionError(f"{value!r} is not a number to compare with {limit!r}")
    try:
        return bool(_OPS[op](value, limit))
    except TypeError as exc:
        raise ConditionError(f"{value!r} cannot be compared with {limit!r} ({exc})") from None


def describe_condition(condition: Mapping[str, Any]) -> str:
    return f"{condition.get('op')} {json.dumps(condition.get('value'))}"


_MISSING = object()


def json_path_get(document: Any, path: str) -> Any:
    """``services.0.status`` in a parsed JSON document; raises KeyError naming the missing step."""
    current = document
    for step in path.split(".") if path else []:
        if isinstance(current, list) and re.fullmatch(r"-?\d+", step):
            index = int(step)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        elif isinstance(current, dict):
            current = current.get(step, _MISSING)
        else:
            current = _MISSING
        if current is _MISSING:
            raise KeyError(step)
    return current


# --- the status document and SLOs -----------------------------------------------------------

METRICS = ("error_rate", "latency_p95_ms", "availability")
# Overall figures are the worst service's: an SLO is broken when any service breaks it.
_WORST = {"error_rate": max, "latency_p95_ms": max, "availability": min}


@dataclass(frozen=True)
class StatusEvaluation:
    outcome: Outcome
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def status_json_evaluate(document: Any) -> StatusEvaluation:
    """Judge a parsed /ops/status.json: passed when every service says "healthy".

    figures: {"version", "status", "overall": {metric: worst value}, "services": {name:
    {"status", metric: value}}}. A document missing a field or with one of the wrong type
    fails, with the field named and no figures.
    """

    def broken(what: str) -> StatusEvaluation:
        return StatusEvaluation("failed", f"The status document is malformed: {what}")

    if not isinstance(document, dict):
        return broken(f"expected a JSON object, got {type(document).__name__}")
    services = document.get("services")
    if not isinstance(services, list) or not services:
        return broken('"services" is missing or not a non-empty list')
    per_service: dict[str, dict[str, Any]] = {}
    for index, service in enumerate(services):
        if not isinstance(service, dict):
            return broken(f"services.{index} is not an object")
        name = service.get("name")
        if not isinstance(name, str) or not name:
            return broken(f"services.{index}.name is missing")
        if not isinstance(service.get("status"), str):
            return broken(f"services.{index}.status ({name}) is missing or not text")
        entry: dict[str, Any] = {"status": service["status"]}
        for metric in METRICS:
            value = service.get(metric)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return broken(f"services.{index}.{metric} ({name}) is missing or not a number")
            entry[metric] = value
        per_service[name] = entry
    overall = {m: _WORST[m](s[m] for s in per_service.values()) for m in METRICS}
    figures = {
        "version": document.get("version"),
        "status": document.get("status"),
        "overall": overall,
        "services": per_service,
    }
    unwell = [
        f"{name} is {s['status']}" for name, s in per_service.items() if s["status"] != "healthy"
    ]
    if unwell:
        return StatusEvaluation(
            "failed",
            f"{len(unwell)} of {len(per_service)} services unwell: {', '.join(unwell)}",
            figures,
        )
    return StatusEvaluation("passed", f"All {len(per_service)} services healthy", figures)


@dataclass(frozen=True)
class SloEvaluation:
    outcome: Outcome
    reason: str
    breaches: list[dict[str, Any]] = field(default_factory=list)


def slo_evaluate(
    *, figures: Mapping[str, Any], thresholds: Sequence[tuple[str, str, float]]
) -> SloEvaluation:
    """Hold ``figures`` ({metric: value}) to ``thresholds`` ([(metric, op, limit)]).

    passed when every figure meets its threshold; failed naming each breach; error when a
    figure is missing or a threshold cannot be judged (nothing can be said about it).
    """
    if not thresholds:
        return SloEvaluation("error", "No SLO thresholds to check against")
    breaches: list[dict[str, Any]] = []
    for metric, op, limit in thresholds:
        value = figures.get(metric)
        if value is None:
            return SloEvaluation("error", f"No figure for {metric} to hold to {op} {limit}")
        try:
            held = condition_holds(value, {"op": op, "value": limit})
        except ConditionError as exc:
            return SloEvaluation("error", f"Cannot judge {metric}: {exc}")
        if not held:
            breaches.append({"metric": metric, "op": op, "limit": limit, "value": value})
    if breaches:
        named = "; ".join(
            f"{b['metric']} is {b['value']}, wanted {b['op']} {b['limit']}" for b in breaches
        )
        return SloEvaluation("failed", f"Out of SLO: {named}", breaches)
    return SloEvaluation("passed", f"Within SLO on {len(thresholds)} threshold(s)")
