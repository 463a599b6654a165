"""Reads shared by the UI, the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from flags.exceptions import EnvironmentNotFound, FlagNotFound
from flags.models import Flag, FlagEnvironment, FlagEvent, FlagState


def flag_get(*, key: str, include_archived: bool = True) -> Flag:
    queryset = Flag.objects.select_related("owner")
    if not include_archived:
        queryset = queryset.filter(archived_at__isnull=True)
    flag = queryset.filter(key=key).first()
    if flag is None:
        raise FlagNotFound(key)
    return flag


def environment_get(*, key: str) -> FlagEnvironment:
    environment = FlagEnvironment.objects.filter(key=key).first()
    if environment is None:
        raise EnvironmentNotFound(key)
    return environment


def flag_list(*, query: str = "", tag: str = "", state: str = "") -> QuerySet[Flag]:
    """Flags with their states prefetched (environment order). `state`: on, off, archived,
    all; anything else hides archived flags."""
    flags = Flag.objects.select_related("owner").prefetch_related(
        Prefetch(
            "states",
            queryset=FlagState.objects.select_related("environment").order_by("environment_id"),
        )
    )
    if query:
        flags = flags.filter(Q(key__icontains=query) | Q(description__icontains=query))
    if tag:
        # Tags are stored as "a,b,c": match a whole tag, not a part of one.
        tag = tag.strip().lower()
        flags = flags.filter(
            Q(tags=tag)
            | Q(tags__startswith=f"{tag},")
            | Q(tags__endswith=f",{tag}")
            | Q(tags__contains=f",{tag},")
        )
    if state == "archived":
        return flags.filter(archived_at__isnull=False)
    if state != "all":
        flags = flags.filter(archived_at__isnull=True)
    enabled_somewhere = Exists(FlagState.objects.filter(flag=OuterRef("pk"), enabled=True))
    if state == "on":
        flags = flags.filter(enabled_somewhere)
    elif state == "off":
        flags = flags.exclude(enabled_somewhere)
    return flags.order_by("key")


def tags_all() -> list[str]:
    tags: set[str] = set()
    for raw in Flag.objects.filter(archived_at__isnull=True).values_list("tags", flat=True):
        tags.update(t for t in raw.split(",") if t)
    return sorted(tags)


def flag_events_between(
    *, key: str, environment_key: str, start: datetime, end: datetime | None
) -> list[dict[str, Any]]:
    """A flag's changes in one environment over a period, as plain values (for reports)."""
    events = FlagEvent.objects.filter(
        flag__key=key, environment__key=environment_key, at__gte=start
    ).select_related("actor")
    if end is not None:
        events = events.filter(at__lte=end)
    return [
        {
            "at": e.at,
            "by": e.actor.get_username() if e.actor else e.get_via_display(),
            "via": e.via,
            "before": e.before,
            "after": e.after,
            "reason": e.reason,
        }
        for e in events.order_by("at", "id")
    ]
