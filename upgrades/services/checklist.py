"""Writes that span rows: creating upgrades from the playbook, moving them, ticking their steps.

Views, commands and tasks all call these; each state change writes its timeline event in the same
transaction. Refusals raise UpgradeError subclasses that carry the HTTP status to answer with.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from flags import services as flag_services
from mycelia_ops import errors
from upgrades import reactions, versions
from upgrades.models import (
    TRANSITIONS_NEEDING_REASON,
    TYPE_PROFILES,
    ApprovalDecision,
    ApprovalState,
    ChecklistStep,
    CheckRun,
    EmergencyKind,
    Environment,
    EventKind,
    PhaseStage,
    PlaybookTemplate,
    Risk,
    RunStatus,
    StepStatus,
    Transition,
    Upgrade,
    UpgradeEvent,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
)

logger = logging.getLogger(__name__)
ACTIVE_OR_CANCELLED = ("queued", "running", "cancelled")


# The product's error family (mycelia_ops.errors), by the names the upgrades app uses.
UpgradeError = errors.MyceliaError
InvalidInput = errors.BadInput
NotAllowed = errors.Forbidden
Conflict = errors.Conflict


def _event(
    *,
    upgrade: Upgrade,
    kind: str,
    by: Any,
    step: ChecklistStep | None = None,
    from_value: str = "",
    to_value: str = "",
    message: str = "",
) -> UpgradeEvent:
    return UpgradeEvent.objects.create(
        upgrade=upgrade,
        kind=kind,
        actor=by,
        step=step,
        from_value=from_value,
        to_value=to_value,
        message=message,
    )


# --- upgrades --------------------------------------------------------------------------------


def _validate_new_upgrade(
    *,
    upgrade_type: str,
    emergency_kind: str,
    title: str,
    risk: str | None,
    **details: Any,
) -> None:
    if upgrade_type not in UpgradeType.values:
        raise InvalidInput(f"Unknown upgrade type {upgrade_type!r}.", field="upgrade_type")
    if upgrade_type == UpgradeType.EMERGENCY and emergency_kind not in EmergencyKind.values:
        raise InvalidInput(
            "An emergency upgrade is either a security patch or a critical bug fix.",
            field="emergency_kind",
        )
    if upgrade_type != UpgradeType.EMERGENCY and emergency_kind:
        raise InvalidInput(
            "Only emergency upgrades have an emergency kind.", field="emergency_kind"
        )
    validate_details(upgrade_type=upgrade_type, title=title.strip(), **details)
    if risk:
        _validate_risk(upgrade_type=upgrade_type, risk=risk)


def validate_details(
    *, upgrade_type: str, title: str, version_from: str, version_to: str, flag_key: str,
    environment: Environment, window_start: datetime | None, window_minutes: int | None,
    **_: Any,
) -> None:  # fmt: skip
    """The rules every create and edit obeys, each refusal naming the field."""
    if not title:
        raise InvalidInput("Give the upgrade a title.", field="title")
    if len(title) > 200:
        raise InvalidInput("Keep the title under 200 characters.", field="title")
    problem, field = versions.problem(
        upgrade_type=upgrade_type, version_from=version_from, version_to=version_to
    )
    if problem:
        raise InvalidInput(problem, field=field)
    if upgrade_type == UpgradeType.FEATURE_FLAG:
        if not flag_key:
            raise InvalidInput("A feature flag upgrade names its feature flag.", field="flag_key")
        missing = flag_services.flag_availability(
            flag_key=flag_key, environment_key=environment.slug
        )
        if missing:
            raise InvalidInput(missing, field="flag_key")
    if window_minutes is not None and not 1 <= window_minutes <= 60 * 24 * 14:
        raise InvalidInput(
            "The expected duration is between 1 minute and 14 days.", field="window_minutes"
        )
    if window_minutes and not window_start:
        raise InvalidInput("A duration needs a window start.", field="window_start")
    if window_start is not None and not 2000 <= window_start.year <= 2100:
        raise InvalidInput("The window start must be between 2000 and 2100.", field="window_start")


def _validate_risk(*, upgrade_type: str, risk: str) -> None:
    if risk not in Risk.values:
        raise InvalidInput(f"Unknown risk {risk!r}.", field="risk")
    floor = TYPE_PROFILES[upgrade_type]["risk"]
    if Risk.rank(risk) < Risk.rank(floor):
        raise InvalidInput(
            f"The playbook rates this type {Risk(floor).label}; risk can be raised, not lowered.",
            field="risk",
        )


def upgrade_create(
    *,
    upgrade_type: str,
    title: str,
    environment: Environment,
    owner: Any,
    by: Any,
    emergency_kind: str = "",
    version_from: str = "",
    version_to: str = "",
    flag_key: str = "",
    risk: str | None = None,
    window_start: datetime | None = None,
    window_minutes: int | None = None,
    description: str = "",
) -> Upgrade:
    """Create an upgrade and copy its type's playbook template into its own checklist, so later
    template edits never rewrite its history."""
    _validate_new_upgrade(
        upgrade_type=upgrade_type,
        emergency_kind=emergency_kind,
        title=title,
        risk=risk,
        version_from=version_from.strip(),
        version_to=version_to.strip(),
        flag_key=flag_key.strip(),
        environment=environment,
        window_start=window_start,
        window_minutes=window_minutes,
    )
    template = (
        PlaybookTemplate.objects.filter(upgrade_type=upgrade_type, emergency_kind=emergency_kind)
        .prefetch_related("phases__steps")
        .first()
    )
    if template is None:
        raise Conflict(
            f"No playbook template exists for {UpgradeType(upgrade_type).label.lower()} upgrades "
            "yet: an administrator loads the playbook's templates under Set-up → Playbooks "
            "(or adds one there)."
        )
    profile = TYPE_PROFILES[upgrade_type]
    approval = (
        ApprovalState.PENDING
        if upgrade_type in (UpgradeType.MAJOR, UpgradeType.EMERGENCY)
        else ApprovalState.NOT_REQUIRED
    )
    with transaction.atomic():
        upgrade = Upgrade.objects.create(
            upgrade_type=upgrade_type,
            emergency_kind=emergency_kind,
            title=title.strip(),
            description=description.strip(),
            version_from=version_from.strip(),
            version_to=version_to.strip(),
            flag_key=flag_key.strip(),
            environment=environment,
            owner=owner,
            risk=risk or profile["risk"],
            rollback_method=profile["rollback"],
            window_start=window_start,
            window_minutes=window_minutes,
            approval=approval,
            template=template,
            # What a rollback goes back to: the version running now, or the flag turned off.
            rollback_target="off"
            if upgrade_type == UpgradeType.FEATURE_FLAG
            else version_from.strip(),
        )
        steps: list[ChecklistStep] = []
        for template_phase in template.phases.all():
            phase = UpgradePhase.objects.create(
                upgrade=upgrade,
                order=template_phase.order,
                title=template_phase.title,
                stage=template_phase.stage,
            )
            steps.extend(
                ChecklistStep(
                    upgrade=upgrade,
                    phase=phase,
                    order=template_step.order,
                    section=template_step.section,
                    title=template_step.title,
                    description=template_step.description,
                    commands=template_step.commands,
                    kind=template_step.kind,
                    operation=template_step.operation,
                    check_config=template_step.check_config,
                    required=template_step.required,
                )
                for template_step in template_phase.steps.all()
            )
        ChecklistStep.objects.bulk_create(steps)
        _event(
            upgrade=upgrade,
            kind=EventKind.CREATED,
            by=by,
            to_value=UpgradeStatus.DRAFT,
            message=f"{upgrade.type_label} upgrade created from “{template.name}” "
            f"with {len(steps)} steps.",
        )
    return upgrade


def _locked(upgrade: Upgrade) -> Upgrade:
    return Upgrade.objects.select_for_update().get(pk=upgrade.pk)


def open_required_steps(upgrade: Upgrade, *, stages: set[str]) -> list[ChecklistStep]:
    return list(
        ChecklistStep.objects.filter(
            upgrade=upgrade, phase__stage__in=stages, required=True, status=StepStatus.OPEN
        ).select_related("phase")
    )


def _describe_open(steps: list[ChecklistStep]) -> str:
    names = ", ".join(f"“{s.title}”" for s in steps[:3])
    more = f" and {len(steps) - 3} more" if len(steps) > 3 else ""
    return f"{names}{more}"


def status_move(
    *,
    upgrade: Upgrade,
    transition: str,
    by: Any,
    reason: str = "",
    override_reason: str = "",
) -> Upgrade:
    """Move an upgrade's status, enforcing the playbook's gates. Callers ask the lifecycle
    table first (services.lifecycle.upgrade_act); this is the move itself.

    Starting the deployment needs every required pre-upgrade step done or skipped, and no step
    accepted despite a failed check, unless a release manager overrides the gate with a written
    reason (`override_reason`).
    """
    if transition not in Transition.values:
        raise InvalidInput(f"Unknown action {transition!r}.")
    reason = reason.strip()
    override_reason = override_reason.strip()
    if transition in TRANSITIONS_NEEDING_REASON and not reason:
        raise InvalidInput(
            f"“{Transition(transition).label}” needs a reason for the timeline.", field="reason"
        )
    with transaction.atomic():
        upgrade = _locked(upgrade)
        target = upgrade.transition_target(transition)
        if target is None:
            raise Conflict(
                f"An upgrade that is {upgrade.get_status_display().lower()} cannot "
                f"“{Transition(transition).label.lower()}”."
            )
        if transition == Transition.SCHEDULE and not upgrade.window_start:
            raise Conflict("Set a maintenance window start before scheduling.")
        if transition == Transition.START:
            blocked = upgrade.approval_blocks_start()
            if blocked:
                raise Conflict(blocked)
            still_open = (
                open_required_steps(upgrade, stages={PhaseStage.PRE})
                if upgrade.has_deployment_gate
                else []
            )
            accepted = (
                list(
                    ChecklistStep.objects.filter(
                        upgrade=upgrade, phase__stage=PhaseStage.PRE, status=StepStatus.DONE
                    ).exclude(override_reason="")
                )
                if upgrade.has_deployment_gate
                else []
            )
            if accepted and not override_reason:
                raise Conflict(
                    f"{len(accepted)} pre-upgrade step(s) were accepted despite a failed check: "
                    f"{_describe_open(accepted)}. Starting needs a written override reason."
                )
            if still_open and not override_reason:
                raise Conflict(
                    f"{len(still_open)} required pre-upgrade step(s) are still open: "
                    f"{_describe_open(still_open)}. Finish or skip them, or override the gate "
                    "with a written reason."
                )
            still_open = still_open + accepted
            if still_open:
                upgrade.gate_override_reason = override_reason
                _event(
                    upgrade=upgrade,
                    kind=EventKind.GATE_OVERRIDDEN,
                    by=by,
                    from_value=f"{len(still_open)} open",
                    to_value="overridden",
                    message=f"Deployment gate overridden with {len(still_open)} required step(s) "
                    f"open ({_describe_open(still_open)}). Reason: {override_reason}",
                )
        if transition == Transition.COMPLETE:
            still_open = open_required_steps(
                upgrade, stages={PhaseStage.PRE, PhaseStage.DEPLOY, PhaseStage.POST}
            )
            if still_open:
                raise Conflict(
                    f"{len(still_open)} required step(s) are still open: "
                    f"{_describe_open(still_open)}. Completion needs every required step done "
                    "or skipped."
                )
        previous = upgrade.status
        upgrade.status = target
        now = timezone.now()
        if transition == Transition.START:
            upgrade.started_at = now
        if upgrade.is_finished:
            upgrade.finished_at = now
        upgrade.save()
        _event(
            upgrade=upgrade,
            kind=EventKind.TRANSITION,
            by=by,
            from_value=previous,
            to_value=target,
            message=reason,
        )
    return upgrade


def upgrade_decide(*, upgrade: Upgrade, by: Any, decision: str, reason: str) -> Upgrade:
    """Record a go/no-go decision. Four eyes: never by the upgrade's own owner."""
    if decision not in (ApprovalState.GO, ApprovalState.NO_GO):
        raise InvalidInput("The decision is either go or no-go.", field="decision")
    if not reason.strip():
        raise InvalidInput("A go/no-go decision needs its reason.", field="reason")
    with transaction.atomic():
        upgrade = _locked(upgrade)
        if upgrade.approval == ApprovalState.NOT_REQUIRED:
            raise Conflict(f"A {upgrade.type_label.lower()} upgrade needs no go/no-go approval.")
        if upgrade.is_finished and upgrade.upgrade_type != UpgradeType.EMERGENCY:
            raise Conflict("This upgrade is finished; its approval can no longer change.")
        if by.pk == upgrade.owner_id:
            raise NotAllowed(
                "Four eyes: the go/no-go decision must come from a release manager other than "
                "the upgrade's owner."
            )
        previous = upgrade.approval
        upgrade.approval = decision
        upgrade.save(update_fields=["approval", "updated_at"])
        ApprovalDecision.objects.create(
            upgrade=upgrade, decided_by=by, decision=decision, reason=reason.strip()
        )
        _event(
            upgrade=upgrade,
            kind=EventKind.APPROVAL,
            by=by,
            from_value=previous,
            to_value=decision,
            message=reason.strip(),
        )
    return upgrade


def upgrade_set_risk(*, upgrade: Upgrade, risk: str, by: Any, reason: str) -> Upgrade:
    if not reason.strip():
        raise InvalidInput("Say why the risk changes.", field="reason")
    _validate_risk(upgrade_type=upgrade.upgrade_type, risk=risk)
    with transaction.atomic():
        upgrade = _locked(upgrade)
        if upgrade.is_finished:
            raise Conflict("This upgrade is finished; its risk can no longer change.")
        if upgrade.risk == risk:
            return upgrade
        previous = upgrade.risk
        upgrade.risk = risk
        upgrade.save(update_fields=["risk", "updated_at"])
        _event(
            upgrade=upgrade,
            kind=EventKind.RISK_CHANGED,
            by=by,
            from_value=previous,
            to_value=risk,
            message=reason.strip(),
        )
    return upgrade


# --- checklist steps -------------------------------------------------------------------------


def _locked_step(step: ChecklistStep) -> tuple[Upgrade, ChecklistStep]:
    """Lock the upgrade, then the step: every writer takes them in this order, so two managers
    ticking at once queue up instead of overwriting each other."""
    upgrade = Upgrade.objects.select_for_update().get(pk=step.upgrade_id)
    if not upgrade.can_change_checklist():
        raise Conflict(
            f"The upgrade is {upgrade.get_status_display().lower()}: its checklist is closed."
        )
    step = ChecklistStep.objects.select_for_update().select_related("phase").get(pk=step.pk)
    return upgrade, step


def _check_stage_reached(upgrade: Upgrade, step: ChecklistStep) -> None:
    refusal = upgrade.stage_refusal(step.phase.stage)
    if refusal:
        raise Conflict(f"“{step.title}”: {refusal}")


def last_check_failure(step: ChecklistStep) -> str:
    """The reason the step's latest automated check did not pass; "" when it passed or never
    ran."""
    last = CheckRun.objects.filter(step=step).exclude(status__in=ACTIVE_OR_CANCELLED).first()
    if last is None or last.status == RunStatus.PASSED:
        return ""
    return (
        f"{last.get_status_display()}: {last.reason}" if last.reason else last.get_status_display()
    )


def _step_move(
    step: ChecklistStep, *, to: str, by: Any, kind: str, message: str, **change: Any
) -> tuple[ChecklistStep, bool]:
    """One move of a step, for ticking, reopening and skipping alike: lock, move (a move to
    where it already is changes nothing), record the event, tell the status page."""
    with transaction.atomic():
        upgrade, step = _locked_step(step)
        if step.status == to:
            return step, False
        if to != StepStatus.OPEN:
            _check_stage_reached(upgrade, step)
        if to == StepStatus.DONE and change.get("run") is None:
            failure = last_check_failure(step)
            if failure and not change.get("override_reason"):
                raise Conflict(
                    f"The latest check of “{step.title}” failed ({failure}). Give a reason to "
                    "accept it despite the failed check."
                )
            if not failure:
                change["override_reason"] = ""
            elif change.get("override_reason"):
                message = (
                    f"Accepted despite a failed check ({failure}): {change['override_reason']}"
                )
        previous = step.move_to(to, by=by, **change)
        step.save()
        _event(upgrade=upgrade, kind=kind, by=by, step=step, from_value=previous, to_value=to,
               message=message)  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)
    return step, True


def step_complete(
    *, step: ChecklistStep, by: Any, note: str = "", run: Any = None, override_reason: str = ""
) -> tuple[ChecklistStep, bool]:
    """Tick a step, by a person or by the check run that passed (`run`, with `by` None).
    A step whose latest check failed is ticked only with `override_reason` ("accepted despite a
    failed check"). Ticking a step someone else has just ticked changes nothing.
    Returns the step and whether anything changed."""
    return _step_move(
        step, to=StepStatus.DONE, by=by, kind=EventKind.STEP_DONE, message=note.strip(),
        run=run, note=note.strip(), override_reason=override_reason.strip(),
    )  # fmt: skip


def step_reopen(*, step: ChecklistStep, by: Any, reason: str) -> tuple[ChecklistStep, bool]:
    if not reason.strip():
        raise InvalidInput("Unticking a step needs a reason.", field="reason")
    return _step_move(
        step, to=StepStatus.OPEN, by=by, kind=EventKind.STEP_REOPENED, message=reason.strip()
    )


def step_skip(*, step: ChecklistStep, by: Any, reason: str) -> tuple[ChecklistStep, bool]:
    if not reason.strip():
        raise InvalidInput("Skipping a step (“not doing”) needs a reason.", field="reason")
    return _step_move(
        step, to=StepStatus.SKIPPED, by=by, kind=EventKind.STEP_SKIPPED, message=reason.strip(),
        skip_reason=reason.strip(),
    )  # fmt: skip


def phase_skip(*, phase: UpgradePhase, by: Any, reason: str) -> int:
    """Mark every open step of a phase "not doing" with one reason; returns how many."""
    if not reason.strip():
        raise InvalidInput("Marking a phase “not doing” needs a reason.", field="reason")
    skipped = 0
    with transaction.atomic():
        for step in phase.steps.filter(status=StepStatus.OPEN).order_by("order"):
            _, changed = step_skip(step=step, by=by, reason=reason)
            skipped += changed
    if not skipped:
        raise Conflict(f"“{phase.title}” has no open step left.")
    return skipped


def step_update(
    *,
    step: ChecklistStep,
    by: Any,
    assignee: Any | None,
    due_at: datetime | None,
    evidence_url: str,
    note: str,
) -> tuple[ChecklistStep, bool]:
    """Change a step's assignee, due time and evidence; the timeline says what changed."""
    with transaction.atomic():
        upgrade, step = _locked_step(step)
        changes: list[str] = []
        new_values = {
            "assignee": assignee,
            "due_at": due_at,
            "evidence_url": evidence_url.strip(),
            "note": note.strip(),
        }
        for name, value in new_values.items():
            old = getattr(step, name)
            if old != value:
                changes.append(f"{name.replace('_', ' ')}: {_shown(old)} → {_shown(value)}")
                setattr(step, name, value)
        if not changes:
            return step, False
        step.save()
        _event(
            upgrade=upgrade,
            kind=EventKind.STEP_UPDATED,
            by=by,
            step=step,
            message="; ".join(changes),
        )
    return step, True


def _shown(value: Any) -> str:
    if value in (None, ""):
        return "—"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return str(value)
