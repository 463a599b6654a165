"""The outbox: what other parts of the product do about an upgrade's events.

Services write their own rows and their event, nothing else. This table says, per event kind,
what follows (the status page, the playbook's message drafts, the reviews, the pre-upgrade
baseline). `events_react` claims unhandled events with a conditional update and runs their
reactions in one transaction with the claim: run it twice and each reaction happens once; if a
reaction fails, the claim rolls back and the event waits for the next sweep (the scheduler runs
one every few seconds), so nothing is lost when a broker or a template is down.

The monitoring window is not a reaction: upgrade_act opens it in the same transaction as
"begin monitoring", because the lifecycle's "complete" depends on it existing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import current_app
from django.db import transaction
from django.utils import timezone

from upgrades.models import EventKind, RollbackState, Upgrade, UpgradeEvent, UpgradeStatus
from upgrades.services import announce
from upgrades.services.reviews import reviews_schedule

logger = logging.getLogger(__name__)

ENDED = (UpgradeStatus.COMPLETED, UpgradeStatus.ROLLED_BACK, UpgradeStatus.FAILED)
OUTCOME_WORDS = {
    UpgradeStatus.COMPLETED: "Success",
    UpgradeStatus.ROLLED_BACK: "Rolled back",
    UpgradeStatus.FAILED: "Failed",
}


def _status_changed(event: UpgradeEvent) -> None:
    upgrade = event.upgrade
    announce.status_sync(upgrade)
    if event.to_value == UpgradeStatus.SCHEDULED:
        announce.message_draft(upgrade, "pre_upgrade", by=event.actor, moment="scheduled")
    elif event.to_value in ENDED:
        announce.message_draft(
            upgrade, "post_upgrade", by=event.actor, moment="ended",
            status=OUTCOME_WORDS[event.to_value], issues=event.message or "",
            next_steps="Post-upgrade reviews at 24 hours, 7 days and 4 weeks.",
        )  # fmt: skip
        reviews_schedule(upgrade=upgrade, by=event.actor)
        if event.to_value in (UpgradeStatus.ROLLED_BACK, UpgradeStatus.FAILED):
            announce.incident_draft(upgrade)  # a draft for a release manager; never published here
    elif event.to_value == UpgradeStatus.IN_PROGRESS:
        if event.from_value in (UpgradeStatus.DRAFT, UpgradeStatus.SCHEDULED):
            # The playbook's progress update as the work starts.
            announce.message_draft(
                upgrade, "progress", by=event.actor, moment="started", status="In Progress",
                progress="The upgrade has started.",
            )  # fmt: skip
        transaction.on_commit(lambda: _send_quietly("upgrades.monitoring_baseline", upgrade.pk))


def _step_closed(event: UpgradeEvent) -> None:
    if event.step is not None:
        announce.after_step_closed(event.step, by=event.actor)


def _rollback_started(event: UpgradeEvent) -> None:
    if event.to_value == RollbackState.RUNNING:
        announce.message_draft(
            event.upgrade, "progress", by=event.actor, moment="rollback", status="Rolling back",
            progress="Returning to the previous version.", issues=event.message,
        )  # fmt: skip


REACTIONS: dict[str, tuple[Callable[[UpgradeEvent], None], ...]] = {
    EventKind.TRANSITION: (_status_changed,),
    EventKind.STEP_DONE: (_step_closed,),
    EventKind.STEP_SKIPPED: (_step_closed,),
    EventKind.ROLLBACK: (_rollback_started,),
}


def _send_quietly(task_name: str, *args) -> None:
    # Work that can be redone later (a baseline) must not fail a request when the broker is down.
    # By name: the tasks module imports the services, so importing it here would be a cycle.
    try:
        current_app.send_task(task_name, args=list(args), retry=False)
    except Exception as exc:  # noqa: BLE001
        logger.warning("Could not queue %s%s: %s", task_name, args, exc)


def events_react(*, upgrade_id: int | None = None, limit: int = 200) -> int:
    """Carry out the reactions of events not yet handled, oldest first; returns how many."""
    pending = UpgradeEvent.objects.filter(reacted_at__isnull=True)
    if upgrade_id is not None:
        pending = pending.filter(upgrade_id=upgrade_id)
    handled = 0
    for event_id in pending.order_by("id").values_list("id", flat=True)[:limit]:
        try:
            with transaction.atomic():
                claimed = UpgradeEvent.objects.filter(pk=event_id, reacted_at__isnull=True).update(
                    reacted_at=timezone.now()
                )
                if not claimed:
                    continue  # another process reacted to it
                event = UpgradeEvent.objects.select_related(
                    "upgrade__environment", "step__phase", "actor"
                ).get(pk=event_id)
                for reaction in REACTIONS.get(event.kind, ()):
                    reaction(event)
                handled += 1
        except Exception:  # noqa: BLE001 - left for the next sweep; one bad event stops no other
            logger.exception("Reactions to upgrade event %s failed; will retry", event_id)
    return handled


def react_after(upgrade: Upgrade | int) -> None:
    """Run the reactions once the caller's writes are in: right away when there is no outer
    transaction (a request), else when it commits."""
    upgrade_id = upgrade if isinstance(upgrade, int) else upgrade.pk
    transaction.on_commit(lambda: events_react(upgrade_id=upgrade_id))
