"""One door for every action on an upgrade: the lifecycle table decides, this module carries out.

The page, the REST API, the CLI and the workers all call `upgrade_act`; what is refused is
refused with the table's sentence (409), and what needs a reason asks for it (400).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from upgrades import reactions, selectors
from upgrades.models import (
    Action,
    ChecklistStep,
    CheckRun,
    DeployState,
    EventKind,
    RollbackState,
    Transition,
    Upgrade,
    UpgradeEvent,
    UpgradeType,
)
from upgrades.models import lifecycle as table
from upgrades.services.checklist import (
    Conflict,
    InvalidInput,
    NotAllowed,
    status_move,
    upgrade_create,
    upgrade_decide,
    validate_details,
)
from upgrades.services.executors import read_running_version
from upgrades.services.monitoring import (
    monitoring_window_end,
    monitoring_window_extend,
    monitoring_window_open,
)
from upgrades.services.runs import action_request

logger = logging.getLogger(__name__)


class Refused(Conflict):
    """The lifecycle table refused the action; carries what is allowed instead."""

    def __init__(self, message: str, *, allowed_actions: list[str]) -> None:
        super().__init__(message)
        self.allowed_actions = allowed_actions


@dataclass
class Acted:
    """What an action did: the upgrade as it is now, and the run it queued, if any."""

    upgrade: Upgrade
    run: CheckRun | None = None
    message: str = ""


def upgrade_verdicts(*, upgrade: Upgrade, by: Any = None) -> dict[str, table.Verdict]:
    return selectors.lifecycle_verdicts(upgrade, actor=by)


def _verdict_or_refuse(upgrade: Upgrade, action: str, by: Any) -> table.Verdict:
    facts = selectors.lifecycle_facts(upgrade, actor=by)
    verdict = table.verdict(action, facts)
    if not verdict.allowed:
        if not facts.actor_can_operate:
            raise NotAllowed(verdict.why)
        raise Refused(verdict.why, allowed_actions=table.allowed_actions(facts))
    return verdict


def _event(upgrade: Upgrade, *, kind: str, by: Any, message: str, from_value="", to_value=""):
    UpgradeEvent.objects.create(
        upgrade=upgrade, kind=kind, actor=by, message=message,
        from_value=from_value, to_value=to_value,
    )  # fmt: skip


def upgrade_act(
    *,
    upgrade: Upgrade,
    action: str,
    by: Any,
    reason: str = "",
    override_reason: str = "",
    backup_id: int | None = None,
    hours: float | None = None,
    decision: str = "",
) -> Acted:
    """Carry out `action` on `upgrade` if the lifecycle table allows it now; then what other
    parts of the product do about it (upgrades.reactions)."""
    acted = _act(
        upgrade=upgrade, action=action, by=by, reason=reason, override_reason=override_reason,
        backup_id=backup_id, hours=hours, decision=decision,
    )  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)
    if acted.upgrade.pk != upgrade.pk:
        reactions.events_react(upgrade_id=acted.upgrade.pk)
    return acted


def _act(
    *, upgrade: Upgrade, action: str, by: Any, reason: str, override_reason: str,
    backup_id: int | None, hours: float | None, decision: str,
) -> Acted:  # fmt: skip
    if action not in Action.values:
        raise InvalidInput(f"Unknown action “{action}”.", field="action")
    reason, override_reason = reason.strip(), override_reason.strip()
    # Decide on the row as it is now, not on what the caller loaded earlier.
    upgrade = Upgrade.objects.select_related("environment", "owner").get(pk=upgrade.pk)
    verdict = _verdict_or_refuse(upgrade, action, by)
    if verdict.needs_reason and not reason:
        raise InvalidInput(f"“{verdict.label}” needs a reason for the timeline.", field="reason")
    if action in (Action.SCHEDULE, Action.START, Action.DEPLOY) and verdict.needs_reason:
        freeze = selectors.active_freeze(upgrade)
        _event(
            upgrade, kind=EventKind.GATE_OVERRIDDEN, by=by, from_value="freeze",
            to_value="emergency",
            message=f"Emergency goes ahead during freeze “{freeze.name if freeze else ''}”: "
            f"{reason}",
        )  # fmt: skip
    if action in _STATUS_MOVES:
        with transaction.atomic():
            moved = status_move(
                upgrade=upgrade, transition=_STATUS_MOVES[action], by=by, reason=reason,
                override_reason=override_reason,
            )  # fmt: skip
            if action == Action.BEGIN_MONITORING:
                # In the same transaction: completing depends on the window existing.
                monitoring_window_open(upgrade=moved, by=by)
        return Acted(moved, message=f"Upgrade is now {moved.get_status_display().lower()}.")
    if action in _RUN_ACTIONS:
        run = action_request(
            upgrade=upgrade, action=_run_action(upgrade, action), by=by, confirmed=True,
            backup_id=backup_id, reason=reason,
        )  # fmt: skip
        upgrade.refresh_from_db()
        return Acted(upgrade, run, f"{run.title}: queued.")
    if action == Action.DEPLOYED_OUTSIDE:
        return _deployed_outside(upgrade=upgrade, by=by, reason=reason)
    if action == Action.RESOLVED_BY_HAND:
        return _resolved_by_hand(upgrade=upgrade, by=by, reason=reason)
    if action == Action.END_MONITORING:
        monitoring_window_end(upgrade=upgrade, by=by, reason=reason)
        return Acted(upgrade, message="Monitoring ended early: the upgrade can be completed.")
    if action == Action.EXTEND_MONITORING:
        if hours is None or not math.isfinite(hours):
            raise InvalidInput("Give the hours to extend by as a number.", field="hours")
        window = monitoring_window_extend(upgrade=upgrade, by=by, hours=hours)
        return Acted(upgrade, message=f"Monitoring now ends {window.ends_at:%Y-%m-%d %H:%M}.")
    if action == Action.APPROVE:
        decided = upgrade_decide(upgrade=upgrade, by=by, decision=decision, reason=reason)
        return Acted(decided, message="Go/no-go decision recorded.")
    if action == Action.CLONE:
        clone = upgrade_clone(upgrade=upgrade, by=by)
        return Acted(clone, message=f"New draft “{clone.title}” created from this upgrade.")
    raise InvalidInput(f"“{verdict.label}” is done from its own form.", field="action")


def upgrade_transition(
    *, upgrade: Upgrade, transition: str, by: Any, reason: str = "", override_reason: str = ""
) -> Upgrade:
    """The status moves by their old names (schedule, start, fail, ...), through the table."""
    action = {Transition.FAIL: Action.MARK_FAILED}.get(transition, transition)
    return upgrade_act(
        upgrade=upgrade, action=action, by=by, reason=reason, override_reason=override_reason
    ).upgrade


_STATUS_MOVES = {
    Action.SCHEDULE: Transition.SCHEDULE,
    Action.UNSCHEDULE: Transition.UNSCHEDULE,
    Action.START: Transition.START,
    Action.BEGIN_MONITORING: Transition.BEGIN_MONITORING,
    Action.COMPLETE: Transition.COMPLETE,
    Action.MARK_FAILED: Transition.FAIL,
    Action.CANCEL: Transition.CANCEL,
}
_RUN_ACTIONS = frozenset(
    {Action.DEPLOY, Action.RETRY, Action.ROLL_BACK, Action.RESTORE_DATABASE, Action.BACK_UP}
)


def _run_action(upgrade: Upgrade, action: str) -> str:
    """The worker action behind a lifecycle action."""
    if action == Action.RETRY:
        if upgrade.rollback_state in (RollbackState.FAILED, RollbackState.UNKNOWN):
            last = upgrade.runs.filter(action__startswith="rollback_").first()
            return last.action if last else _rollback_action(upgrade)
        return "deploy"
    if action == Action.ROLL_BACK:
        return _rollback_action(upgrade)
    return {
        Action.DEPLOY: "deploy",
        Action.RESTORE_DATABASE: "rollback_database",
        Action.BACK_UP: "backup",
    }[action]


def _rollback_action(upgrade: Upgrade) -> str:
    if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG:
        return "rollback_flag"
    return "rollback_version"


def _deployed_outside(*, upgrade: Upgrade, by: Any, reason: str) -> Acted:
    # Outside I/O first, then one transaction: the version the target reports is recorded.
    version, source = read_running_version(upgrade.environment)
    with transaction.atomic():
        locked = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
        _verdict_or_refuse(locked, Action.DEPLOYED_OUTSIDE, by)
        previous = locked.deploy_state
        locked.deploy_state = DeployState.OUTSIDE
        locked.deployed_at = timezone.now()
        locked.deployed_version = version
        if locked.upgrade_type == UpgradeType.FEATURE_FLAG and not locked.rollback_target:
            locked.rollback_target = "off"
        locked.save(
            update_fields=["deploy_state", "deployed_at", "deployed_version", "rollback_target",
                           "updated_at"]
        )  # fmt: skip
        read = f"the target reports version {version} ({source})" if version else source
        _event(
            locked, kind=EventKind.DEPLOYMENT, by=by, from_value=previous,
            to_value=DeployState.OUTSIDE, message=f"Deployed outside the panel: {reason}. {read}",
        )  # fmt: skip
        status_move(upgrade=locked, transition=Transition.BEGIN_MONITORING, by=by, reason=reason)
        monitoring_window_open(upgrade=locked, by=by)
    locked.refresh_from_db()
    return Acted(locked, message="Recorded as deployed outside the panel; monitoring has begun.")


def _resolved_by_hand(*, upgrade: Upgrade, by: Any, reason: str) -> Acted:
    with transaction.atomic():
        locked = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
        _verdict_or_refuse(locked, Action.RESOLVED_BY_HAND, by)
        previous = locked.rollback_state
        locked.rollback_state = RollbackState.BY_HAND
        locked.save(update_fields=["rollback_state", "updated_at"])
        _event(
            locked, kind=EventKind.ROLLBACK, by=by, from_value=previous,
            to_value=RollbackState.BY_HAND, message=f"Rollback resolved by hand: {reason}",
        )  # fmt: skip
        status_move(upgrade=locked, transition=Transition.ROLL_BACK, by=by, reason=reason)
    locked.refresh_from_db()
    return Acted(locked, message="Rollback recorded as resolved by hand.")


# --- editing and trying again ------------------------------------------------------------------

EDITABLE_FIELDS = (
    "title", "description", "version_from", "version_to", "flag_key", "environment", "owner",
    "window_start", "window_minutes",
)  # fmt: skip


def upgrade_edit(*, upgrade: Upgrade, by: Any, changes: dict[str, Any]) -> Upgrade:
    """Change an upgrade's details until its deployment starts; each change on the timeline."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(f"“{sorted(unknown)[0]}” cannot be edited.", field=sorted(unknown)[0])
    with transaction.atomic():
        locked = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
        _verdict_or_refuse(locked, Action.EDIT, by)
        proposed = {name: changes.get(name, getattr(locked, name)) for name in EDITABLE_FIELDS}
        for name in ("title", "description", "version_from", "version_to", "flag_key"):
            proposed[name] = (proposed[name] or "").strip()
        validate_details(upgrade_type=locked.upgrade_type, **proposed)
        if locked.status == "scheduled" and proposed["window_start"] is None:
            raise InvalidInput(
                "A scheduled upgrade keeps its window start: move it back to draft to clear it.",
                field="window_start",
            )
        lines = []
        for name in EDITABLE_FIELDS:
            old, new = getattr(locked, name), proposed[name]
            if old != new:
                lines.append(f"{name.replace('_', ' ')}: {_shown(old)} → {_shown(new)}")
                setattr(locked, name, new)
        if not lines:
            return locked
        if locked.upgrade_type != UpgradeType.FEATURE_FLAG:
            locked.rollback_target = locked.version_from
        locked.save()
        _event(locked, kind=EventKind.UPDATED, by=by, message="; ".join(lines))
    return locked


def _shown(value: Any) -> str:
    if value in (None, ""):
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return str(value)


def upgrade_clone(*, upgrade: Upgrade, by: Any) -> Upgrade:
    """Try an ended upgrade again: a new draft with the same details, linked both ways."""
    clone = upgrade_create(
        upgrade_type=upgrade.upgrade_type, emergency_kind=upgrade.emergency_kind,
        title=upgrade.title, description=upgrade.description, environment=upgrade.environment,
        owner=by, by=by,
        version_from=upgrade.version_from, version_to=upgrade.version_to,
        flag_key=upgrade.flag_key, risk=upgrade.risk,
    )  # fmt: skip
    with transaction.atomic():
        Upgrade.objects.filter(pk=clone.pk).update(cloned_from=upgrade)
        clone.cloned_from = upgrade
        _event(
            upgrade, kind=EventKind.CLONED, by=by, to_value=str(clone.pk),
            message=f"Tried again as upgrade #{clone.pk}.",
        )  # fmt: skip
        _event(
            clone, kind=EventKind.CLONED, by=by, from_value=str(upgrade.pk),
            message=f"A new try of upgrade #{upgrade.pk} ({upgrade.get_status_display().lower()}).",
        )  # fmt: skip
    return clone


__all__ = [
    "Acted",
    "ChecklistStep",
    "Refused",
    "read_running_version",
    "upgrade_act",
    "upgrade_clone",
    "upgrade_edit",
    "upgrade_verdicts",
]
