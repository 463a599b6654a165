"""`make run` (scripts/run.py): it starts where MYCELIA_DATA_DIR says, Ctrl-C or SIGTERM ends
every process it started within ten seconds, a child that dies takes the others down with a
message naming it, and a port already in use is reported before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_WITHIN_SECONDS = 10.0

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, read from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _children(ppid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _name(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for arg, name in (("demo_target", "demo-target"), ("worker", "worker"), ("beat", "scheduler")):
        if arg in argv:
            return name
    return "web" if "mycelia_ops.serve" in argv else " ".join(argv)


class Run:
    """scripts/run.py in a session of its own, as a terminal would run it, with SQLite and the
    filesystem broker in a data folder of its own and free ports."""

    def __init__(self, tmp_path: Path, *, port: int | None = None, demo_port: int | None = None):
        self.port = port or _free_port()
        self.demo_port = demo_port or _free_port()
        self.data_dir = tmp_path / "elsewhere" / "data"
        self.log_path = tmp_path / "run.log"
        env = {
            **os.environ,
            "PORT": str(self.port),
            "DEMO_TARGET_PORT": str(self.demo_port),
            "MYCELIA_DATA_DIR": str(self.data_dir),
            "DATABASE_URL": f"sqlite:///{self.data_dir / 'mycelia_ops.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "WEB_WORKERS": "2",
        }
        env.pop("MYCELIA_BASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run.py")],
            cwd=ROOT,
            env=env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children: dict[str, int] = {}

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_until_serving(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"run.py exited with {self.proc.returncode}:\n{self.log}")
            if "Mycelia Ops is running at" in self.log and _answers(self.port):
                self.children = {_name(pid): pid for pid in _children(self.proc.pid)}
                return
            time.sleep(0.2)
        raise AssertionError(f"run.py did not serve within {timeout} s:\n{self.log}")

    def survivors(self) -> dict[str, list[int]]:
        """Every process still alive in the runner's session and its children's groups."""
        groups = {"runner": self.proc.pid, **self.children}
        alive = {name: _group_members(pgid) for name, pgid in groups.items()}
        return {name: pids for name, pids in alive.items() if pids}

    def wait_all_gone(self, started: float) -> float:
        while time.monotonic() - started < STOP_WITHIN_SECONDS:
            if not self.survivors() and self.proc.poll() is not None:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(
            f"still alive {STOP_WITHIN_SECONDS} s after the signal: {self.survivors()}\n{self.log}"
        )

    def kill_everything(self) -> None:
        for pgid in {self.proc.pid, *self.children.values()}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@pytest.fixture
def runs(tmp_path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.kill_everything()


def test_run__ctrl_c__every_process_it_started_is_gone_within_ten_seconds(tmp_path, runs):
    # Given make run serving, its data kept outside the checkout
    run = Run(tmp_path)
    runs.append(run)
    run.wait_until_serving()
    assert set(run.children) == {"demo-target", "worker", "scheduler", "web"}
    # The runner lists what it started beside the data, for people and scripts to find
    listed = json.loads((run.data_dir / "run.pids").read_text())
    assert listed == {"runner": run.proc.pid, **run.children}
    assert (run.data_dir / "celerybeat-schedule").exists() or list(
        run.data_dir.glob("celerybeat-schedule*")
    )

    # When Ctrl-C is pressed (SIGINT to the terminal's foreground process group)
    started = time.monotonic()
    os.killpg(run.proc.pid, signal.SIGINT)

    # Then every process is gone within ten seconds, both ports are free and it exits cleanly
    run.wait_all_gone(started)
    assert run.proc.returncode == 0, run.log
    assert not _answers(run.port)
    assert not _answers(run.demo_port)
    assert not (run.data_dir / "run.pids").exists()


def test_run__sigterm_to_the_runner_only__every_process_it_started_is_gone(tmp_path, runs):
    run = Run(tmp_path)
    runs.append(run)
    run.wait_until_serving()

    # When a process manager sends SIGTERM to the runner alone
    started = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)

    run.wait_all_gone(started)
    assert run.proc.returncode == 0, run.log
    assert not _answers(run.port)


def test_run__a_child_dies__the_runner_names_it_stops_the_others_and_fails(tmp_path, runs):
    run = Run(tmp_path)
    runs.append(run)
    run.wait_until_serving()

    # When the demo target dies by itself
    started = time.monotonic()
    os.killpg(run.children["demo-target"], signal.SIGKILL)

    # Then the runner says which, stops the rest and exits non-zero
    run.wait_all_gone(started)
    assert run.proc.returncode != 0
    assert "demo-target" in run.log and "stopped by itself" in run.log
    assert not _answers(run.port)


@pytest.mark.parametrize("which", ["PORT", "DEMO_TARGET_PORT"])
def test_run__port_already_in_use__says_so_and_exits_before_starting_anything(
    tmp_path, runs, which
):
    # Given a server on the port that binds with SO_REUSEPORT, as granian does
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        ports = {"port": busy} if which == "PORT" else {"demo_port": busy}

        run = Run(tmp_path, **ports)
        runs.append(run)
        code = run.proc.wait(timeout=60)

    assert code != 0
    assert f"Port {busy} ({which}) is already in use" in run.log
    # Nothing was started: not even the database was made
    assert not (run.data_dir / "mycelia_ops.sqlite3").exists()
    assert not (run.data_dir / "run.pids").exists()


def test_serve__sigterm_while_a_worker_is_still_starting__stops_within_ten_seconds(tmp_path):
    # Given the web server alone, its workers spawned but still loading Django
    port = _free_port()
    log_path = tmp_path / "serve.log"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_WORKERS": "2",
        "MYCELIA_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "mycelia_ops.serve"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "Spawning worker-2" not in log_path.read_text():
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.02)

        # When SIGTERM reaches the main process, as Docker sends it
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)

        # Then it and its workers are gone within ten seconds
        server.wait(timeout=STOP_WITHIN_SECONDS)
        while _group_members(server.pid):
            assert time.monotonic() - started < STOP_WITHIN_SECONDS, _group_members(server.pid)
            time.sleep(0.1)
        assert not _answers(port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def test_settings__imported__create_no_folder_until_the_product_starts(tmp_path):
    # Given a data folder elsewhere that does not exist yet, and a secret key from the environment
    data_dir = tmp_path / "elsewhere" / "data"
    env = {
        **os.environ,
        "MYCELIA_DATA_DIR": str(data_dir),
        "SECRET_KEY": "k" * 50,
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "DJANGO_SETTINGS_MODULE": "mycelia_ops.settings",
    }
    # When the settings (and the demo target's defaults) are imported
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import mycelia_ops.settings as s, upgrades.demo_target.state as d; "
            "print(s.MEDIA_ROOT, s.EMAIL_FILE_PATH, d.DEFAULT_STATE_DIR, sep='\\n')",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then nothing was made, and every path the product writes is under the data folder
    assert imported.returncode == 0, imported.stderr
    assert not data_dir.exists()
    assert imported.stdout.split() == [
        str(data_dir / "media"),
        str(data_dir / "mail"),
        str(data_dir / "demo_target"),
    ]

    # When the product starts (Django set up), the folders are made
    started = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 0, started.stderr
    assert (data_dir / "broker" / "queue").is_dir()
    assert (data_dir / "broker" / "processed").is_dir()
