"""Commands run without a shell, with a time limit, an output cap, and their whole process tree
stopped at the limit, on request, and when the worker running them dies."""

from __future__ import annotations

import codecs
import contextlib
import os
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from upgrades.runners._common import (
    _READ_CHUNK,
    KILL_GRACE_S,
    Outcome,
    _seconds,
)

# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    exit_code: int | None
    duration_ms: int
    output: str
    truncated: bool
    reason: str


def _command_label(argv: Sequence[str]) -> str:
    shown = shlex.join([Path(argv[0]).name, *argv[1:]])
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in the group.

    On Linux this reads /proc, because a container's init may never reap orphans and
    their zombies would look alive to ``killpg(pgid, 0)`` forever.
    """
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


SUPERVISOR = Path(__file__).with_name("_supervise.py")
RUN_KEY_VARIABLE = "MYCELIA_RUN_KEY"
RUN_MARK_VARIABLE = "MYCELIA_RUN_MARK"


def _kept(argv: list[str], grace_s: float) -> list[str]:
    """On Linux the command runs under its keeper (``_supervise.py``): a child subreaper that
    stops the whole tree, grandchildren included, when the command ends, when it is told to stop
    and when the worker dies. Elsewhere the argument list is run as it is, in its own group."""
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        return [sys.executable, "-I", "-S", str(SUPERVISOR), str(os.getpid()), f"{grace_s:g}",
                "--", *argv]  # fmt: skip
    return argv


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole process group, give it ``grace_s`` to go, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    # The keeper needs its own grace to stop the tree below it; a little more is allowed here.
    give_up = time.monotonic() + grace_s + 0.5
    while time.monotonic() < give_up:
        proc.poll()  # reap the leader, or its zombie keeps the group alive
        if not _group_alive(proc.pid):
            break
        time.sleep(0.02)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _environ_has(pid: str, entry: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return entry in b"\0" + environ.read() + b"\0"
    except OSError:
        return False


def run_processes_kill(*, pgid: int | None, mark: str) -> int:
    """SIGKILL whatever is left of a run whose worker died: the processes that carry the run's
    mark (MYCELIA_RUN_MARK, inherited by every descendant, even one that left the group) and
    the rest of their process group. Returns how many processes were signalled.

    Linux reads /proc, so a process group number reused by an unrelated program since is left
    alone; elsewhere the recorded group is killed as it is."""
    if not os.path.isdir("/proc/self"):
        if not pgid:
            return 0
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return 0
        return 1
    if not mark:
        return 0
    entry = b"\0" + f"{RUN_MARK_VARIABLE}={mark}".encode() + b"\0"
    killed = 0
    # Again until nothing is left: a process may fork between one look and the kill.
    for _ in range(100):
        doomed = _marked_processes(entry, pgid) - {os.getpid()}
        if not doomed:
            break
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.01)
    return killed


def _marked_processes(entry: bytes, pgid: int | None) -> set[int]:
    """The live processes whose environment holds ``entry``, and the rest of group ``pgid`` if
    any of them is in it."""
    marked: set[int] = set()
    groups: dict[int, set[int]] = {}
    for proc_entry in os.scandir("/proc"):
        if not proc_entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{proc_entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] in ("Z", "X"):
            continue
        pid = int(proc_entry.name)
        groups.setdefault(int(fields[2]), set()).add(pid)
        if _environ_has(proc_entry.name, entry):
            marked.add(pid)
    if pgid and groups.get(pgid, set()) & marked:
        return marked | groups[pgid]
    return marked


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class _Output:
    """Keeps the first ``cap`` bytes of a command's output and hands them on as text."""

    def __init__(self, cap: int, on_output: Callable[[str], None] | None) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        self.tail = b""  # the last bytes, even past the cap, so a failure's reason can quote them
        self.listener_problem = ""
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _deliver(self, text: str) -> None:
        if not text or self._on_output is None:
            return
        try:
            self._on_output(text)
        except Exception as exc:  # noqa: BLE001 - a broken listener must not orphan the process
            self.listener_problem = f" (live output stopped: {exc})"
            self._on_output = None

    def take(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-2048:]
        if self.truncated:
            return
        room = self.cap - len(self.kept)
        self.kept.extend(chunk[:room])
        self._deliver(self._decoder.decode(chunk[:room]))
        if len(chunk) > room:
            self.truncated = True
            self.finish()

    def finish(self) -> None:
        self._deliver(self._decoder.decode(b"", final=True))

    @property
    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def _pump(
    proc: subprocess.Popen[bytes],
    output: _Output,
    deadline: float,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Read the output until the command exits; "exited", or "deadline" when it is still
    running at the deadline, or "stopped" as soon as ``should_stop()`` says so."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    reading = True
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while True:
            if should_stop is not None and should_stop():
                return "stopped"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "exited" if proc.poll() is not None else "deadline"
            if not reading:
                # Every writer closed the output; the command may still be running.
                try:
                    proc.wait(timeout=min(remaining, 0.1))
                except subprocess.TimeoutExpired:
                    continue
                return "exited"
            if selector.select(timeout=min(remaining, 0.1)):
                try:
                    chunk = os.read(fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    reading = False  # end of output: every writer has closed it
                    continue
                output.take(chunk)
            elif proc.poll() is not None:
                return "exited"  # and only a detached descendant still holds the pipe


def _drain(proc: subprocess.Popen[bytes], output: _Output) -> None:
    # Whatever was written before the end is still worth keeping.
    assert proc.stdout is not None
    with contextlib.suppress(OSError):
        while chunk := os.read(proc.stdout.fileno(), _READ_CHUNK):
            output.take(chunk)
    proc.stdout.close()
    if not output.truncated:
        output.finish()


def command_run(
    *,
    argv: Sequence[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float,
    output_cap_bytes: int = 65536,
    on_output: Callable[[str], None] | None = None,
    label: str | None = None,
    kill_grace_s: float = KILL_GRACE_S,
    on_start: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    run_key: str = "",
    run_mark: str = "",
) -> CommandResult:
    """Run ``argv`` (a list, never through a shell) and report how it went.

    stdout and stderr are merged in order. ``env`` is added to this process's environment
    (commands need PATH and HOME as much as their own variables). ``on_output`` receives
    text as it arrives, up to the cap; the result keeps the same first ``output_cap_bytes``.

    The command runs in its own session and process group, under its keeper on Linux (see
    ``_supervise.py``); ``on_start(pgid)`` hears the group's number as soon as it exists.
    Nothing it starts outlives it: the whole tree is stopped at the time limit, when
    ``should_stop()`` turns true (outcome "cancelled"), when an exception (a Celery soft time
    limit) interrupts the reading, and, by the keeper, when the worker dies. ``run_key`` is
    given to the command as MYCELIA_RUN_KEY (an idempotency key it may use), ``run_mark`` as
    MYCELIA_RUN_MARK (by which ``run_processes_kill`` finds what is left of a run).
    """
    started = time.monotonic()

    def cannot_run(why: str) -> CommandResult:
        duration_ms = round((time.monotonic() - started) * 1000)
        return CommandResult("error", None, duration_ms, "", False, f"{name} cannot run: {why}")

    name = "The command"
    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        return cannot_run(f"it must be a non-empty list of strings, not {argv!r}")
    name = label or _command_label(argv)
    if cwd is not None and not Path(cwd).is_dir():
        return cannot_run(f"the working directory {cwd} does not exist")
    # Looked up here, not left to exec: behind the keeper a missing program is only an exit code.
    search_path = (env or {}).get("PATH", os.environ.get("PATH"))
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=search_path)
    if program is None or not Path(cwd or ".", program).exists():
        return cannot_run(f"{argv[0]} was not found (is it installed and on PATH?)")
    if not os.access(Path(cwd or ".", program), os.X_OK):
        return cannot_run(f"{argv[0]} is not executable")
    full_env = {**os.environ, **(env or {})}
    if run_key:
        full_env[RUN_KEY_VARIABLE] = run_key
    if run_mark:
        full_env[RUN_MARK_VARIABLE] = run_mark
    try:
        proc = subprocess.Popen(
            _kept(list(argv), kill_grace_s),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        return cannot_run(f"{argv[0]} was not found (is it installed and on PATH?)")
    except PermissionError:
        return cannot_run(f"{argv[0]} is not executable")
    except OSError as exc:
        return cannot_run(str(exc))

    output = _Output(output_cap_bytes, on_output)
    ended = False
    try:
        if on_start is not None:
            on_start(proc.pid)  # the process group is the command's own: pgid == pid
        ending = _pump(proc, output, started + timeout_s, should_stop)
        # Even a command that exited may have left stragglers in its group: none outlive it.
        if ending != "exited" or _group_alive(proc.pid):
            _kill_group(proc, kill_grace_s)
        _drain(proc, output)
        ended = True
    finally:
        if not ended:
            # Something broke in here (a Celery soft time limit raised mid-read, say): the
            # whole group still goes before the exception does.
            _kill_group(proc, kill_grace_s)
            with contextlib.suppress(OSError):
                proc.stdout.close()  # type: ignore[union-attr]

    duration_ms = round((time.monotonic() - started) * 1000)
    took = _seconds(round(duration_ms / 1000, 1))
    code = proc.returncode if ending == "exited" else None
    if ending == "deadline":
        outcome: Outcome = "timed_out"
        reason = f"{name} did not finish within {_seconds(timeout_s)} and was killed"
    elif ending == "stopped":
        outcome, reason = "cancelled", f"{name} was stopped on request after {took}"
    elif code == 0:
        outcome, reason = "passed", f"{name} finished in {took}"
    else:
        outcome = "failed"
        try:
            cause = (
                f"was killed by {signal.Signals(-code).name}"
                if code < 0
                else f"exited with code {code}"
            )
        except ValueError:
            cause = f"was killed by signal {-code}"
        last = _last_line(output.tail.decode("utf-8", errors="replace"))
        reason = f"{name} {cause} after {took}" + (f": {last}" if last else "")
    return CommandResult(
        outcome, code, duration_ms, output.text, output.truncated, reason + output.listener_problem
    )
