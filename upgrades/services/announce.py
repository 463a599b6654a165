"""What upgrades tell the comms app: the status page's mirror of each upgrade, and the
playbook's three messages drafted at the moments it names them.

comms never sees upgrades' models: everything goes over as ids and plain values. A message that
cannot be drafted (templates not seeded) is logged and never blocks the upgrade itself.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from comms import services as comms
from upgrades.models import ChecklistStep, StepStatus, Upgrade, UpgradePhase

logger = logging.getLogger(__name__)

CONTACT = "tech-support@mycelia.com"  # the playbook's Support contact


def _progress(upgrade: Upgrade) -> tuple[int, str]:
    """Overall percent of steps closed, and the phase being worked on (the first one open)."""
    phases = (
        UpgradePhase.objects.filter(upgrade=upgrade)
        .annotate(
            total=Count("steps"), closed=Count("steps", filter=~Q(steps__status=StepStatus.OPEN))
        )
        .order_by("order")
    )
    total = closed = 0
    current = ""
    for phase in phases:
        total += phase.total
        closed += phase.closed
        if not current and phase.closed < phase.total:
            current = phase.title
    return (round(100 * closed / total) if total else 0), current or "All steps closed"


def status_sync(upgrade: Upgrade) -> None:
    percent, phase_title = _progress(upgrade)
    comms.status_maintenance_sync(
        upgrade_id=upgrade.pk,
        title=upgrade.title,
        type_label=upgrade.type_label,
        environment_key=upgrade.environment.slug,
        environment_name=upgrade.environment.name,
        status=upgrade.status,
        window_start=upgrade.window_start,
        window_end=upgrade.window_end,
        progress_percent=percent,
        phase_title=phase_title,
        url=f"{settings.MYCELIA_BASE_URL}{upgrade.get_absolute_url()}",
    )


def _context(upgrade: Upgrade, **extra: str) -> dict[str, str]:
    percent, phase_title = _progress(upgrade)
    window = (
        upgrade.window_start.strftime("%Y-%m-%d %H:%M %Z") if upgrade.window_start else "to be set"
    )
    return {
        "version_or_feature": upgrade.change_label or upgrade.title,
        "date_time": window,
        "type": upgrade.type_label,
        "duration": f"{upgrade.window_minutes} minutes" if upgrade.window_minutes else "",
        "impact": f"{upgrade.get_risk_display()} risk; {upgrade.purpose}",
        "rollback_plan": upgrade.get_rollback_method_display(),
        "contact": CONTACT,
        "status": upgrade.get_status_display(),
        "progress": f"{percent}% of the checklist done; now at {phase_title}",
        "eta": upgrade.window_end.strftime("%Y-%m-%d %H:%M %Z") if upgrade.window_end else "",
        "issues": "",
        "next_steps": "",
        "upgrade_title": upgrade.title,
        "upgrade_url": f"{settings.MYCELIA_BASE_URL}{upgrade.get_absolute_url()}",
        **extra,
    }


def message_draft(upgrade: Upgrade, template_key: str, *, by: Any, **extra: str) -> None:
    try:
        comms.message_draft_create(
            upgrade_id=upgrade.pk,
            template_key=template_key,
            context=_context(upgrade, **extra),
            by=by,
            environment_key=upgrade.environment.slug,
        )
    except comms.CommsError as exc:
        logger.warning("No %s message drafted for upgrade %s: %s", template_key, upgrade.pk, exc)


def after_step_closed(step: ChecklistStep, *, by: Any) -> None:
    """A phase that has just closed its last step gets a progress update drafted."""
    upgrade = Upgrade.objects.select_related("environment").get(pk=step.upgrade_id)
    status_sync(upgrade)
    still_open = ChecklistStep.objects.filter(phase_id=step.phase_id, status=StepStatus.OPEN)
    if not still_open.exists():
        message_draft(
            upgrade, "progress", by=by,
            status=f"{upgrade.get_status_display()}: “{step.phase.title}” finished",
        )  # fmt: skip
