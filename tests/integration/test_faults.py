"""Fault tests with real Celery workers: SIGKILL the worker, SIGKILL the worker's process group,
SIGKILL the run's own process group, each during a deploy, a database backup and a check,
repeated. The hooks start a grandchild (as `pnpm run deploy` starts its script) that records
each real side effect in a ledger, keyed by run and attempt.

What must hold, every trial:
- every side effect at most once: a deploy or backup whose worker died is not run again (it ends
  "interrupted — outcome unknown"); a check is run again, one attempt after the other, never two
  at once;
- no process of a run is alive after the run has ended (its recorded process group is gone, and
  nothing carries its mark);
- every run ends in a state that says what happened.

The sweep is called with a clock moved past the heartbeat's staleness instead of waiting for it.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import close_steps
from tests.integration.conftest import wait_for
from tests.upgrades.test_at_most_once import Ledger, effect_order, group_gone
from upgrades import services
from upgrades.models import (
    CheckRun,
    DeployState,
    EnvironmentOperation,
    RunKind,
    RunStatus,
    Upgrade,
)

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPEATS = 5  # x 2 worker faults x 2 runs per worker, + 6 run-group kills = 26 trials


@pytest.fixture
def ledger(demo_environment, tmp_path) -> Ledger:
    """Every changing hook and the diagnostics check of the demo environment record in one
    ledger, through a grandchild held at a gate; half the runs (by id) act before the gate."""
    ledger = Ledger(tmp_path / "ledger")
    hooks = {
        "deploy": ledger.argv("parity"),
        "db_backup": ledger.argv("parity", output="{output_path}"),
        "diagnose": ledger.argv("parity"),
    }
    for operation, argv in hooks.items():
        EnvironmentOperation.objects.filter(
            environment=demo_environment, operation=operation
        ).update(argv=argv, timeout_seconds=120)
    return ledger


def _request(kind: str, make_upgrade, environment, manager) -> CheckRun:
    upgrade = make_upgrade("minor", environment=environment)
    if kind == "deploy":
        close_steps(upgrade, manager, stages=("pre",))
        upgrade = services.upgrade_act(upgrade=upgrade, action="start", by=manager).upgrade
        return services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    title = {"backup": "Backup database", "check": "Run diagnostics"}[kind]
    step = upgrade.steps.filter(title=title).order_by("phase__order").first()
    return services.check_run_request(upgrade=upgrade, step=step, by=manager)


def _acting(ledger: Ledger, run: CheckRun) -> CheckRun:
    """Wait until the run's hook is under way (its side effect done, for an early one) and
    its process group recorded."""
    key = f"run-{run.pk}-attempt-1"
    wanted = "effect" if effect_order(key) == "early" else "start"
    wait_for(lambda: ledger.count(wanted, key), timeout=60, every=0.02)
    return wait_for(lambda: CheckRun.objects.filter(pk=run.pk, pgid__isnull=False).first())


def _marked_alive(marks: set[str]) -> list[int]:
    """Live processes that carry one of the runs' marks."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if state != "Z" and any(f"MYCELIA_RUN_MARK={m}".encode() in environ for m in marks):
            found.append(int(entry.name))
    return found


def _check_ledger(ledger: Ledger, run: CheckRun) -> None:
    """At most once: for each attempt, a side effect only if that attempt acted; a change to
    the target acts in one attempt only."""
    for attempt in range(1, run.attempt + 1):
        key = f"run-{run.pk}-attempt-{attempt}"
        assert ledger.count("start", key) <= 1, (key, ledger.lines())
        assert ledger.count("effect", key) <= 1, (key, ledger.lines())
    if run.changes_target:
        assert run.attempt == 1
        acted_before_the_gate = effect_order(run.key) == "early"
        assert ledger.count("effect", run.key) == (1 if acted_before_the_gate else 0)


def test_faults__worker_killed_mid_run__changes_at_most_once_checks_again_nothing_left(
    worker_factory, make_upgrade, demo_environment, manager, ledger
):
    kinds = ["deploy", "backup", "check"]
    pairs = [(kinds[i % 3], kinds[(i + 1) % 3]) for i in range(3)]
    worker = worker_factory().start()
    every_run: list[CheckRun] = []
    trial = 0
    for _ in range(REPEATS):
        for fault in ("worker", "worker_group"):
            pair = pairs[trial % 3]
            trial += 1
            # Given two runs under way on one worker, their hooks' grandchildren held mid-way
            runs = [_request(kind, make_upgrade, demo_environment, manager) for kind in pair]
            runs = [_acting(ledger, run) for run in runs]

            # When the worker dies: SIGKILL to its main process, or to its whole group
            if fault == "worker":
                os.kill(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait(timeout=15)
            else:
                worker.kill()

            # Then nothing the runs started survives the worker (their keepers stop the trees)
            for run in runs:
                wait_for(lambda run=run: group_gone(run.pgid), timeout=15, every=0.05)
            assert not _marked_alive({r.process_mark for r in runs})

            # And the sweep, once the heartbeats are stale, settles each run by its kind
            later = timezone.now() + timedelta(minutes=10)
            services.check_runs_sweep(now=later)
            for run in runs:
                run.refresh_from_db()
                if run.changes_target:
                    assert run.status == RunStatus.INTERRUPTED, (fault, run.kind, run.reason)
                    if run.kind == RunKind.DEPLOY:
                        upgrade = Upgrade.objects.get(pk=run.upgrade_id)
                        assert upgrade.deploy_state == DeployState.UNKNOWN
                else:
                    assert run.status == RunStatus.QUEUED, (fault, run.reason)
                    ledger.open_gate(f"run-{run.pk}-attempt-2")  # the next attempt goes through
                _check_ledger(ledger, run)
            every_run += runs

            # A new worker takes over: the checks run again, once; the changes do not
            worker = worker_factory().start()
            for run in runs:
                if not run.changes_target:
                    done = wait_for(
                        lambda run=run: CheckRun.objects.filter(
                            pk=run.pk, status=RunStatus.PASSED
                        ).first(),
                        timeout=60,
                    )
                    assert done.attempt == 2, done.reason

    # Finally, every run ended in a state that says what happened, each effect at most once
    for run in every_run:
        run.refresh_from_db()
        assert run.status in (RunStatus.PASSED, RunStatus.INTERRUPTED), (run.kind, run.reason)
        _check_ledger(ledger, run)
        assert group_gone(run.pgid)
    assert not _marked_alive({r.process_mark for r in every_run})
    assert trial * 2 >= 20


def test_faults__run_process_group_killed__run_fails_once_and_nothing_is_left(
    worker, make_upgrade, demo_environment, manager, ledger
):
    finished: list[CheckRun] = []
    for _ in range(2):
        for kind in ("deploy", "backup", "check"):
            # Given a run under way
            run = _acting(ledger, _request(kind, make_upgrade, demo_environment, manager))

            # When its own process group is killed (the keeper, the shell and the hook at once)
            os.killpg(run.pgid, signal.SIGKILL)

            # Then the worker ends it as failed, saying so, and runs nothing again
            done = wait_for(
                lambda run=run: CheckRun.objects.filter(
                    pk=run.pk, status__in=[RunStatus.FAILED, RunStatus.ERROR]
                ).first(),
                timeout=60,
            )
            assert "killed by SIGKILL" in done.reason, done.reason
            assert done.attempt == 1
            finished.append(done)
    for run in finished:
        assert group_gone(run.pgid)
        _check_ledger(ledger, run)
    assert not _marked_alive({r.process_mark for r in finished})
