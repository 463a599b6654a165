"""At most once for changes to the target, at least once for checks, and the whole process tree
always: commands under their keeper, runs swept after a worker died, cancels of running runs,
the release manager's decisions on an outcome nobody knows, and nothing lost in a reminder or
the flag guard. Worker processes for real are in tests/integration/test_faults.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from tests.conftest import close_steps
from upgrades import runners, services
from upgrades.models import (
    CheckRun,
    DeployState,
    EnvironmentOperation,
    EventKind,
    HookMode,
    MonitoringWindow,
    PostUpgradeReview,
    ReviewHorizon,
    RollbackState,
    RunKind,
    RunStatus,
    Upgrade,
    UpgradeStatus,
)
from upgrades.runners.commands import _group_alive

# --- a hook that leaves a ledger of what it really did ------------------------------------------

HOOK = textwrap.dedent(
    """
    import os, sys, time
    ledger, gates, order = sys.argv[1], sys.argv[2], sys.argv[3]
    output = sys.argv[4] if len(sys.argv) > 4 else ""
    key = os.environ.get("MYCELIA_RUN_KEY", "-")
    if order == "parity":  # a mix of both, decided by the run's id
        order = "early" if int(key.split("-")[1]) % 2 == 0 else "late"

    def note(what):
        with open(ledger, "a") as f:
            f.write(f"{what} {key} {os.getpid()}\\n")
        if what == "effect" and output:
            with open(output, "w") as f:
                f.write("dump")

    note("start")
    if order == "early":
        note("effect")
    # Held until the test opens the gate, for every run or for this attempt alone.
    while not (os.path.exists(os.path.join(gates, "open"))
               or os.path.exists(os.path.join(gates, key))):
        time.sleep(0.01)
    if order == "late":
        note("effect")
    """
)


def effect_order(key: str) -> str:
    """What a "parity" hook does for a run: "early" (the effect, then held) or "late"."""
    return "early" if int(key.split("-")[1]) % 2 == 0 else "late"


class Ledger:
    """The hook's record of each real side effect: ``<what> run-<id>-attempt-<n> <pid>``."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "ledger.txt"
        self.gates = folder / "gates"
        self.gates.mkdir(exist_ok=True)
        self.script = folder / "hook.py"
        self.script.write_text(HOOK)

    def argv(self, order: str = "late", output: str = "") -> list[str]:
        """A shell that starts the hook as its child and waits: the hook is the grandchild of
        the worker's direct child, as `pnpm run deploy` starts its script."""
        extra = [output] if output else []
        return ["sh", "-c", f'{sys.executable} {self.script} "$@" & wait', "sh",
                str(self.path), str(self.gates), order, *extra]  # fmt: skip

    def lines(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        return [tuple(line.split()[:2]) for line in self.path.read_text().splitlines()]

    def count(self, what: str, key: str | None = None) -> int:
        return sum(1 for w, k in self.lines() if w == what and (key is None or k == key))

    def open_gate(self, key: str = "open") -> None:
        (self.gates / key).touch()


def wait_until(predicate, *, timeout: float = 20.0):
    """Poll for something a process does (not for time to pass); fail clearly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


def group_gone(pgid: int) -> bool:
    """No process of the group is left (a zombie waiting for init to collect it is gone)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return not _group_alive(pgid)


# --- commands: the whole tree, always -----------------------------------------------------------


def test_command__exits_leaving_a_grandchild__grandchild_is_stopped_too(tmp_path) -> None:
    ledger = Ledger(tmp_path)
    groups: list[int] = []

    # Given a command that starts a background grandchild and exits at once
    result = runners.command_run(
        argv=["sh", "-c", f'{sys.executable} {ledger.script} "$@" & echo left', "sh",
              str(ledger.path), str(ledger.gates), "late"],
        timeout_s=10, on_start=groups.append,
    )  # fmt: skip

    # Then the command passed, and nothing it started is alive: the effect never happens
    assert result.outcome == "passed", result.reason
    assert groups and group_gone(groups[0])
    ledger.open_gate()
    assert ledger.count("effect") == 0


def test_command__asked_to_stop__whole_tree_stopped_and_output_kept(tmp_path) -> None:
    ledger = Ledger(tmp_path)
    stop = threading.Event()
    groups: list[int] = []

    def on_output(text: str) -> None:
        if "ready" in text:
            stop.set()  # a cancel arriving while it runs

    result = runners.command_run(
        argv=["sh", "-c", f'echo ready; {sys.executable} {ledger.script} "$@" & wait', "sh",
              str(ledger.path), str(ledger.gates), "late"],
        timeout_s=30, on_start=groups.append, on_output=on_output, should_stop=stop.is_set,
    )  # fmt: skip

    assert result.outcome == "cancelled" and "stopped on request" in result.reason
    assert "ready" in result.output
    assert group_gone(groups[0])
    ledger.open_gate()
    assert ledger.count("effect") == 0


def test_command__soft_time_limit_fires_while_reading__group_killed_before_it_propagates(
    tmp_path,
) -> None:
    ledger = Ledger(tmp_path)
    groups: list[int] = []

    # Given Celery's soft time limit, which raises in the task's main thread, mid-read
    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, soft_limit)

    def armed(pgid: int) -> None:
        groups.append(pgid)
        wait_until(lambda: ledger.count("start"))
        signal.setitimer(signal.ITIMER_REAL, 0.05)

    try:
        with pytest.raises(SoftTimeLimitExceeded):
            runners.command_run(
                argv=ledger.argv("late"), timeout_s=60, on_start=armed, kill_grace_s=0.5
            )
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    # Then the exception went on only after the whole group had been killed
    assert group_gone(groups[0])
    ledger.open_gate()
    assert ledger.count("effect") == 0


def test_command__the_process_running_it_is_killed__keeper_stops_the_grandchildren(
    tmp_path,
) -> None:
    ledger = Ledger(tmp_path)
    # Given a worker-like process running a command whose hook is a grandchild
    code = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path.cwd())!r})
        from upgrades.runners import command_run
        command_run(argv={ledger.argv("late")!r}, timeout_s=60,
                    on_start=lambda pgid: print(pgid, flush=True))
        """
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pgid = int(worker.stdout.readline())
    wait_until(lambda: ledger.count("start"))

    # When that process dies by SIGKILL, with no chance to clean up
    worker.kill()
    worker.wait()

    # Then the keeper (parent-death signal, subreaper) stops the whole tree
    wait_until(lambda: group_gone(pgid), timeout=10)
    ledger.open_gate()
    assert ledger.count("effect") == 0


def test_run_processes_kill__marked_processes__killed_even_outside_their_group() -> None:
    mark = f"run-1-attempt-1@{time.time_ns()}"
    env = {**os.environ, runners.RUN_MARK_VARIABLE: mark}
    # Given a run's group, one process of which left it with setsid, and an unrelated group
    marked = subprocess.Popen(
        ["sh", "-c", "sleep 60 & setsid sleep 60 & echo $!; wait"], env=env,
        start_new_session=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    escaped = int(marked.stdout.readline())
    unrelated = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # When what is left of the run is killed, naming the unrelated group as its group
        runners.run_processes_kill(pgid=unrelated.pid, mark=mark)
        runners.run_processes_kill(pgid=marked.pid, mark=mark)

        # Then every process carrying the mark is gone, the unrelated one is not
        marked.wait(timeout=5)
        wait_until(lambda: group_gone(marked.pid) and not Path(f"/proc/{escaped}").exists()
                   or _zombie(escaped))  # fmt: skip
        assert unrelated.poll() is None
    finally:
        unrelated.kill()
        unrelated.wait()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# --- webhooks carry the idempotency key ---------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.seen.append({"key": self.headers.get("Idempotency-Key"), "body": json.loads(body)})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_deploy_webhook__sends_the_attempts_idempotency_key(minor, manager, receiver):
    EnvironmentOperation.objects.filter(environment=minor.environment, operation="deploy").update(
        mode=HookMode.WEBHOOK,
        webhook_url=f"http://127.0.0.1:{receiver.server_port}/deploy",
    )
    upgrade = _started(minor, manager)

    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, run.reason
    assert _Receiver.seen == [
        {"key": f"run-{run.pk}-attempt-1",
         "body": {"operation": "deploy", "environment": "demo-staging", "version": "1.5.0"}}
    ]  # fmt: skip


# --- the sweep: at most once for changes, at least once for checks ------------------------------


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


def _started(upgrade, manager):
    close_steps(upgrade, manager, stages=("pre",))
    return services.upgrade_act(upgrade=upgrade, action="start", by=manager).upgrade


def _claimed(run: CheckRun) -> CheckRun:
    """The run as a worker leaves it when it dies right after claiming it."""
    now = timezone.now()
    CheckRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempt=1, started_at=now, heartbeat_at=now
    )
    run.refresh_from_db()
    return run


def _later(seconds: int = 600):
    return timezone.now() + timedelta(seconds=seconds)


def test_sweep__deploy_whose_worker_died__interrupted_not_run_again_and_deploy_unknown(
    minor, manager
):
    upgrade = _started(minor, manager)
    run = _claimed(services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run)

    # When the sweep runs once the heartbeat is stale (the clock moved on, not waited for)
    counts = services.check_runs_sweep(now=_later())

    run.refresh_from_db()
    upgrade.refresh_from_db()
    assert counts == {"requeued": 0, "nudged": 0, "interrupted": 1}
    assert run.status == RunStatus.INTERRUPTED and run.outcome_unknown
    assert "not run again" in run.reason
    assert upgrade.deploy_state == DeployState.UNKNOWN
    assert upgrade.events.filter(kind=EventKind.DEPLOYMENT, to_value=DeployState.UNKNOWN).exists()
    # And a message delivered again (late acks) finds nothing to do
    assert "not claimed (it is interrupted)" in services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED and run.attempt == 1


def test_sweep__backup_whose_worker_died__interrupted_not_run_again(minor, manager):
    step = minor.steps.get(title="Backup database")
    run = _claimed(services.check_run_request(upgrade=minor, step=step, by=manager))
    assert run.kind == RunKind.BACKUP

    services.check_runs_sweep(now=_later())

    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED
    assert services.check_runs_sweep(now=_later(1200))["nudged"] == 0


def test_sweep__check_whose_worker_died__queued_again(minor, manager):
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = _claimed(services.check_run_request(upgrade=minor, step=step, by=manager))

    counts = services.check_runs_sweep(now=_later())

    run.refresh_from_db()
    assert counts["requeued"] == 1 and run.status == RunStatus.QUEUED
    assert not run.changes_target


def test_sweep__recorded_process_group__killed_before_the_run_is_settled(minor, manager):
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = _claimed(services.check_run_request(upgrade=minor, step=step, by=manager))
    # Given the dead worker's command still running, in the group recorded on the run
    orphan = subprocess.Popen(
        ["sh", "-c", "sleep 60 & wait"], start_new_session=True,
        env={**os.environ, runners.RUN_MARK_VARIABLE: run.process_mark},
    )  # fmt: skip
    CheckRun.objects.filter(pk=run.pk).update(pgid=orphan.pid)

    services.check_runs_sweep(now=_later())

    assert orphan.wait(timeout=5) == -signal.SIGKILL
    assert group_gone(orphan.pid)


# --- the release manager decides ----------------------------------------------------------------


def _interrupted_deploy(upgrade, manager) -> CheckRun:
    run = _claimed(services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run)
    services.check_runs_sweep(now=_later())
    run.refresh_from_db()
    return run


def test_resolve__interrupted_deploy_marked_passed__upgrade_deployed_and_decision_recorded(
    minor, manager
):
    upgrade = _started(minor, manager)
    run = _interrupted_deploy(upgrade, manager)

    version, said = services.check_run_target_read(run=run, by=manager)
    services.check_run_resolve(run=run, by=manager, outcome="passed", reason="health says 1.5.0")

    run.refresh_from_db()
    upgrade.refresh_from_db()
    assert version and "the target reports version" in said
    assert run.status == RunStatus.PASSED and run.resolved_by == manager
    assert "marked passed by alice: health says 1.5.0" in run.reason
    assert upgrade.deploy_state == DeployState.PASSED
    decided = upgrade.events.filter(kind=EventKind.RUN_FINISHED, actor=manager).get()
    assert decided.from_value == RunStatus.INTERRUPTED and decided.to_value == RunStatus.PASSED
    assert upgrade.events.filter(to_value="target checked", actor=manager).exists()
    assert "begin_monitoring" in services.upgrade_verdicts(upgrade=upgrade, by=manager) and (
        services.upgrade_verdicts(upgrade=upgrade, by=manager)["begin_monitoring"].allowed
    )


def test_resolve__marked_failed__retry_offered_and_queues_a_new_deploy(minor, manager):
    upgrade = _started(minor, manager)
    run = _interrupted_deploy(upgrade, manager)

    services.check_run_resolve(run=run, by=manager, outcome="failed", reason="still 1.4.2")
    upgrade.refresh_from_db()
    assert upgrade.deploy_state == DeployState.FAILED

    retry = services.upgrade_act(upgrade=upgrade, action="retry", by=manager).run
    assert retry.pk != run.pk and retry.kind == RunKind.DEPLOY


def test_retry__straight_after_an_interruption__allowed_by_the_table(minor, manager):
    upgrade = _started(minor, manager)
    run = _interrupted_deploy(upgrade, manager)

    retry = services.upgrade_act(upgrade=upgrade, action="retry", by=manager).run

    assert retry.pk != run.pk and retry.status == RunStatus.QUEUED


def test_mark_failed__after_an_interruption__upgrade_failed_and_run_stays_unknown(minor, manager):
    upgrade = _started(minor, manager)
    run = _interrupted_deploy(upgrade, manager)

    services.upgrade_act(upgrade=upgrade, action="mark_failed", by=manager, reason="unsure")

    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.FAILED
    with pytest.raises(services.Conflict, match="moved on"):
        services.check_run_resolve(run=run, by=manager, outcome="passed", reason="late")


@pytest.mark.parametrize(
    ("outcome", "reason", "field"), [("maybe", "x", "outcome"), ("passed", "  ", "reason")]
)
def test_resolve__bad_input__400_naming_the_field(minor, manager, outcome, reason, field):
    run = _interrupted_deploy(_started(minor, manager), manager)
    with pytest.raises(services.InvalidInput) as refused:
        services.check_run_resolve(run=run, by=manager, outcome=outcome, reason=reason)
    assert refused.value.status == 400 and refused.value.field == field


def test_resolve__run_that_passed__refused(minor, manager):
    run = _run_step(minor, "Run diagnostics", manager)
    with pytest.raises(services.Conflict, match="only a run whose outcome is unknown"):
        services.check_run_resolve(run=run, by=manager, outcome="failed", reason="no")


def test_resolve__stakeholder__not_allowed(minor, manager, stakeholder):
    run = _interrupted_deploy(_started(minor, manager), manager)
    with pytest.raises(services.NotAllowed):
        services.check_run_resolve(run=run, by=stakeholder, outcome="passed", reason="x")


def _run_step(upgrade, title, by):
    step = upgrade.steps.filter(title=title).first()
    run = services.check_run_request(upgrade=upgrade, step=step, by=by)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- cancelling a running run -------------------------------------------------------------------


def _execute_in_background(run_id: int) -> threading.Thread:
    from django.db import connection

    def work():
        try:
            services.check_run_execute(run_id=run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_cancel__running_check__stopped_within_a_second_output_kept_tree_gone(
    minor, manager, tmp_path
):
    ledger = Ledger(tmp_path / "ledger")
    EnvironmentOperation.objects.filter(environment=minor.environment, operation="diagnose").update(
        argv=ledger.argv("late"), timeout_seconds=60
    )
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    worker = _execute_in_background(run.pk)
    wait_until(lambda: ledger.count("start") and CheckRun.objects.get(pk=run.pk).pgid)

    # When a release manager cancels it while it runs
    asked = time.monotonic()
    services.check_run_cancel(run=run, by=manager)
    worker.join(timeout=30)

    # Then it ends Cancelled within a few seconds (the command's limit is a minute), and
    # nothing it started is alive
    assert not worker.is_alive()
    run.refresh_from_db()
    assert time.monotonic() - asked < 5
    assert run.status == RunStatus.CANCELLED, run.reason
    assert group_gone(run.pgid)
    ledger.open_gate()
    assert ledger.count("effect") == 0
    assert not run.outcome_unknown
    assert minor.events.filter(to_value="cancel requested", actor=manager).exists()


@pytest.mark.django_db(transaction=True)
def test_cancel__running_deploy__cancelled_with_outcome_unknown(minor, manager, tmp_path):
    ledger = Ledger(tmp_path / "ledger")
    EnvironmentOperation.objects.filter(environment=minor.environment, operation="deploy").update(
        argv=ledger.argv("early"), timeout_seconds=60
    )
    upgrade = _started(minor, manager)
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    worker = _execute_in_background(run.pk)
    wait_until(lambda: ledger.count("effect") and CheckRun.objects.get(pk=run.pk).pgid)

    services.check_run_cancel(run=run, by=manager)
    worker.join(timeout=30)

    assert not worker.is_alive()
    run.refresh_from_db()
    upgrade.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.outcome_unknown
    assert "outcome is unknown" in run.reason
    assert upgrade.deploy_state == DeployState.UNKNOWN
    assert group_gone(run.pgid)
    assert ledger.count("effect") == 1


@pytest.mark.django_db(transaction=True)
def test_sweep__worker_thought_dead_but_alive__its_command_stopped_and_not_run_again(
    minor, manager, tmp_path
):
    ledger = Ledger(tmp_path / "ledger")
    EnvironmentOperation.objects.filter(environment=minor.environment, operation="deploy").update(
        argv=ledger.argv("late"), timeout_seconds=60
    )
    upgrade = _started(minor, manager)
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    worker = _execute_in_background(run.pk)
    run = wait_until(lambda: ledger.count("start") and CheckRun.objects.get(pk=run.pk).pgid and (
        CheckRun.objects.get(pk=run.pk)
    ))  # fmt: skip

    # When the sweep takes the run from a worker that is slow, not dead
    services.check_runs_sweep(now=_later())
    worker.join(timeout=30)

    # Then the worker, seeing the run is no longer its own, stopped the command; the run
    # stays interrupted, and the held side effect never happened
    assert not worker.is_alive()
    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED and run.attempt == 1
    assert group_gone(run.pgid)
    ledger.open_gate()
    assert ledger.count("effect") == 0


def test_cancel__finished_run__refused(minor, manager):
    run = _run_step(minor, "Run diagnostics", manager)
    with pytest.raises(services.Conflict, match="nothing to cancel"):
        services.check_run_cancel(run=run, by=manager)


# --- nothing lost: the reminder and the guard ---------------------------------------------------


def _completed(upgrade, manager):
    from tests.conftest import drive

    return drive(upgrade, manager, to="completed")


def test_reminder__send_fails__claim_rolled_back_and_sent_on_the_next_run(
    make_upgrade, manager, monkeypatch
):
    from comms import services as comms
    from comms.models import Message

    upgrade = _completed(make_upgrade("minor"), manager)
    PostUpgradeReview.objects.filter(upgrade=upgrade, horizon=ReviewHorizon.IMMEDIATE).update(
        due_at=timezone.now() - timedelta(minutes=1)
    )
    real_send = comms.reminder_send

    def broken(**kwargs):
        raise RuntimeError("outbox unavailable")

    # When handing the reminder to the outbox fails
    monkeypatch.setattr(comms, "reminder_send", broken)
    assert services.reviews_remind()["failed"] == 1

    # Then the reminder is still due, and nothing says it was sent
    review = PostUpgradeReview.objects.get(upgrade=upgrade, horizon=ReviewHorizon.IMMEDIATE)
    assert review.due_reminder_sent_at is None
    assert not upgrade.events.filter(kind=EventKind.REVIEW, to_value="due").exists()

    # And the next run sends it, once
    monkeypatch.setattr(comms, "reminder_send", real_send)
    assert services.reviews_remind()["due"] == 1
    assert services.reviews_remind()["due"] == 0
    review.refresh_from_db()
    assert review.due_reminder_sent_at is not None
    assert Message.objects.filter(template_key="reminder").count() == 1


def _guard_ready(flag_upgrade, manager):
    from tests.conftest import mark_deployed

    upgrade = _started(flag_upgrade, manager)
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=run.pk)
    upgrade.refresh_from_db()
    if upgrade.deploy_state != DeployState.PASSED:
        mark_deployed(upgrade)
    upgrade = services.upgrade_act(upgrade=upgrade, action="begin_monitoring", by=manager).upgrade
    MonitoringWindow.objects.filter(upgrade=upgrade).update(failure_limit=1)
    return upgrade


def test_guard__transition_fails__flag_flip_undone_and_failure_recorded(
    flag_upgrade, manager, demo_mycelia, monkeypatch
):
    from tests.conftest import flag_is_on, set_fault
    from upgrades.services import monitoring

    upgrade = _guard_ready(flag_upgrade, manager)
    assert flag_is_on("new-checkout", "demo-staging")
    set_fault(demo_mycelia, "health_failing")

    def refuses(**kwargs):
        raise services.Conflict("the database went away mid-way")

    # When the guard trips but the rollback's status move fails
    monkeypatch.setattr(monitoring, "status_move", refuses)
    services.monitoring_sample_take(upgrade_id=upgrade.pk)

    # Then none of the trip stays half-done: the flag is still on, the window still open, and
    # the failure is recorded with the rollback marked failed (retry or resolved by hand)
    upgrade.refresh_from_db()
    assert flag_is_on("new-checkout", "demo-staging")
    assert upgrade.status == UpgradeStatus.MONITORING
    assert upgrade.rollback_state == RollbackState.FAILED
    assert MonitoringWindow.objects.get(upgrade=upgrade).ended_at is None
    event = upgrade.events.get(kind=EventKind.GUARD_TRIPPED)
    assert "could not turn flag new-checkout off" in event.message
    from flags.models import FlagEvent

    assert not FlagEvent.objects.filter(via="guard").exists()


def test_guard__trips__flip_event_window_and_rollback_together(flag_upgrade, manager, demo_mycelia):
    from tests.conftest import flag_is_on, set_fault

    upgrade = _guard_ready(flag_upgrade, manager)
    set_fault(demo_mycelia, "health_failing")

    services.monitoring_sample_take(upgrade_id=upgrade.pk)

    upgrade = Upgrade.objects.get(pk=upgrade.pk)
    assert not flag_is_on("new-checkout", "demo-staging")
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert upgrade.rollback_state == RollbackState.PASSED
    assert MonitoringWindow.objects.get(upgrade=upgrade).ended_at is not None
    assert upgrade.events.get(kind=EventKind.GUARD_TRIPPED).to_value == "off"


def test_guard__rollback_already_running__asks_the_table_and_leaves_the_flag(
    flag_upgrade, manager, demo_mycelia
):
    from tests.conftest import flag_is_on, set_fault

    # Given a flag upgrade being monitored whose rollback a release manager has just started
    upgrade = _guard_ready(flag_upgrade, manager)
    Upgrade.objects.filter(pk=upgrade.pk).update(rollback_state=RollbackState.RUNNING)
    set_fault(demo_mycelia, "health_failing")
    # When the guard trips
    services.monitoring_sample_take(upgrade_id=upgrade.pk)
    # Then it does not act twice: the table refuses a second rollback, and the timeline says why
    assert flag_is_on("new-checkout", "demo-staging")
    assert Upgrade.objects.get(pk=upgrade.pk).status == UpgradeStatus.MONITORING
    said = upgrade.events.get(kind=EventKind.GUARD_TRIPPED).message
    assert "A rollback is running" in said and "left as it is" in said
