"""The asynchronous path, for real: runs carried out by Celery worker processes through the
broker (Redis in CI), surviving a killed worker and a broker outage."""

from __future__ import annotations

import sys

import pytest
from django.urls import reverse

from tests.integration.conftest import wait_for
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


def test_worker_killed_mid_run__run_requeued_by_sweep_and_finished_once(
    worker_factory, make_upgrade, demo_environment, manager, tmp_path, settings
):
    # Given a diagnostics command that takes a while and leaves a mark when it finishes
    marks = tmp_path / "marks.txt"
    EnvironmentOperation.objects.filter(
        environment=demo_environment, operation="diagnose"
    ).update(
        argv=[sys.executable, "-c",
              "import sys, time; time.sleep(3); open(sys.argv[1], 'a').write('done\\n')",
              str(marks)],
        timeout_seconds=30,
    )  # fmt: skip
    settings.MYCELIA_RUN_STALE_SECONDS = 2
    first = worker_factory(MYCELIA_RUN_STALE_SECONDS="2").start()
    upgrade = make_upgrade("minor", environment=demo_environment)
    step = upgrade.steps.get(title="Run diagnostics", phase__order=1)

    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    wait_for(lambda: CheckRun.objects.get(pk=run.pk).status == RunStatus.RUNNING, timeout=30)

    # When the worker dies mid-run (SIGKILL to it and its pool)
    first.kill()
    # and, once its heartbeat is stale, the sweep puts the run back in the queue
    wait_for(lambda: services.check_runs_sweep()["requeued"] == 1, timeout=15, every=0.5)
    worker_factory(MYCELIA_RUN_STALE_SECONDS="2").start()

    # Then a new worker finishes it, once
    (finished,) = wait_for(_finished([run.pk]), timeout=60)
    assert finished.status == RunStatus.PASSED, finished.reason
    assert finished.attempt == 2
    assert marks.read_text() == "done\n"
    assert upgrade.events.filter(kind="run_finished").count() == 1


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
