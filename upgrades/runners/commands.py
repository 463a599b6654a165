"""Commands run without a shell, with a time limit, an output cap and their whole process group killed at the limit."""

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


def _dying_with_parent(argv: list[str]) -> list[str]:
    """Have Linux kill the command if the worker running it dies (setpriv's parent-death
    signal), so a crashed worker leaves no orphan finishing the work behind a retry's back.
    Elsewhere the argument list is run as it is."""
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return argv


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole process group, give it ``grace_s`` to go, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    give_up = time.monotonic() + grace_s
    while time.monotonic() < give_up:
        proc.poll()  # reap the leader, or its zombie keeps the group alive
        if not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


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


def _pump(proc: subprocess.Popen[bytes], output: _Output, deadline: float) -> bool:
    """Read the output until it ends or the deadline passes; True when the command is still
    running at the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(timeout=min(remaining, 0.2)):
                try:
                    chunk = os.read(fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    break  # end of output: every writer has closed it
                output.take(chunk)
            elif proc.poll() is not None:
                break  # exited, and only a detached descendant still holds the pipe
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.05))
    except subprocess.TimeoutExpired:
        return True
    return False


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
) -> CommandResult:
    """Run ``argv`` (a list, never through a shell) and report how it went.

    stdout and stderr are merged in order. ``env`` is added to this process's environment
    (commands need PATH and HOME as much as their own variables). ``on_output`` receives
    text as it arrives, up to the cap; the result keeps the same first ``output_cap_bytes``.
    The command runs in its own process group, so on timeout the whole group is stopped,
    children too.
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
    # Looked up here, not left to exec: behind setpriv a missing program is only an exit code.
    search_path = (env or {}).get("PATH", os.environ.get("PATH"))
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=search_path)
    if program is None or not Path(cwd or ".", program).exists():
        return cannot_run(f"{argv[0]} was not found (is it installed and on PATH?)")
    if not os.access(Path(cwd or ".", program), os.X_OK):
        return cannot_run(f"{argv[0]} is not executable")
    try:
        proc = subprocess.Popen(
            _dying_with_parent(list(argv)),
            cwd=cwd,
            env={**os.environ, **env} if env is not None else None,
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
    timed_out = _pump(proc, output, started + timeout_s)
    if timed_out:
        _kill_group(proc, kill_grace_s)
    _drain(proc, output)

    duration_ms = round((time.monotonic() - started) * 1000)
    code = None if timed_out else proc.returncode
    if timed_out:
        outcome: Outcome = "timed_out"
        reason = f"{name} did not finish within {_seconds(timeout_s)} and was killed"
    elif code == 0:
        outcome, reason = "passed", f"{name} finished in {_seconds(round(duration_ms / 1000, 1))}"
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
        reason = f"{name} {cause} after {_seconds(round(duration_ms / 1000, 1))}" + (
            f": {last}" if last else ""
        )
    return CommandResult(
        outcome, code, duration_ms, output.text, output.truncated, reason + output.listener_problem
    )
