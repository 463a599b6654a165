"""`make run`: migrate, seed the playbook and a demo, then run the web server, a Celery worker,
the scheduler and the demo Mycelia target side by side until Ctrl-C.

Honours PORT (default 8000), DEMO_TARGET_PORT (default 8100), MYCELIA_DATA_DIR (default data/)
and DATABASE_URL; with neither of the last two set it uses SQLite and the filesystem broker
under data/, so nothing but Python is needed.

Stopping stops: Ctrl-C, SIGTERM or SIGHUP ends every process this started within ten seconds.
Each child runs in a process group of its own; it is asked to stop (SIGTERM, then once more:
granian can miss a SIGTERM that arrives while a worker is still starting, and a second one puts
the Celery worker into its cold shutdown), and whatever is still alive after STOP_GRACE_SECONDS
is killed, whole group at once. When one child dies by itself the runner names it, stops the
others and exits non-zero. A port already in use is reported before anything starts.
The children's ids are kept in <data folder>/run.pids while they run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Asked to stop at 0 s, asked again at ASK_AGAIN_SECONDS, killed at STOP_GRACE_SECONDS: well
# inside the ten seconds a process manager (or a person at a terminal) is promised.
ASK_AGAIN_SECONDS = 3.0
STOP_GRACE_SECONDS = 7.0
READY_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.1
PID_FILE = "run.pids"


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    # The second request to stop: Celery's worker goes from a warm to a cold shutdown on SIGQUIT.
    again: signal.Signals = signal.SIGTERM
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        # A session (and so a process group) of its own: a Ctrl-C at the terminal reaches the
        # runner only, which stops the children in order, and a kill reaches a whole tree.
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL to the child's whole process group, stragglers included."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)


class Runner:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested: str | None = None
        self.force = False

    def on_signal(self, signum: int, _frame: object) -> None:
        if self.stop_requested is not None:
            self.force = True  # asked twice: do not wait any longer
        self.stop_requested = signal.Signals(signum).name

    def stop_all(self) -> None:
        """Ask every child to stop, ask again, then kill the groups of those still alive; returns
        once every child has been reaped and its group is gone."""
        started = time.monotonic()
        for child in self.children:
            child.signal(signal.SIGTERM)
        asked_again = False
        while any(child.alive() for child in self.children):
            elapsed = time.monotonic() - started
            if self.force or elapsed >= STOP_GRACE_SECONDS:
                break
            if not asked_again and elapsed >= ASK_AGAIN_SECONDS:
                asked_again = True
                for child in self.children:
                    child.signal(child.again)
            time.sleep(POLL_SECONDS)
        for child in self.children:
            if child.alive():
                print(f"{child.name} (pid {child.pid}) did not stop in time; killing it.")
            # Also for those that stopped: nothing they started may outlive them.
            child.kill_group()
        for child in self.children:
            if child.proc is not None:
                child.proc.wait()


def data_dir() -> Path:
    """The folder everything the product writes goes to; the children are told the same."""
    return Path(os.environ.get("MYCELIA_DATA_DIR") or ROOT / "data").resolve()


def port_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        port = int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a port number, not {raw!r}.") from None
    if not 0 < port < 65536:
        raise SystemExit(f"{name} must be a port number between 1 and 65535, not {port}.")
    return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on the port. A plain bind (SO_REUSEADDR for leftover
    TIME_WAIT connections, never SO_REUSEPORT) fails even against a server that binds with
    SO_REUSEPORT, as granian does, which would otherwise silently share the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    port = port_from_env("PORT", 8000)
    demo_port = port_from_env("DEMO_TARGET_PORT", 8100)
    if port == demo_port:
        print(f"PORT and DEMO_TARGET_PORT are both {port}; give them different ports.")
        return 2
    for name, number in (("PORT", port), ("DEMO_TARGET_PORT", demo_port)):
        if port_in_use(number):
            print(
                f"Port {number} ({name}) is already in use on 127.0.0.1: another `make run` or "
                f"another server is listening there. Stop it, or start with {name}=<free port>.",
                file=sys.stderr,
            )
            return 2

    data = data_dir()
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MYCELIA_DATA_DIR": str(data)}
    env.setdefault("DJANGO_SETTINGS_MODULE", "mycelia_ops.settings")
    # Links in mails and on the status page point where this run serves.
    env.setdefault("MYCELIA_BASE_URL", f"http://127.0.0.1:{port}")
    manage = [sys.executable, str(ROOT / "manage.py")]

    # SIGTERM while migrating or seeding ends those as a Ctrl-C would (subprocess.run kills its
    # child when interrupted).
    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    try:
        subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], check=True, cwd=ROOT, env=env)
        subprocess.run([*manage, "comms_seed"], check=True, cwd=ROOT, env=env, capture_output=True)
        seed = subprocess.run(
            [*manage, "seed", "--demo", f"--demo-url=http://127.0.0.1:{demo_port}"],
            check=True,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
    except KeyboardInterrupt:
        return 130
    except subprocess.CalledProcessError as exc:
        print(f"`{' '.join(exc.cmd[1:3])}` failed with exit code {exc.returncode}.")
        print((exc.stderr or "") if isinstance(exc.stderr, str) else (exc.stderr or b"").decode())
        return 1

    runner = Runner()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, runner.on_signal)
    web_env = {**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_ACCESS_LOG": "true"}
    runner.children = [
        Child("demo-target", [*manage, "demo_target", "--port", str(demo_port)], env),
        Child(
            "worker",
            [
                str(BIN / "celery"), "-A", "mycelia_ops", "worker", "-l", "warning",
                "--concurrency", "2", "-n", "worker@%h",
            ],
            env,
            again=signal.SIGQUIT,
        ),
        Child(
            "scheduler",
            [
                str(BIN / "celery"), "-A", "mycelia_ops", "beat", "-l", "warning",
                "-s", str(data / "celerybeat-schedule"),
            ],
            env,
        ),
        # The production server (mycelia_ops.serve), on this machine only, logging each request.
        Child("web", [sys.executable, "-m", "mycelia_ops.serve"], web_env),
    ]  # fmt: skip
    pid_file = data / PID_FILE
    try:
        for child in runner.children:
            if runner.stop_requested:
                break
            child.start()
        pid_file.write_text(
            json.dumps(
                {"runner": os.getpid(), **{c.name: c.pid for c in runner.children if c.proc}}
            )
        )
        return _supervise(runner, port, seed.stdout)
    finally:
        runner.stop_all()
        pid_file.unlink(missing_ok=True)


def _supervise(runner: Runner, port: int, seed_output: str) -> int:
    """Until a signal asks to stop (exit 0) or a child dies by itself (exit non-zero)."""
    announced = False
    started = time.monotonic()
    while runner.stop_requested is None:
        for child in runner.children:
            if not child.alive():
                code = child.proc.returncode if child.proc else None
                print(
                    f"\n{child.name} (pid {child.pid if child.proc else '-'}) stopped by itself "
                    f"with exit code {code}; stopping the others.",
                    file=sys.stderr,
                    flush=True,
                )
                return code if code and code > 0 else 1
        if not announced and answers(port):
            announced = True
            print("\n" + "=" * 64)
            print(f"  Mycelia Ops is running at http://127.0.0.1:{port}/")
            print(seed_output.rstrip())
            print("  Set-up (environments, hooks, people): sign in as admin at /setup/")
            print("  Stop with Ctrl-C.")
            print("=" * 64 + "\n", flush=True)
        elif not announced and time.monotonic() - started > READY_TIMEOUT_SECONDS:
            print(f"The web server did not answer on port {port} in time; stopping.")
            return 1
        time.sleep(POLL_SECONDS)
    print(f"\nStopping ({runner.stop_requested})…", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
