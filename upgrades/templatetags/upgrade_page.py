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
