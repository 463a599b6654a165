"""Fault trial of issue 11: SIGTERM to `make run` (scripts/run.py, the runner alone, as Docker or
systemd sends it) while a deploy, a database backup or a check is under way, then `make run`
again on the same data folder.

The demo environment's deploy, database backup and diagnostics hooks are the ledger hook of
tests/upgrades/test_at_most_once.py: a shell that starts the hook as a grandchild, which writes
each real side effect in a ledger keyed by run and attempt and is then held at a gate. The
operations are queued as a release manager would: the deploy and the backup with
`manage.py upgrade <id> deploy|back_up --as manager`, the check through the REST API with a
token.

What must hold, every trial:
- everything `make run` started is gone within ten seconds of the SIGTERM, and so is every
  process of the run (its recorded process group, anything carrying its MYCELIA_RUN_MARK);
- after the restart, the sweep settles the run by its kind: a deploy or backup acted at most
  once and ends "interrupted" (outcome unknown), never re-run by itself; a check is run again and
  passes;
- every run ends in a state that says what happened.

The sweep finds the run stale after MYCELIA_RUN_STALE_SECONDS (2 s here) with no heartbeat; the
restart takes longer than that, so nothing here waits for time to pass. To keep the module short,
the trials share one data folder: the `make run` started again after one trial's SIGTERM is the
one the next trial signals.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import wait_for
from tests.platform.test_run_script import ROOT, STOP_WITHIN_SECONDS, Run, _answers
from tests.upgrades.test_at_most_once import Ledger, effect_order, group_gone
from upgrades.models import DeployState, RunStatus

# One worker takes every trial: they share the module's `make run` (its first start migrates).
pytestmark = [pytest.mark.slow, pytest.mark.worker, pytest.mark.xdist_group("make_run_trials")]

TRIALS = 2  # x 3 kinds = 6 trials

# Runs found stale quickly after the restart, and swept every second.
FAST_SWEEP = {"MYCELIA_RUN_STALE_SECONDS": "2", "MYCELIA_SWEEP_SECONDS": "1"}

SETUP = """
import json
from django.contrib.auth import get_user_model
from flags.services import api_token_create
from upgrades import services
from upgrades.models import Environment, EnvironmentOperation

hooks = json.loads({hooks!r})
kind = {kind!r}
environment = Environment.objects.get(slug="staging")
for operation, argv in hooks.items():
    updated = EnvironmentOperation.objects.filter(
        environment=environment, operation=operation
    ).update(argv=argv, timeout_seconds=120)
    assert updated == 1, operation
manager = get_user_model().objects.get(username="manager")
upgrade = services.upgrade_create(
    upgrade_type="minor", title="Fault trial", environment=environment, owner=manager,
    by=manager, version_from="1.4.2", version_to="1.5.0",
)
if kind == "deploy":  # the deployment under way: the deploy is what the manager does next
    upgrade = services.upgrade_act(
        upgrade=upgrade, action="start", by=manager, override_reason="fault trial"
    ).upgrade
step = upgrade.steps.filter(title="Run diagnostics").order_by("phase__order").first()
_, token = api_token_create(user=manager, name="fault trial", scope="user", environment=None)
print(json.dumps({{"upgrade": upgrade.pk, "step": step.pk, "token": token}}))
"""


def _manage(run: Run, *args: str) -> str:
    """A `manage.py` command against the run's data folder, as a person at its terminal."""
    env = {
        **os.environ,
        "MYCELIA_DATA_DIR": str(run.data_dir),
        "DATABASE_URL": f"sqlite:///{run.data_dir / 'mycelia_ops.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "DJANGO_SETTINGS_MODULE": "mycelia_ops.settings",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def _row(run: Run, sql: str, *params: object) -> sqlite3.Row | None:
    """One row of the run's database, read as it is now (the product keeps writing it)."""
    db = sqlite3.connect(
        f"file:{run.data_dir / 'mycelia_ops.sqlite3'}?mode=ro", uri=True, timeout=10
    )
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, params).fetchone()
    finally:
        db.close()


def _check_run(run: Run, run_id: int) -> sqlite3.Row:
    return _row(run, "SELECT * FROM upgrades_checkrun WHERE id = ?", run_id)


def _queue(run: Run, kind: str, ids: dict) -> int:
    """Queue the operation through the product; returns the run's id."""
    upgrade = str(ids["upgrade"])
    if kind == "check":
        request = urllib.request.Request(
            f"http://127.0.0.1:{run.port}/api/upgrades/{upgrade}/steps/{ids['step']}/run",
            method="POST",
            headers={"Authorization": f"Bearer {ids['token']}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 202
            return json.load(response)["run"]["id"]
    said = _manage(run, "upgrade", upgrade, "deploy" if kind == "deploy" else "back_up",
                   "--as", "manager")  # fmt: skip
    line = next(line for line in said.splitlines() if line.startswith("Run #"))
    return int(line.split()[1].lstrip("#"))


def _mark_of(pid: int) -> str:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"MYCELIA_RUN_MARK=")]
    assert found, f"the hook (pid {pid}) carries no MYCELIA_RUN_MARK"
    return found[0]


def _marked_alive(mark: str) -> list[int]:
    entry = f"MYCELIA_RUN_MARK={mark}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if state != "Z" and entry in environ:
            found.append(int(proc.name))
    return found


def _stop(run: Run) -> None:
    """SIGTERM to the runner, then SIGKILL to whatever of it is left."""
    if run.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            run.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            run.proc.wait(timeout=STOP_WITHIN_SECONDS)
    run.kill_everything()


class MakeRun:
    """`make run` on one data folder for the whole module: started when a trial needs it, and
    started again (same folder, same ports) after each SIGTERM."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ledger = Ledger(folder / "ledger")
        self.current: Run | None = None
        self.every: list[Run] = []

    def serving(self) -> Run:
        if self.current is None or self.current.proc.poll() is not None:
            previous = self.current
            if previous is not None:
                previous.log_path.rename(self.folder / f"run-{len(self.every)}.log")
            ports = {"port": previous.port, "demo_port": previous.demo_port} if previous else {}
            self.current = Run(self.folder, **ports)
            self.every.append(self.current)
            self.current.wait_until_serving()
        return self.current

    def stop(self) -> None:
        for run in reversed(self.every):
            _stop(run)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory) -> Iterator[MakeRun]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAST_SWEEP.items():
            patch.setenv(name, value)
        product = MakeRun(tmp_path_factory.mktemp("make-run"))
        try:
            yield product
        finally:
            product.stop()
            product.ledger.open_gate()  # nothing can be held any longer
    for run in product.every:
        assert not _answers(run.port) and not _answers(run.demo_port)


@pytest.mark.parametrize("trial", range(TRIALS))
@pytest.mark.parametrize("kind", ["deploy", "backup", "check"])
def test_make_run__sigterm_mid_run__nothing_left_changes_at_most_once_checks_again(
    make_run, kind, trial
):
    ledger = make_run.ledger
    hooks = {
        "deploy": ledger.argv("parity"),
        "db_backup": ledger.argv("parity", output="{output_path}"),
        "diagnose": ledger.argv("parity"),
    }
    pgid = None
    try:
        # Given make run serving, its demo environment's hooks the ledger hook
        first = make_run.serving()
        said = _manage(first, "shell", "-c", SETUP.format(hooks=json.dumps(hooks), kind=kind))
        ids = json.loads(said.strip().splitlines()[-1])

        # And a deploy, backup or check queued by the release manager, under way on the worker
        run_id = _queue(first, kind, ids)
        key = f"run-{run_id}-attempt-1"
        early = effect_order(key) == "early"
        wait_for(lambda: ledger.count("effect" if early else "start", key), timeout=60, every=0.02)
        row = wait_for(
            lambda: (r := _check_run(first, run_id)) and r["pgid"] and r, timeout=20, every=0.05
        )
        assert row["status"] == RunStatus.RUNNING
        pgid = row["pgid"]
        hook_pid = next(
            int(line.split()[2])
            for line in ledger.path.read_text().splitlines()
            if line.startswith(f"start {key} ")
        )
        mark = _mark_of(hook_pid)

        # When a process manager sends SIGTERM to the runner alone
        signalled = time.monotonic()
        first.proc.send_signal(signal.SIGTERM)

        # Then everything make run started is gone within ten seconds, the run's processes too
        first.wait_all_gone(signalled)
        while not group_gone(pgid) or _marked_alive(mark):
            assert time.monotonic() - signalled < STOP_WITHIN_SECONDS, (
                f"run {run_id}: group {pgid} or marked {_marked_alive(mark)} still alive"
            )
            time.sleep(0.05)
        assert not _answers(first.port) and not _answers(first.demo_port)
        # The held hook was stopped, not left to act late
        assert ledger.count("start", key) == 1
        assert ledger.count("effect", key) == (1 if early else 0), ledger.lines()
        if kind == "check":
            ledger.open_gate(f"run-{run_id}-attempt-2")  # the next attempt goes through

        # When make run starts again on the same data folder and ports
        second = make_run.serving()
        assert second is not first

        # Then the sweep settles the run by its kind
        final = {RunStatus.INTERRUPTED} if kind != "check" else {RunStatus.PASSED}
        done = wait_for(
            lambda: (r := _check_run(second, run_id)) and r["status"] in final and r,
            timeout=60,
            every=0.1,
        )
        assert done["reason"], "a run's end says what happened"
        if kind == "check":
            # At least once: run again, once, and passed
            assert done["attempt"] == 2, done["reason"]
            assert ledger.count("start", f"run-{run_id}-attempt-2") == 1
            assert ledger.count("effect", f"run-{run_id}-attempt-2") == 1
        else:
            # At most once: not run again by itself, its outcome unknown
            assert done["attempt"] == 1, done["reason"]
            assert "not run again" in done["reason"], done["reason"]
            if kind == "deploy":
                upgrade = _row(
                    second, "SELECT deploy_state FROM upgrades_upgrade WHERE id = ?", ids["upgrade"]
                )
                assert upgrade["deploy_state"] == DeployState.UNKNOWN
        # Every side effect at most once, nothing of any attempt alive
        attempts = 2 if kind == "check" else 1
        mine = [(what, k) for what, k in ledger.lines() if k.startswith(f"run-{run_id}-")]
        assert sum(1 for what, _ in mine if what == "start") == attempts, mine
        assert ledger.count("effect", key) == (1 if early else 0), mine
        assert group_gone(pgid) and not _marked_alive(mark)
    finally:
        if pgid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
