"""Upgrades as records: creation from the playbook, the lifecycle, its gates and refusals."""

from __future__ import annotations

import pytest

from tests.conftest import drive, mark_deployed
from upgrades import services
from upgrades.models import (
    ApprovalState,
    ChecklistStep,
    EventKind,
    PhaseStage,
    PlaybookStep,
    Risk,
    StepStatus,
    UpgradeEvent,
    UpgradeStatus,
)


def _close_pre_upgrade_steps(upgrade, by):
    for step in upgrade.steps.filter(phase__stage=PhaseStage.PRE, required=True):
        services.step_complete(step=step, by=by)


def _close_all_required_steps(upgrade, by):
    for step in upgrade.steps.filter(required=True):
        services.step_complete(step=step, by=by)


def test_upgrade_create__minor__copies_template_with_type_risk_and_rollback(make_upgrade):
    upgrade = make_upgrade("minor")
    template_steps = PlaybookStep.objects.filter(phase__template=upgrade.template).count()
    assert upgrade.steps.count() == template_steps > 40
    assert upgrade.risk == Risk.LOW_MEDIUM
    assert upgrade.get_rollback_method_display() == "Previous version deployment"
    assert upgrade.status == UpgradeStatus.DRAFT
    created = UpgradeEvent.objects.get(upgrade=upgrade)
    assert created.kind == EventKind.CREATED and created.actor == upgrade.owner


def test_upgrade_create__template_edited_later__leaves_existing_checklist_alone(make_upgrade):
    upgrade = make_upgrade("minor")
    PlaybookStep.objects.filter(phase__template=upgrade.template).update(title="Rewritten")
    assert not upgrade.steps.filter(title="Rewritten").exists()
    assert upgrade.steps.filter(title="Run diagnostics").exists()


@pytest.mark.parametrize(
    ("upgrade_type", "kwargs", "field"),
    [
        ("feature_flag", {"flag_key": ""}, "flag_key"),
        ("emergency", {"emergency_kind": ""}, "emergency_kind"),
        ("minor", {"version_to": ""}, "version_to"),
        ("minor", {"risk": Risk.LOW}, "risk"),
        ("minor", {"title": "  "}, "title"),
        ("rocket", {}, "upgrade_type"),
    ],
)
def test_upgrade_create__bad_input__is_refused_naming_the_field(
    make_upgrade, upgrade_type, kwargs, field
):
    with pytest.raises(services.InvalidInput) as refusal:
        make_upgrade(upgrade_type, **kwargs)
    assert refusal.value.field == field
    assert refusal.value.status == 400


def test_upgrade_create__risk_raised_above_type_default__is_kept(make_upgrade):
    assert make_upgrade("feature_flag", risk=Risk.HIGH).risk == Risk.HIGH


def test_upgrade_set_risk__lowered_below_playbook__is_refused(make_upgrade, manager):
    upgrade = make_upgrade("major")
    with pytest.raises(services.InvalidInput):
        services.upgrade_set_risk(upgrade=upgrade, risk=Risk.LOW, by=manager, reason="feels safe")
    services.upgrade_set_risk(upgrade=upgrade, risk=Risk.CRITICAL, by=manager, reason="payments")
    event = upgrade.events.get(kind=EventKind.RISK_CHANGED)
    assert (event.from_value, event.to_value) == (Risk.HIGH, Risk.CRITICAL)


def test_start__required_pre_upgrade_step_open__is_refused_naming_the_steps(make_upgrade, manager):
    upgrade = make_upgrade("minor")
    with pytest.raises(services.Conflict) as refusal:
        services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)
    assert "Run diagnostics" in refusal.value.message
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.DRAFT


def test_start__gate_overridden_with_reason__starts_and_timeline_shows_override(
    make_upgrade, manager
):
    upgrade = make_upgrade("minor")
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="staging proved it"
    )
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    override = upgrade.events.get(kind=EventKind.GATE_OVERRIDDEN)
    assert "staging proved it" in override.message and override.actor == manager
    assert upgrade.gate_override_reason == "staging proved it"


def test_start__all_pre_upgrade_steps_closed__starts_without_override(make_upgrade, manager):
    upgrade = make_upgrade("minor")
    _close_pre_upgrade_steps(upgrade, manager)
    upgrade = services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.started_at is not None
    assert not upgrade.events.filter(kind=EventKind.GATE_OVERRIDDEN).exists()


def test_start__skipped_step_with_reason__counts_as_closed(make_upgrade, manager):
    upgrade = make_upgrade("feature_flag")
    pre = list(upgrade.steps.filter(phase__stage=PhaseStage.PRE, required=True))
    for step in pre[:-1]:
        services.step_complete(step=step, by=manager)
    services.step_skip(step=pre[-1], by=manager, reason="no stakeholders this time")
    services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)


def test_major__start_without_go__is_refused_then_other_manager_go_allows_it(
    make_upgrade, manager, second_manager
):
    upgrade = make_upgrade("major", version_from="1.9.0", version_to="2.0.0")
    _close_pre_upgrade_steps(upgrade, manager)
    assert upgrade.approval == ApprovalState.PENDING
    with pytest.raises(services.Conflict, match="needs a go from a release manager other"):
        services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)
    with pytest.raises(services.NotAllowed, match="Four eyes"):
        services.upgrade_decide(upgrade=upgrade, by=manager, decision="go", reason="mine")
    services.upgrade_decide(upgrade=upgrade, by=second_manager, decision="go", reason="plan ok")
    upgrade = services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    decision = upgrade.events.get(kind=EventKind.APPROVAL)
    assert decision.actor == second_manager and decision.to_value == "go"


def test_major__no_go__blocks_start(make_upgrade, manager, second_manager):
    upgrade = make_upgrade("major", version_to="2.0.0")
    services.upgrade_decide(upgrade=upgrade, by=second_manager, decision="no_go", reason="risky")
    with pytest.raises(services.Conflict, match="no-go"):
        services.upgrade_transition(
            upgrade=upgrade, transition="start", by=manager, override_reason="anyway"
        )


def test_emergency__starts_at_once_and_approval_stays_pending_until_given(
    make_upgrade, manager, second_manager
):
    upgrade = make_upgrade("emergency")
    upgrade = services.upgrade_transition(upgrade=upgrade, transition="start", by=manager)
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.approval == ApprovalState.PENDING
    services.upgrade_decide(upgrade=upgrade, by=second_manager, decision="go", reason="patched")
    upgrade.refresh_from_db()
    assert upgrade.approval == ApprovalState.GO


def test_decide__minor_upgrade__needs_no_approval(make_upgrade, second_manager):
    with pytest.raises(services.Conflict):
        services.upgrade_decide(
            upgrade=make_upgrade("minor"), by=second_manager, decision="go", reason="x"
        )


def test_complete__required_step_open__is_refused(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    services.upgrade_act(upgrade=upgrade, action="end_monitoring", by=manager, reason="calm")
    with pytest.raises(services.Conflict, match="completion needs every required step"):
        services.upgrade_act(upgrade=upgrade, action="complete", by=manager)


def test_lifecycle__minor_upgrade__walks_draft_to_completed_and_records_each_move(
    make_upgrade, manager
):
    upgrade = drive(make_upgrade("minor"), manager, to="scheduled")
    upgrade = drive(upgrade, manager, to="completed")
    assert upgrade.status == UpgradeStatus.COMPLETED and upgrade.finished_at
    moves = list(
        upgrade.events.filter(kind=EventKind.TRANSITION)
        .order_by("at", "id")
        .values_list("from_value", "to_value")
    )
    assert moves == [
        ("draft", "scheduled"),
        ("scheduled", "in_progress"),
        ("in_progress", "monitoring"),
        ("monitoring", "completed"),
    ]


@pytest.mark.parametrize(
    ("status", "transition"),
    [
        ("draft", "complete"),
        ("draft", "begin_monitoring"),
        ("draft", "roll_back"),
        ("in_progress", "schedule"),
        ("in_progress", "cancel"),
        ("completed", "start"),
        ("cancelled", "schedule"),
        ("rolled_back", "complete"),
        ("failed", "begin_monitoring"),
    ],
)
def test_transition__makes_no_sense_from_status__is_refused_with_message(
    make_upgrade, manager, status, transition
):
    upgrade = make_upgrade("minor")
    upgrade.status = status
    upgrade.save()
    with pytest.raises(services.Conflict) as refusal:
        services.upgrade_transition(upgrade=upgrade, transition=transition, by=manager, reason="r")
    assert refusal.value.message.endswith(".")
    assert transition not in refusal.value.allowed_actions
    upgrade.refresh_from_db()
    assert upgrade.status == status


def test_schedule__without_window__is_refused(make_upgrade, manager):
    with pytest.raises(services.Conflict, match="maintenance window"):
        services.upgrade_transition(
            upgrade=make_upgrade("minor"), transition="schedule", by=manager
        )


@pytest.mark.parametrize("transition", ["cancel"])
def test_transition__ending_without_reason__is_refused(make_upgrade, manager, transition):
    with pytest.raises(services.InvalidInput, match="needs a reason"):
        services.upgrade_transition(
            upgrade=make_upgrade("minor"), transition=transition, by=manager
        )


def test_roll_back__after_a_deploy__queues_the_previous_version_on_a_worker(make_upgrade, manager):
    upgrade = drive(make_upgrade("emergency"), manager, to="in_progress")
    mark_deployed(upgrade)
    acted = services.upgrade_act(
        upgrade=upgrade, action="roll_back", by=manager, reason="error rate doubled"
    )
    assert acted.run.action == "rollback_version" and acted.run.params == {"version": "1.4.2"}
    assert acted.upgrade.rollback_state == "running"
    assert acted.upgrade.status == UpgradeStatus.IN_PROGRESS  # until the worker says it worked


def test_mark_failed__closes_the_checklist_and_schedules_reviews(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    upgrade = services.upgrade_act(
        upgrade=upgrade, action="mark_failed", by=manager, reason="build broken"
    ).upgrade
    assert upgrade.status == UpgradeStatus.FAILED
    assert upgrade.reviews.count() == 3
    with pytest.raises(services.Conflict, match="checklist is closed"):
        services.step_complete(step=upgrade.steps.first(), by=manager)


def test_step_complete__twice__records_once(make_upgrade, manager, second_manager):
    step = make_upgrade("minor").steps.first()
    _, changed = services.step_complete(step=step, by=manager, note="all green")
    _, changed_again = services.step_complete(step=step, by=second_manager)
    assert (changed, changed_again) == (True, False)
    step.refresh_from_db()
    assert step.completed_by == manager and step.note == "all green"
    assert step.events.filter(kind=EventKind.STEP_DONE).count() == 1


def test_step_reopen__without_reason__is_refused_and_with_reason_records_from_and_to(
    make_upgrade, manager
):
    step = make_upgrade("minor").steps.first()
    services.step_complete(step=step, by=manager)
    with pytest.raises(services.InvalidInput, match="needs a reason"):
        services.step_reopen(step=step, by=manager, reason=" ")
    services.step_reopen(step=step, by=manager, reason="ran against the wrong host")
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN and step.completed_by is None
    event = step.events.get(kind=EventKind.STEP_REOPENED)
    assert (event.from_value, event.to_value, event.message) == (
        "done",
        "open",
        "ran against the wrong host",
    )


def test_step_skip__without_reason__is_refused(make_upgrade, manager):
    step = make_upgrade("minor").steps.first()
    with pytest.raises(services.InvalidInput, match="needs a reason"):
        services.step_skip(step=step, by=manager, reason="")
    assert ChecklistStep.objects.get(pk=step.pk).status == StepStatus.OPEN


def test_step_update__assignee_and_evidence__timeline_says_what_changed(
    make_upgrade, manager, second_manager
):
    step = make_upgrade("minor").steps.first()
    services.step_update(
        step=step,
        by=manager,
        assignee=second_manager,
        due_at=None,
        evidence_url="https://ci.example.com/run/1",
        note="",
    )
    event = step.events.get(kind=EventKind.STEP_UPDATED)
    assert "assignee: — → dave" in event.message
    assert "evidence url" in event.message


def test_timeline_event__once_written__cannot_be_rewritten(make_upgrade):
    event = make_upgrade("minor").events.first()
    event.message = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
