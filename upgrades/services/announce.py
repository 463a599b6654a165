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
from upgrades.models import (
    ChecklistStep,
    StepStatus,
    Upgrade,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
)

logger = logging.getLogger(__name__)

CONTACT = "tech-support@mycelia.com"  # the playbook's Support contact


# The stage an upgrade is working in, by its status: the phase shown is the current one of
# that stage (a verifying upgrade is "Upgrade Monitoring", even with an optional pre-upgrade
# step left open).
_STAGE_FOR_STATUS = {
    "draft": "pre", "scheduled": "pre", "in_progress": "deploy", "monitoring": "post",
}  # fmt: skip


def _progress(upgrade: Upgrade) -> tuple[int, str]:
    """Overall percent of steps closed, and the phase being worked on: the first phase with an
    open step in the stage the upgrade's status is in (else the last phase of that stage)."""
    phases = list(
        UpgradePhase.objects.filter(upgrade=upgrade)
        .annotate(
            total=Count("steps"), closed=Count("steps", filter=~Q(steps__status=StepStatus.OPEN))
        )
        .order_by("order")
    )
    total = sum(p.total for p in phases)
    closed = sum(p.closed for p in phases)
    stage = _STAGE_FOR_STATUS.get(upgrade.status)
    in_stage = [p for p in phases if p.stage == stage]
    current = next((p.title for p in in_stage if p.closed < p.total), "")
    if not current and in_stage:
        current = in_stage[-1].title
    if stage is None:
        current = ""
    return (round(100 * closed / total) if total else 0), current or "All steps closed"


def public_title(upgrade: Upgrade) -> str:
    """The name the status page gives an upgrade: an emergency's own title may name the flaw it
    fixes ("CVE-2026-1234 patch"), so the public sees only that it is emergency maintenance."""
    if upgrade.upgrade_type == UpgradeType.EMERGENCY:
        return f"Emergency maintenance of {upgrade.environment.name}"
    return upgrade.title


def status_sync(upgrade: Upgrade) -> None:
    percent, phase_title = _progress(upgrade)
    comms.status_maintenance_sync(
        upgrade_id=upgrade.pk,
        title=public_title(upgrade),
        type_label="Emergency"
        if upgrade.upgrade_type == UpgradeType.EMERGENCY
        else upgrade.type_label,
        environment_key=upgrade.environment.slug,
        environment_name=upgrade.environment.name,
        public=upgrade.environment.shown_on_status_page,
        status=upgrade.status,
        window_start=upgrade.window_start,
        window_end=upgrade.window_end,
        progress_percent=percent,
        phase_title=phase_title,
        url=f"{settings.MYCELIA_BASE_URL}{upgrade.get_absolute_url()}",
    )


def incident_draft(upgrade: Upgrade) -> None:
    """A rollback or failure drafts an incident for a release manager to publish, edit or
    dismiss (nothing public by itself; nothing at all for an environment not shown)."""
    try:
        comms.status_incident_draft(upgrade_id=upgrade.pk, lifecycle=upgrade.status)
    except comms.CommsError as exc:
        logger.warning("No incident drafted for upgrade %s: %s", upgrade.pk, exc)


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
        "status": status_words(upgrade),
        "progress": f"{percent}% of the checklist done; now at {phase_title}",
        "eta": upgrade.window_end.strftime("%Y-%m-%d %H:%M %Z") if upgrade.window_end else "",
        "issues": "",
        "next_steps": "",
        "upgrade_title": upgrade.title,
        "upgrade_url": f"{settings.MYCELIA_BASE_URL}{upgrade.get_absolute_url()}",
        **extra,
    }


# The playbook's words for where an upgrade stands ("Current Status: [In Progress/Completed/
# Failed]"), never the panel's lifecycle names: a subject reads "Upgrade Progress: 1.5.0 -
# In Progress", not "- Draft: 'Pre-Upgrade' finished".
STATUS_WORDS = {
    UpgradeStatus.DRAFT: "Preparing",
    UpgradeStatus.SCHEDULED: "Preparing",
    UpgradeStatus.IN_PROGRESS: "In Progress",
    UpgradeStatus.MONITORING: "In Progress",
    UpgradeStatus.COMPLETED: "Completed",
    UpgradeStatus.ROLLED_BACK: "Rolled back",
    UpgradeStatus.FAILED: "Failed",
    UpgradeStatus.CANCELLED: "Cancelled",
}


def status_words(upgrade: Upgrade) -> str:
    return STATUS_WORDS.get(upgrade.status, "In Progress")


def message_draft(
    upgrade: Upgrade, template_key: str, *, by: Any, moment: str = "", **extra: str
) -> None:
    """Draft one of the playbook's messages about `upgrade` at `moment` (scheduled, started,
    phase, rollback, ended); comms replaces the upgrade's older drafts still waiting."""
    try:
        comms.message_draft_create(
            upgrade_id=upgrade.pk,
            template_key=template_key,
            context=_context(upgrade, **extra),
            by=by,
            environment_key=upgrade.environment.slug,
            moment=moment,
        )
    except comms.CommsError as exc:
        logger.warning("No %s message drafted for upgrade %s: %s", template_key, upgrade.pk, exc)


def after_step_closed(step: ChecklistStep, *, by: Any) -> None:
    """A phase that has just closed its last step moves the status page; it gets a progress
    update drafted only where the team asked for one per phase (Environment.phase_messages):
    the playbook's own moments are scheduled, started, rollback and ended."""
    upgrade = Upgrade.objects.select_related("environment").get(pk=step.upgrade_id)
    status_sync(upgrade)
    if not upgrade.environment.phase_messages:
        return
    still_open = ChecklistStep.objects.filter(phase_id=step.phase_id, status=StepStatus.OPEN)
    if not still_open.exists():
        percent, now_at = _progress(upgrade)
        message_draft(
            upgrade, "progress", by=by, moment="phase", status=status_words(upgrade),
            progress=f"{step.phase.title} done ({percent}% of the checklist); next: {now_at}.",
        )  # fmt: skip
