"""Checks and actions carried out against the demo Mycelia (task bodies, run in this process).

The asynchronous path, with real workers and a real broker, is in tests/integration/.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import mark_deployed, set_fault
from upgrades import services
from upgrades.models import (
    Artifact,
    CheckRun,
    EnvironmentOperation,
    EventKind,
    RunStatus,
    StepKind,
    StepStatus,
    UpgradeStatus,
)


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


def _deployed(upgrade):
    """The upgrade as it stands after a deploy that passed: post-deployment checks may run."""
    upgrade.status = UpgradeStatus.IN_PROGRESS
    upgrade.save()
    mark_deployed(upgrade)
    return upgrade


def _run_step(upgrade, title, by, phase_order=None):
    steps = upgrade.steps.filter(title=title)
    if phase_order:
        steps = steps.filter(phase__order=phase_order)
    run = services.check_run_request(upgrade=upgrade, step=steps.first(), by=by)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_http_health__target_healthy__passes_and_ticks_its_step(minor, manager):
    _deployed(minor)
    run = _run_step(minor, "Verify deployment", manager)
    assert run.status == RunStatus.PASSED, run.reason
    assert run.measured["status_code"] == 200 and run.measured["latency_ms"] >= 0
    step = run.step
    step.refresh_from_db()
    assert step.status == StepStatus.DONE and step.evidence_run == run
    assert step.completed_by is None
    ticked = step.events.get(kind=EventKind.STEP_DONE)
    assert f"Run #{run.pk}" in ticked.message


def test_http_health__health_fault_on__fails_with_readable_reason(minor, manager, demo_mycelia):
    _deployed(minor)
    set_fault(demo_mycelia, "health_failing")
    run = _run_step(minor, "Verify deployment", manager)
    assert run.status == RunStatus.FAILED
    assert "answered 503" in run.reason and "/health" in run.reason
    assert run.measured["status_code"] == 503
    assert run.step.status == StepStatus.OPEN


def test_http_health__target_slow__times_out_within_the_timeout(minor, manager, demo_mycelia):
    _deployed(minor)
    set_fault(demo_mycelia, "slow", slow_seconds=3)
    run = _run_step(minor, "Verify deployment", manager)
    assert run.status == RunStatus.TIMED_OUT
    assert run.duration_ms < 2500
    assert "timed out" in run.reason


def test_status_json__all_services_healthy__passes_with_figures(minor, manager):
    run = _run_step(minor, "Verify system status", manager)
    assert run.status == RunStatus.PASSED, run.reason
    assert run.measured["overall"]["error_rate"] == pytest.approx(0.002)


def test_status_json__garbage_answer__fails_saying_it_is_not_json(minor, manager, demo_mycelia):
    set_fault(demo_mycelia, "garbage_json")
    run = _run_step(minor, "Verify system status", manager)
    assert run.status in (RunStatus.FAILED, RunStatus.ERROR)
    assert "not JSON" in run.reason


def test_slo__error_rate_raised__fails_naming_the_breach(minor, manager, demo_mycelia):
    set_fault(demo_mycelia, "error_rate_high")
    run = _run_step(minor, "Check SLO status", manager)
    assert run.status == RunStatus.FAILED
    assert "error_rate" in run.reason
    assert run.measured["breaches"][0]["metric"] == "error_rate"


def test_command__diagnose_on_healthy_target__passes_with_exit_code_and_output(minor, manager):
    run = _run_step(minor, "Run diagnostics", manager, phase_order=1)
    assert run.status == RunStatus.PASSED, run.reason + run.output
    assert run.measured["exit_code"] == 0
    assert run.output.strip()


def test_command__hanging_command__is_killed_at_its_limit(minor, manager, demo_mycelia):
    set_fault(demo_mycelia, "command_hangs")
    EnvironmentOperation.objects.filter(operation="diagnose").update(timeout_seconds=1.5)
    run = _run_step(minor, "Run diagnostics", manager, phase_order=1)
    assert run.status == RunStatus.TIMED_OUT
    assert "killed" in run.reason
    assert run.duration_ms < 6000


def test_command__operation_not_set_up__errors_naming_it(minor, manager):
    EnvironmentOperation.objects.filter(operation="diagnose").delete()
    run = _run_step(minor, "Run diagnostics", manager, phase_order=1)
    assert run.status == RunStatus.ERROR
    assert "no “Diagnostics" in run.reason


def test_check__repeated_with_failure_limit__fails_once_limit_reached(minor, manager, demo_mycelia):
    _deployed(minor)
    step = minor.steps.get(title="Verify deployment")
    step.check_config = {"count": 3, "interval": 0.05, "failure_limit": 2}
    step.save()
    set_fault(demo_mycelia, "health_failing")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.measured["failures"] == 2 and len(run.measured["samples"]) == 2


def test_check__json_path_value_between_pass_and_fail__is_inconclusive(minor, manager):
    _deployed(minor)
    step = minor.steps.get(title="Verify deployment")
    step.check_config = {
        "path": "/ops/status.json",
        "json_path": "services.0.latency_p95_ms",
        "condition": {"op": "<=", "value": 100},
        "fail_condition": {"op": ">", "value": 400},
    }
    step.save()
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.INCONCLUSIVE, run.reason
    assert run.measured["value"] == 120
    assert step.status == StepStatus.OPEN


def test_execute__same_run_twice__acts_once(minor, manager):
    _deployed(minor)
    step = minor.steps.get(title="Verify deployment")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    first = services.check_run_execute(run_id=run.pk)
    second = services.check_run_execute(run_id=run.pk)
    assert "passed" in first and "not claimed" in second
    assert minor.events.filter(kind=EventKind.RUN_FINISHED).count() == 1


def test_request__step_already_being_checked__is_refused(minor, manager):
    _deployed(minor)
    step = minor.steps.get(title="Verify deployment")
    services.check_run_request(upgrade=minor, step=step, by=manager)
    with pytest.raises(services.Conflict, match="already being checked"):
        services.check_run_request(upgrade=minor, step=step, by=manager)


def test_request__manual_step__is_refused(minor, manager):
    step = minor.steps.filter(kind=StepKind.MANUAL).first()
    with pytest.raises(services.InvalidInput, match="manual step"):
        services.check_run_request(upgrade=minor, step=step, by=manager)


def test_phase_checks__pre_upgrade_checklist__fans_out_one_run_per_automated_step(minor, manager):
    phase = minor.phases.get(order=1)
    runs = services.phase_checks_request(upgrade=minor, phase=phase, by=manager)
    automated = phase.steps.exclude(kind__in=[StepKind.MANUAL, StepKind.DEPLOY]).count()
    assert len(runs) == automated >= 6
    assert len({r.batch for r in runs}) == 1
    assert all(r.status == RunStatus.QUEUED for r in runs)


def test_backup__minor_upgrade__archives_config_saves_logs_and_dumps_database(minor, manager):
    run = services.action_request(upgrade=minor, action="backup", by=manager, confirmed=True)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, run.reason
    kinds = set(Artifact.objects.filter(upgrade=minor).values_list("kind", flat=True))
    assert kinds == {"config_archive", "log_tail", "db_backup"}
    archive = Artifact.objects.get(upgrade=minor, kind="config_archive")
    import hashlib
    from pathlib import Path

    assert hashlib.sha256(Path(archive.path).read_bytes()).hexdigest() == archive.sha256


def test_action__without_confirmation__is_refused(minor, manager):
    with pytest.raises(services.InvalidInput, match="confirmation"):
        services.action_request(upgrade=minor, action="backup", by=manager, confirmed=False)
    assert not CheckRun.objects.exists()


def _started(upgrade, manager):
    return services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="test"
    )


def test_deploy_then_version_rollback__target_follows_and_upgrade_rolls_back(
    minor, manager, demo_mycelia
):
    upgrade = _started(minor, manager)
    deploy = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == RunStatus.PASSED, deploy.reason + deploy.output
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.5.0"

    rollback = services.action_request(
        upgrade=upgrade, action="rollback_version", by=manager, confirmed=True
    )
    services.check_run_execute(run_id=rollback.pk)
    rollback.refresh_from_db()
    upgrade.refresh_from_db()
    assert rollback.status == RunStatus.PASSED, rollback.reason
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] != "1.5.0"
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert upgrade.events.filter(kind=EventKind.ROLLBACK).exists()


def _deploy(upgrade, manager):
    deploy = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == RunStatus.PASSED, deploy.reason + deploy.output
    upgrade.refresh_from_db()
    return upgrade


def test_database_restore__new_version_still_running__says_roll_back_the_version_first(
    minor, manager, demo_mycelia
):
    # Given a backup taken before the deploy, and the deploy of 1.5.0
    backup = services.upgrade_act(upgrade=minor, action="back_up", by=manager).run
    services.check_run_execute(run_id=backup.pk)
    upgrade = _deploy(_started(minor, manager), manager)
    dump = Artifact.objects.get(upgrade=upgrade, kind="db_backup")
    # When the database is restored while /health still reports 1.5.0
    run = services.upgrade_act(
        upgrade=upgrade, action="restore_database", by=manager, backup_id=dump.pk
    ).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    upgrade.refresh_from_db()
    # Then the data is back but the upgrade is not called rolled back: the version is next
    assert run.status == RunStatus.PASSED, run.reason + run.output
    assert "verified" in run.reason
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    said = upgrade.events.filter(kind=EventKind.ROLLBACK).first().message
    assert "still runs 1.5.0" in said and "roll the version back" in said
    assert "roll_back" in services.upgrade_verdicts(upgrade=upgrade, by=manager)
    assert services.upgrade_verdicts(upgrade=upgrade, by=manager)["roll_back"].allowed
    # And after the version rollback the upgrade is rolled back
    rollback = services.upgrade_act(
        upgrade=upgrade, action="roll_back", by=manager, reason="data and code back"
    ).run
    services.check_run_execute(run_id=rollback.pk)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.4.2"


def test_database_restore__only_backups_taken_before_the_deploy_are_offered(minor, manager):
    upgrade = _deploy(_started(minor, manager), manager)
    backup = services.upgrade_act(upgrade=upgrade, action="back_up", by=manager).run
    services.check_run_execute(run_id=backup.pk)
    verdict = services.upgrade_verdicts(upgrade=upgrade, by=manager)["restore_database"]
    assert not verdict.allowed and "before this upgrade's deploy" in verdict.why


def test_rollback__hook_fails__upgrade_stays_in_progress_offering_retry_or_by_hand(
    minor, manager, demo_mycelia
):
    upgrade = _deploy(_started(minor, manager), manager)
    set_fault(demo_mycelia, "command_fails")
    run = services.upgrade_act(upgrade=upgrade, action="roll_back", by=manager, reason="errors").run
    services.check_run_execute(run_id=run.pk)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.rollback_state == "failed"
    allowed = {
        a for a, v in services.upgrade_verdicts(upgrade=upgrade, by=manager).items() if v.allowed
    }
    assert {"retry", "resolved_by_hand", "mark_failed"} <= allowed
    assert "roll_back" not in allowed


def test_rollback__draft_upgrade__is_refused(minor, manager):
    with pytest.raises(services.Conflict, match="cannot"):
        services.action_request(
            upgrade=minor, action="rollback_version", by=manager, confirmed=True
        )


def test_sweep__queued_run_never_sent__is_nudged(minor, manager, monkeypatch):
    _deployed(minor)
    sent: list[tuple[str, int]] = []
    from celery import current_app

    # Sent by name (the web server never imports upgrades.tasks)
    monkeypatch.setattr(
        current_app, "send_task", lambda name, args, **kw: sent.append((name, args[0]))
    )
    step = minor.steps.get(title="Verify deployment")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    assert services.check_runs_sweep() == {"requeued": 0, "nudged": 1}
    assert sent == [("upgrades.check_run_execute", run.pk)]
    run.refresh_from_db()
    assert run.nudged_at is not None


def test_log__offset__returns_only_what_is_new(minor, manager):
    run = _run_step(minor, "Run diagnostics", manager, phase_order=1)
    whole, size = services.check_run_log(run=run, offset=0)
    tail, same_size = services.check_run_log(run=run, offset=10)
    assert size == same_size == len(run.output) and whole == run.output
    assert tail == run.output[10:]
