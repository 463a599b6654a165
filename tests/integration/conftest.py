"""Real Celery workers (subprocesses) against the real broker and the test database.

The worker is started with the test process's database and broker, so the run rows written by a
test are the ones the worker claims. Tests that use it need committed data (transactional_db).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


def wait_for(predicate: Callable[[], object], *, timeout: float = 20.0, every: float = 0.1):
    """Poll until predicate() is truthy; return its value or fail with a clear message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout} s")


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WorkerProcess:
    """A Celery worker (or, with beat=True, the scheduler) as a process of its own."""

    def __init__(
        self, tmp_path: Path, broker_url: str, extra_env: dict[str, str], beat: bool = False
    ) -> None:
        self.beat = beat
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.extra_env = extra_env
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.starts = 0

    def start(self) -> WorkerProcess:
        self.starts += 1
        role = "beat" if self.beat else "worker"
        self.log_path = self.tmp_path / f"{role}-{self.starts}.log"
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": self.broker_url,
            "MYCELIA_DATA_DIR": str(settings.DATA_DIR),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        if self.beat:
            argv = [
                CELERY,
                "-A",
                "mycelia_ops",
                "beat",
                "-l",
                "info",
                "-s",
                str(self.tmp_path / f"beat-schedule-{self.starts}"),
            ]
            ready = "beat: Starting"
        else:
            argv = [
                CELERY,
                "-A",
                "mycelia_ops",
                "worker",
                "-l",
                "info",
                "--concurrency",
                "2",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
            ready = "ready."
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        wait_for(lambda: ready in self.log(), timeout=30)
        return self

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole worker (main process and pool children) at once, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)

    def stop(self) -> None:
        """SIGTERM to the main process only, as Docker sends it (a warm shutdown, a few
        seconds); then whatever is left of its group is killed. SIGTERM to the whole group at
        once kills the pool children under the main process, which then often waited out the
        whole timeout before being killed."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


@pytest.fixture
def worker_factory(transactional_db, tmp_path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def make(broker_url: str | None = None, beat: bool = False, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(
            tmp_path, broker_url or settings.CELERY_BROKER_URL, extra_env, beat=beat
        )
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


@pytest.fixture
def worker(worker_factory) -> WorkerProcess:
    return worker_factory().start()


class BrokerControl:
    """Stops and restarts the Redis the suite's broker URL points at, as an outage would.

    The web process keeps its pooled connections across the outage, which is the point: the
    product must recover from exactly that."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.url = url
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 6379

    def stop(self) -> None:
        subprocess.run(
            ["redis-cli", "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
            capture_output=True, timeout=10,
        )  # fmt: skip
        wait_for(lambda: not _port_open(self.port), timeout=10)

    def start(self) -> None:
        if not _port_open(self.port):
            subprocess.run(
                ["redis-server", "--daemonize", "yes", "--bind", self.host, "--port",
                 str(self.port), "--save", "", "--appendonly", "no"],
                check=True, capture_output=True, timeout=10,
            )  # fmt: skip
        wait_for(lambda: _port_open(self.port), timeout=10)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def broker() -> Iterator[BrokerControl]:
    url = settings.CELERY_BROKER_URL
    parsed = urlparse(url)
    if parsed.scheme != "redis" or parsed.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("the broker outage is staged with the local Redis (as in CI)")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    control = BrokerControl(url)
    yield control
    control.start()  # whatever happened, leave the broker running for the rest of the suite
