"""Words for the upgrade page: times relative and absolute, states and figures as people say
them (never `in_progress`, a Python dict or a raw decimal)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import naturaltime
from django.utils import timezone
from django.utils.html import format_html

from upgrades.models import (
    ApprovalState,
    DeployState,
    RollbackState,
    RunStatus,
    StepStatus,
    UpgradeStatus,
)

register = template.Library()

# Every value an event's from/to may hold, in words. Later tables win on a shared value
# ("failed" is the same word for an upgrade, a run and a deploy).
_WORDS: dict[str, str] = {}
for choices in (StepStatus, RunStatus, ApprovalState, RollbackState, DeployState, UpgradeStatus):
    _WORDS.update({value: str(label) for value, label in choices.choices})
_WORDS.update({"none": "nothing", "open": "open", "not_required": "not required"})


@register.filter
def when(moment: datetime | None) -> str:
    """`3 minutes ago · 30 Nov 11:40` in a <time> element; "—" when there is no time."""
    if not moment:
        return "—"
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{} · {}</time>',
        moment.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        naturaltime(moment),
        local.strftime("%-d %b %Y %H:%M"),
    )


@register.filter
def in_words(value: Any) -> str:
    """A stored state (`in_progress`, `no_go`, `passed`) as words; anything else as it is."""
    if value in (None, ""):
        return "—"
    text = str(value)
    return _WORDS.get(text, text.replace("_", " ") if text.islower() else text)


@register.filter
def duration(ms: int | None) -> str:
    """Milliseconds as people read them: 340 ms, 1.2 s, 2 min 5 s."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


# --- a run's parameters and measurements, as rows of words ---------------------------------------

_LABELS = {
    "version": "Version",
    "flag_key": "Feature flag",
    "operation": "Runs",
    "backup_name": "Backup",
    "backup_path": "Backup file",
    "method": "Method",
    "path": "Path",
    "expected_status": "Expected status",
    "json_path": "Value read at",
    "condition": "Passes when",
    "fail_condition": "Fails when",
    "timeout": "Time limit",
    "retries": "Retries",
    "interval": "Between rounds",
    "count": "Rounds",
    "failure_limit": "Failures allowed before it fails",
    "source": "Measured by",
    "status_code": "HTTP status",
    "latency_ms": "Answered in",
    "value": "Value read",
    "exit_code": "Exit code",
    "duration_ms": "Took",
    "running_version": "Target reports version",
    "changed": "Changed the target",
    "verified": "Verified",
    "status": "Status",
    "overall": "Overall (worst service)",
    "services": "Services",
    "breaches": "Out of SLO",
    "samples": "Rounds",
    "failures": "Failed rounds",
    "error_rate": "error rate",
    "latency_p95_ms": "p95 latency",
    "availability": "availability",
}
_SECONDS = {"timeout", "interval"}
_MILLISECONDS = {"latency_ms", "latency_p95_ms"}
_FRACTIONS = {"error_rate", "availability"}
_OPS = {"lt": "<", "lte": "≤", "le": "≤", "gt": ">", "gte": "≥", "ge": "≥", "eq": "=", "ne": "≠"}
_MAX_ITEMS = 20


def _label(key: Any) -> str:
    text = str(key)
    return _LABELS.get(text, text.replace("_", " ").capitalize())


def _inner(label: str) -> str:
    """A label inside a sentence: "status", but "HTTP status"."""
    return label if label[:2].isupper() else label[:1].lower() + label[1:]


def _number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _percent(value: float) -> str:
    return f"{value * 100:.3f}".rstrip("0").rstrip(".") + " %"


def _figure(key: str, value: Any, depth: int = 0) -> str:
    """One value in words: yes/no, 120 ms, 0.2 %, 1.2 s, a condition, a list, a mapping."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if key == "duration_ms":
            return duration(int(value))
        if key in _MILLISECONDS:
            return f"{_number(value)} ms"
        if key in _SECONDS:
            return f"{_number(value)} s"
        if key in _FRACTIONS and 0 <= value <= 1:
            return _percent(value)
        return _number(value)
    if key == "operation":
        from upgrades.models import Operation

        return str(dict(Operation.choices).get(value, in_words(value)))
    if key == "status" and isinstance(value, str):
        return str(dict(RunStatus.choices).get(value, in_words(value))).lower()
    if depth > 2:
        return "…"
    if isinstance(value, dict):
        if {"metric", "value"} <= value.keys():  # a breach, or a condition with its metric
            op = _OPS.get(str(value.get("op", "")), str(value.get("op", "")))
            metric = str(value["metric"])
            wanted = (
                f", wanted {op} {_figure(metric, value.get('limit'))}" if "limit" in value else ""
            )
            return f"{_label(metric)} {_figure(metric, value['value'])}{wanted}"
        if {"op", "value"} <= value.keys() and len(value) == 2:  # a condition
            op = _OPS.get(str(value["op"]), str(value["op"]))
            return f"{op} {_figure('', value['value'])}"
        parts = [f"{_inner(_label(k))} {_figure(str(k), v, depth + 1)}" for k, v in value.items()]
        return ", ".join(parts[:_MAX_ITEMS]) + ("…" if len(parts) > _MAX_ITEMS else "")
    if isinstance(value, list | tuple):
        parts = [_figure(key, v, depth + 1) for v in value[:_MAX_ITEMS]]
        return "; ".join(parts) + ("…" if len(value) > _MAX_ITEMS else "")
    return str(value)


@register.filter
def as_rows(mapping: Any) -> list[tuple[str, str]]:
    """A run's parameters or measurements as (label, words) rows: never a Python dict on a page.
    Services are a row each ("api: healthy, error rate 0.2 %, p95 latency 120 ms, ...")."""
    if not isinstance(mapping, dict):
        return [] if mapping in (None, "", [], {}) else [("Value", _figure("", mapping))]
    rows: list[tuple[str, str]] = []
    for key, value in mapping.items():
        key = str(key)
        if key == "services" and isinstance(value, dict):
            rows += [
                (f"Service {name}", _figure("", figures, 1)) for name, figures in value.items()
            ]
            continue
        if key == "samples" and isinstance(value, list):
            rows += [
                (f"Round {n}", _figure("", sample, 1))
                for n, sample in enumerate(value[:_MAX_ITEMS], start=1)
            ]
            continue
        rows.append((_label(key), _figure(key, value)))
    return rows


@register.filter
def offers(decisions: Any, name: str) -> bool:
    """`d|offers:"retry"`: whether the decision is open on the run, for this person."""
    return bool(decisions is not None and decisions.offers(name))


def _table(choices: Any) -> dict[str, str]:
    return {value: str(label) for value, label in choices.choices}


# Which table an event's from/to values come from, by the event's kind: "passed" is "Deployed"
# on a deployment, "Rolled back" on a rollback, "Passed" on a run.
_WORDS_BY_KIND: dict[str, dict[str, str]] = {
    "transition": _table(UpgradeStatus),
    "deployment": _table(DeployState),
    "rollback": _table(RollbackState),
    "run_requested": _table(RunStatus),
    "run_finished": _table(RunStatus),
    "approval": _table(ApprovalState),
    "step_done": _table(StepStatus),
    "step_reopened": _table(StepStatus),
    "step_skipped": _table(StepStatus),
}


@register.filter
def state_words(value: Any, kind: str = "") -> str:
    """An event's from/to value in words, read in the table of the event's kind:
    `{{ e.to_value|state_words:e.kind }}`."""
    words = _WORDS_BY_KIND.get(str(kind), {}).get(str(value))
    return words if words is not None else in_words(value)
