"""Deployment freezes: release managers declare them and lift them; each change has its row.

The lifecycle table reads freezes (schedule, start and deploy of a non-emergency upgrade are
refused inside one); these services only write them and their history.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from mycelia_ops.validation import BadInput, clean_text, sane_datetime
from upgrades.models import DeploymentFreeze, Environment, FreezeEvent, FreezeEventKind
from upgrades.services.checklist import Conflict, InvalidInput

logger = logging.getLogger(__name__)

NAME_MAX = 200
REASON_MAX = 2000


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def freeze_span_words(freeze: DeploymentFreeze) -> str:
    """The freeze's span as the history records it: "2026-05-01 12:00 to 2026-05-04 06:00",
    with "every week" for a weekly one."""
    span = f"{_when(freeze.starts_at)} to {_when(freeze.ends_at)}"
    return f"{span}, every week" if freeze.weekly else span


def _checked(
    *, name: Any, reason: Any, environments: list[Environment], starts_at: Any, ends_at: Any,
    weekly: bool, now: datetime,
) -> tuple[str, str, datetime, datetime]:  # fmt: skip
    try:
        name = clean_text(name, field="name", max_length=NAME_MAX).strip()
        reason = clean_text(reason, field="reason", max_length=REASON_MAX).strip()
        starts_at = sane_datetime(starts_at, field="starts_at") if starts_at else None
        ends_at = sane_datetime(ends_at, field="ends_at") if ends_at else None
    except BadInput as exc:
        raise InvalidInput(exc.message, field=exc.field) from None
    if not name:
        raise InvalidInput("Name the freeze.", field="name")
    if not reason:
        raise InvalidInput("Say why deployments are frozen.", field="reason")
    if not environments:
        raise InvalidInput("Choose the environments the freeze covers.", field="environments")
    if starts_at is None:
        raise InvalidInput("Say when the freeze starts.", field="starts_at")
    if ends_at is None:
        raise InvalidInput("Say when the freeze ends.", field="ends_at")
    if ends_at <= starts_at:
        raise InvalidInput("The freeze must end after it starts.", field="ends_at")
    if weekly and ends_at - starts_at >= timedelta(weeks=1):
        raise InvalidInput(
            "A weekly freeze lasts less than a week (it repeats every week from its start).",
            field="ends_at",
        )
    if not weekly and ends_at <= now:
        raise InvalidInput("This freeze would be over already: it must end in the future.",
                           field="ends_at")  # fmt: skip
    return name, reason, starts_at, ends_at


def freeze_create(
    *, name: str, reason: str, environments: list[Environment], starts_at: datetime,
    ends_at: datetime, weekly: bool, by: Any,
) -> DeploymentFreeze:  # fmt: skip
    """Declare a freeze on `environments`; the history records who declared it and its span."""
    environments = list(environments)
    now = timezone.now()
    name, reason, starts_at, ends_at = _checked(
        name=name, reason=reason, environments=environments, starts_at=starts_at,
        ends_at=ends_at, weekly=weekly, now=now,
    )  # fmt: skip
    with transaction.atomic():
        freeze = DeploymentFreeze.objects.create(
            name=name, reason=reason, starts_at=starts_at, ends_at=ends_at, weekly=weekly,
            created_by=by, created_at=now,
        )  # fmt: skip
        freeze.environments.set(environments)
        names = ", ".join(sorted(e.name for e in environments))
        FreezeEvent.objects.create(
            freeze=freeze, kind=FreezeEventKind.CREATED, actor=by, at=now, from_value="",
            to_value=freeze_span_words(freeze)[:200],
            message=f"Freeze “{name}” declared on {names}: {reason}",
        )  # fmt: skip
    logger.info("Freeze %s created by %s", freeze.pk, getattr(by, "username", by))
    return freeze


def freeze_end(*, freeze: DeploymentFreeze, by: Any) -> DeploymentFreeze:
    """Lift a freeze now: deployments may go ahead at once. Refused (409) when it was already
    lifted or is over."""
    now = timezone.now()
    with transaction.atomic():
        locked = DeploymentFreeze.objects.select_for_update().get(pk=freeze.pk)
        if locked.ended_at is not None:
            raise Conflict(f"Freeze “{locked.name}” was already lifted {_when(locked.ended_at)}.")
        if locked.next_span(now) is None:
            raise Conflict(f"Freeze “{locked.name}” is over already: there is nothing to lift.")
        was_active = locked.covers(now)
        locked.ended_at = now
        locked.save(update_fields=["ended_at"])
        FreezeEvent.objects.create(
            freeze=locked, kind=FreezeEventKind.LIFTED, actor=by, at=now,
            from_value=freeze_span_words(locked)[:200], to_value=f"lifted {_when(now)}",
            message=(
                f"Freeze “{locked.name}” lifted early: deployments may go ahead."
                if was_active
                else f"Freeze “{locked.name}” called off before it began."
            ),
        )  # fmt: skip
    logger.info("Freeze %s lifted by %s", locked.pk, getattr(by, "username", by))
    freeze.ended_at = locked.ended_at
    return locked


__all__ = ["freeze_create", "freeze_end", "freeze_span_words"]
