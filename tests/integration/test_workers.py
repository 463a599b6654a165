"""The asynchronous path, for real: runs carried out by Celery worker processes through the
broker (Redis in CI), surviving a killed worker and a broker outage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.integration.conftest import wait_for
from tests.upgrades.test_at_most_once import Ledger, group_gone
from upgrades import services
from upgrades.models import CheckRun, EnvironmentOperation, RunStatus, StepStatus

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FINISHED = {s for s in RunStatus.values if s not in ("queued", "running")}


def _finished(run_ids):
    def check():
        runs = list(CheckRun.objects.filter(pk__in=run_ids))
        return runs if all(r.status in FINISHED for r in runs) else None

    return check


def test_phase_checks__run_all__workers_carry_them_out_and_tick_the_steps(
    worker, make_upgrade, demo_environment, manager
):
    upgrade = make_upgrade("minor", environment=demo_environment)
    phase = upgrade.phases.get(order=1)

    runs = services.phase_checks_request(upgrade=upgrade, phase=phase, by=manager)

    done = wait_for(_finished([r.pk for r in runs]), timeout=60)
    assert {r.status for r in done} == {RunStatus.PASSED}, [(r.title, r.reason) for r in done]
    ticked = phase.steps.filter(pk__in=[r.step_id for r in done], status=StepStatus.DONE)
    assert ticked.count() == len(runs)
    assert all(r.attempt == 1 and r.nudged_at for r in done)


def test_worker_killed_mid_run__check_stopped_whole_requeued_by_sweep_and_finished_once(
    worker_factory, make_upgrade, demo_environment, manager, tmp_path
):
    # Given a diagnostics command whose grandchild marks its start, then waits at a gate and
    # marks "done" once through it (the old test slept 3 s instead: a kill that came after the
    # command had finished, but before its worker recorded it, ran it twice: "done\ndone")
    ledger = Ledger(tmp_path / "ledger")
    EnvironmentOperation.objects.filter(environment=demo_environment, operation="diagnose").update(
        argv=ledger.argv("late"), timeout_seconds=60
    )
    first = worker_factory().start()
    upgrade = make_upgrade("minor", environment=demo_environment)
    step = upgrade.steps.get(title="Run diagnostics", phase__order=1)

    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    key = f"run-{run.pk}-attempt-1"
    wait_for(lambda: ledger.count("start", key), timeout=30, every=0.02)
    run = wait_for(lambda: CheckRun.objects.filter(pk=run.pk, pgid__isnull=False).first())

    # When the worker dies mid-run (SIGKILL to it and its pool)
    first.kill()

    # Then the command's whole tree goes with it: attempt 1 can never mark "done"
    wait_for(lambda: group_gone(run.pgid), timeout=15, every=0.05)
    # and the sweep (its clock moved past the heartbeat's staleness) queues the check again
    later = timezone.now() + timedelta(minutes=10)
    assert services.check_runs_sweep(now=later)["requeued"] == 1
    ledger.open_gate()
    worker_factory().start()

    # Then a new worker finishes it, once
    (finished,) = wait_for(_finished([run.pk]), timeout=60)
    assert finished.status == RunStatus.PASSED, finished.reason
    assert finished.attempt == 2
    assert [line for line in ledger.lines() if line[0] == "effect"] == [
        ("effect", f"run-{run.pk}-attempt-2")
    ]
    assert ledger.count("effect", key) == 0
    assert upgrade.events.filter(kind="run_finished").count() == 1


@pytest.mark.serial  # stops the machine's Redis, which the parallel workers share
def test_broker_down__request_still_succeeds_and_run_is_sent_once_it_is_back(
    broker, worker_factory, make_upgrade, demo_environment, manager, client
):
    upgrade = make_upgrade("minor", environment=demo_environment)
    step = upgrade.steps.get(title="Verify system status")
    client.force_login(manager)

    # Given the broker is down
    broker.stop()

    # When a manager asks for a check, the request still succeeds and the run waits, visibly
    response = client.post(reverse("upgrades:step_run", args=[upgrade.pk, step.pk]))
    assert response.status_code == 302
    run = CheckRun.objects.get(step=step)
    assert run.status == RunStatus.QUEUED and run.nudged_at is None
    page = client.get(upgrade.get_absolute_url()).content.decode()
    assert "Waiting for the broker" in page

    # Then once the broker is back, the sweep sends it and a worker carries it out
    broker.start()
    worker_factory().start()
    assert services.check_runs_sweep()["nudged"] == 1
    (finished,) = wait_for(_finished([run.pk]), timeout=60)
    assert finished.status == RunStatus.PASSED, finished.reason
    step.refresh_from_db()
    assert step.status == StepStatus.DONE
