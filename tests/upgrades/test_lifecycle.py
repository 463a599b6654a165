"""The lifecycle in the playbook's words: what a new user ran into (issue 10), each refused with
the reason, and failures that always leave a next step."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import drive, mark_deployed, set_fault
from upgrades import services
from upgrades.models import (
    Action,
    EventKind,
    PhaseStage,
    RunStatus,
    StepStatus,
    UpgradeStatus,
    lifecycle,
)


def _allowed(upgrade, by) -> set[str]:
    return {a for a, v in services.upgrade_verdicts(upgrade=upgrade, by=by).items() if v.allowed}


# --- 1. Begin monitoring needs a deploy that succeeded -------------------------------------------


def test_begin_monitoring__nothing_deployed__is_not_offered_and_refused_with_the_reason(
    make_upgrade, manager
):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    assert "begin_monitoring" not in _allowed(upgrade, manager)
    assert "deploy" in _allowed(upgrade, manager)
    with pytest.raises(services.Refused, match="Nothing has been deployed yet") as refusal:
        services.upgrade_act(upgrade=upgrade, action="begin_monitoring", by=manager)
    assert "deploy" in refusal.value.allowed_actions
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS


def test_deployed_outside_the_panel__needs_a_reason_and_records_the_version_the_target_reports(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    upgrade = drive(make_upgrade("minor", environment=demo_environment), manager, to="in_progress")
    with pytest.raises(services.InvalidInput, match="needs a reason"):
        services.upgrade_act(upgrade=upgrade, action="deployed_outside", by=manager)
    upgrade = services.upgrade_act(
        upgrade=upgrade, action="deployed_outside", by=manager, reason="pipeline deployed it"
    ).upgrade
    assert upgrade.status == UpgradeStatus.MONITORING
    assert upgrade.deploy_state == "outside"
    running = httpx.get(f"{demo_mycelia.url}/health").json()["version"]
    assert upgrade.deployed_version == running
    said = upgrade.events.get(kind=EventKind.DEPLOYMENT).message
    assert "pipeline deployed it" in said and running in said


# --- 2. A failed check is accepted only with a written reason, and counted at the gate ----------


def test_step_whose_check_failed__done_without_reason__is_refused(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    upgrade = make_upgrade("minor", environment=demo_environment)
    set_fault(demo_mycelia, "error_rate_high")
    step = upgrade.steps.get(phase__order=1, title="Check SLO status")
    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    with pytest.raises(services.Conflict, match="failed"):
        services.step_complete(step=step, by=manager)
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN

    services.step_complete(step=step, by=manager, override_reason="known noisy metric")
    step.refresh_from_db()
    assert step.accepted_despite_failure and step.override_reason == "known noisy metric"
    event = step.events.get(kind=EventKind.STEP_DONE)
    assert "Accepted despite a failed check" in event.message


def test_gate__step_accepted_despite_failed_check__counts_as_an_override(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    upgrade = make_upgrade("minor", environment=demo_environment)
    set_fault(demo_mycelia, "error_rate_high")
    step = upgrade.steps.get(phase__order=1, title="Check SLO status")
    services.check_run_execute(
        run_id=services.check_run_request(upgrade=upgrade, step=step, by=manager).pk
    )
    services.step_complete(step=step, by=manager, override_reason="known noisy metric")
    for other in upgrade.steps.filter(phase__stage=PhaseStage.PRE, status=StepStatus.OPEN):
        services.step_complete(step=other, by=manager)
    with pytest.raises(services.Conflict, match="accepted despite a failed check"):
        services.upgrade_act(upgrade=upgrade, action="start", by=manager)
    upgrade = services.upgrade_act(
        upgrade=upgrade, action="start", by=manager, override_reason="SLO dashboard is wrong"
    ).upgrade
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.events.filter(kind=EventKind.GATE_OVERRIDDEN).exists()


# --- 4. A failed emergency deploy is guided, never a dead end -----------------------------------


def test_emergency_deploy_fails__stays_in_progress_offering_retry_or_mark_failed(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    # Given an emergency fix with no recorded previous version, whose deploy fails
    upgrade = make_upgrade(
        "emergency", environment=demo_environment, version_from="", version_to="1.4.3"
    )
    upgrade = drive(upgrade, manager, to="in_progress")
    set_fault(demo_mycelia, "deploy_fails")
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=run.pk)
    upgrade.refresh_from_db()
    # Then the upgrade stays in progress with retry and mark failed offered
    assert upgrade.status == UpgradeStatus.IN_PROGRESS and upgrade.deploy_state == "failed"
    allowed = _allowed(upgrade, manager)
    assert {"retry", "mark_failed"} <= allowed
    # and no rollback to a version nobody recorded
    verdict = services.upgrade_verdicts(upgrade=upgrade, by=manager)["roll_back"]
    assert not verdict.allowed and "no recorded previous version" in verdict.why
    # When the fault is fixed and the deploy retried, it passes
    set_fault(demo_mycelia, "deploy_fails", on=False)
    retry = services.upgrade_act(upgrade=upgrade, action="retry", by=manager).run
    services.check_run_execute(run_id=retry.pk)
    upgrade.refresh_from_db()
    assert upgrade.deploy_state == "passed" and upgrade.deployed_version == "1.4.3"


def test_mark_failed__schedules_reviews_and_approval_can_still_be_given(
    make_upgrade, manager, second_manager
):
    upgrade = drive(make_upgrade("emergency"), manager, to="in_progress")
    upgrade = services.upgrade_act(
        upgrade=upgrade, action="mark_failed", by=manager, reason="patch did not apply"
    ).upgrade
    assert upgrade.status == UpgradeStatus.FAILED and upgrade.reviews.count() == 3
    services.upgrade_act(
        upgrade=upgrade, action="approve", by=second_manager, decision="go", reason="was right"
    )
    upgrade.refresh_from_db()
    assert upgrade.approval == "go"


def test_ended_upgrade__tried_again__as_a_new_draft_linked_both_ways(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    services.upgrade_act(upgrade=upgrade, action="mark_failed", by=manager, reason="x")
    clone = services.upgrade_act(upgrade=upgrade, action="clone", by=manager).upgrade
    assert clone.status == UpgradeStatus.DRAFT and clone.cloned_from_id == upgrade.pk
    assert list(upgrade.clones.all()) == [clone]
    assert (clone.version_from, clone.version_to) == (upgrade.version_from, upgrade.version_to)
    assert upgrade.events.filter(kind=EventKind.CLONED).exists()


# --- 5. Stages, and a monitoring window that must end ----------------------------------------------


@pytest.mark.parametrize("stage", [PhaseStage.DEPLOY, PhaseStage.POST])
def test_draft__later_stage_steps__cannot_be_done_skipped_or_run(make_upgrade, manager, stage):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.filter(phase__stage=stage).first()
    with pytest.raises(services.Conflict, match="wait until"):
        services.step_complete(step=step, by=manager)
    with pytest.raises(services.Conflict, match="wait until"):
        services.step_skip(step=step, by=manager, reason="not needed")
    automated = upgrade.steps.filter(phase__stage=stage, kind="http_health").first()
    if automated:
        with pytest.raises(services.Conflict, match="wait until"):
            services.check_run_request(upgrade=upgrade, step=automated, by=manager)


def test_complete__one_minute_into_the_window__is_refused_until_ended_early_with_reason(
    make_upgrade, manager
):
    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    from tests.conftest import close_steps

    close_steps(upgrade, manager, stages=("post",))
    with pytest.raises(services.Refused, match="monitoring window is still open"):
        services.upgrade_act(upgrade=upgrade, action="complete", by=manager)
    with pytest.raises(services.InvalidInput, match="needs a reason"):
        services.upgrade_act(upgrade=upgrade, action="end_monitoring", by=manager)
    services.upgrade_act(upgrade=upgrade, action="end_monitoring", by=manager, reason="calm")
    upgrade = services.upgrade_act(upgrade=upgrade, action="complete", by=manager).upgrade
    assert upgrade.status == UpgradeStatus.COMPLETED
    # A closed window offers nothing more
    allowed = _allowed(upgrade, manager)
    assert not allowed & {"extend_monitoring", "end_monitoring", "complete"}


def test_complete__window_ran_its_course__is_allowed(make_upgrade, manager):
    from django.utils import timezone

    from upgrades.models import MonitoringWindow

    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    from tests.conftest import close_steps

    close_steps(upgrade, manager, stages=("post",))
    MonitoringWindow.objects.filter(upgrade=upgrade).update(ends_at=timezone.now())
    assert "complete" in _allowed(upgrade, manager)


# --- 6. Versions and flags are checked ------------------------------------------------------------


@pytest.mark.parametrize(
    ("upgrade_type", "version_from", "version_to", "says"),
    [
        ("minor", "1.5.0", "1.4.0", "does not go up"),
        ("minor", "1.4.2", "2.0.0", "major upgrade"),
        ("major", "1.4.2", "1.4.3", "keeps the major number"),
        ("minor", "1.4.2", "banana", "not a version"),
        ("major", "banana", "2.0.0", "not a version"),
        ("emergency", "1.4.3", "1.4.2", "does not go up"),
    ],
)
def test_create__versions_that_do_not_fit_the_type__are_refused_naming_both(
    make_upgrade, upgrade_type, version_from, version_to, says
):
    with pytest.raises(services.InvalidInput, match=says):
        make_upgrade(upgrade_type, version_from=version_from, version_to=version_to)


def test_create__flag_that_does_not_exist__is_refused(playbook, staging, manager):
    with pytest.raises(services.InvalidInput, match="no feature flag “ghost”") as refusal:
        services.upgrade_create(
            upgrade_type="feature_flag", title="Ghost", environment=staging, owner=manager,
            by=manager, flag_key="ghost",
        )  # fmt: skip
    assert refusal.value.field == "flag_key"


def test_edit__before_the_deployment__changes_details_and_records_from_and_to(
    make_upgrade, manager
):
    from django.utils import timezone

    upgrade = make_upgrade("minor")
    start = timezone.now()
    upgrade = services.upgrade_edit(
        upgrade=upgrade, by=manager, changes={"version_to": "1.6.0", "window_start": start}
    )
    assert upgrade.version_to == "1.6.0"
    said = upgrade.events.get(kind=EventKind.UPDATED).message
    assert "version to: 1.5.0 → 1.6.0" in said
    upgrade = services.upgrade_act(upgrade=upgrade, action="schedule", by=manager).upgrade
    assert upgrade.status == UpgradeStatus.SCHEDULED


def test_edit__after_the_deployment_started__is_refused(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    with pytest.raises(services.Refused, match="until the deployment starts"):
        services.upgrade_edit(upgrade=upgrade, by=manager, changes={"title": "New"})


# --- 7. What a deploy ticks, what a health step checks, what reopening keeps ----------------------


def test_flag_deploy__ticks_enable_feature_flag_attributed_to_the_run(flag_upgrade, manager):
    upgrade = drive(flag_upgrade, manager, to="in_progress")
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=run.pk)
    step = upgrade.steps.get(title="Enable feature flag")
    assert step.status == StepStatus.DONE and step.evidence_run_id == run.pk


def test_monitor_system_health__target_answers_503__fails(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    upgrade = make_upgrade("minor", environment=demo_environment)
    upgrade.status = UpgradeStatus.IN_PROGRESS
    upgrade.save()
    mark_deployed(upgrade)
    set_fault(demo_mycelia, "health_failing")
    step = upgrade.steps.get(title="Monitor system health")
    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "503" in run.reason


def test_reopen__drops_the_old_note_which_stays_on_the_timeline(make_upgrade, manager):
    step = make_upgrade("minor").steps.filter(phase__stage=PhaseStage.PRE).first()
    services.step_complete(step=step, by=manager, note="Posted in #releases")
    services.step_reopen(step=step, by=manager, reason="wrong channel")
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN and step.note == ""
    assert step.events.filter(message="Posted in #releases").exists()


def test_phase_not_doing__one_reason_closes_every_open_step(make_upgrade, manager):
    upgrade = make_upgrade("minor")
    phase = upgrade.phases.get(order=1)
    skipped = services.phase_skip(phase=phase, by=manager, reason="covered by the release train")
    assert skipped == phase.steps.count()
    assert set(phase.steps.values_list("status", flat=True)) == {StepStatus.SKIPPED}


# --- the table itself ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(lifecycle.STATE_LABELS))
def test_table__every_action_in_every_state__allowed_or_refused_with_a_sentence(status):
    facts = lifecycle.Facts(status=status, upgrade_type="minor", has_window_start=True)
    for action in Action.values:
        verdict = lifecycle.verdict(action, facts)
        if not verdict.allowed:
            assert verdict.why.endswith((".", ")")) and len(verdict.why) > 20, (action, status)


def test_table__freeze__refuses_a_minor_and_asks_an_emergency_for_a_reason():
    minor = lifecycle.Facts(status="draft", upgrade_type="minor", freeze="Black Friday")
    assert "Black Friday" in lifecycle.verdict("start", minor).why
    emergency = lifecycle.Facts(status="draft", upgrade_type="emergency", freeze="Black Friday")
    verdict = lifecycle.verdict("start", emergency)
    assert verdict.allowed and verdict.needs_reason


def test_table__next_action__follows_the_lifecycle():
    def next_of(**facts):
        return lifecycle.next_action(lifecycle.Facts(upgrade_type="minor", **facts))[0]

    assert next_of(status="draft", has_window_start=True) == "schedule"
    assert next_of(status="scheduled") == "start"
    assert next_of(status="in_progress") == "deploy"
    assert next_of(status="in_progress", deploy="passed") == "begin_monitoring"
    assert next_of(status="in_progress", deploy="failed") == "retry"
    assert next_of(status="monitoring", deploy="passed", monitoring_due=True) == "complete"
    assert next_of(status="failed") == "clone"


def test_table__next_action__outcome_unknown__says_to_check_the_target():
    facts = lifecycle.Facts(status="in_progress", upgrade_type="minor", deploy="unknown")
    action, why = lifecycle.next_action(facts)
    assert action == "retry" and "outcome is unknown" in why
