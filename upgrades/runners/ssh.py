"""Commands run on an environment's host over SSH, as local commands run on the worker: an
argument list (quoted with ``shlex.join``, never a shell string made of someone's input), a time
limit, an output cap, live output, cancel, and the remote process group stopped at the limit and
on request. The connection and its keys are in ``upgrades.runners.ssh_connect``; the run's files
on the host (scratch folder, upload, fetch) in ``upgrades.runners.ssh_files``.

How the remote process is found and stopped: sshd starts every command in a session of its own
(``setsid``), so the wrapper shell's pid is also its process group. The wrapper (see
``remote_command``) names that group on its first stderr line, runs the command in the group
with stdout and stderr merged, and keeps a watchdog that reads the channel's stdin: at the time
limit, on cancel, or when the command exits leaving stragglers, a second channel on the same
connection runs ``kill -TERM -<pgid>`` and, after the grace, ``kill -KILL``; when the worker dies
and the connection drops, the watchdog does the same on the host by itself.
"""

from __future__ import annotations

import contextlib
import re
import select
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import paramiko

from upgrades.runners._common import _READ_CHUNK, KILL_GRACE_S, Outcome, _seconds
from upgrades.runners.commands import (
    RUN_KEY_VARIABLE,
    RUN_MARK_VARIABLE,
    CommandResult,
    _command_label,
    _last_line,
    _Output,
)
from upgrades.runners.ssh_connect import CONNECT_TIMEOUT_S, SshTarget, _connect, _connect_problem
from upgrades.runners.ssh_files import (
    RemoteFetch,
    RemoteUpload,
    _fetch,
    _HostFileProblem,
    _keeper_start,
    _open_sftp,
    _remove_folder,
    _run_folder,
    _upload,
)

PID_MARKER = b"mycelia-ssh-pid="
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SshCommandResult(CommandResult):
    fetched: Any = None  # what RemoteFetch.store kept, when the file came back


# --- the remote command ------------------------------------------------------------------------


# Why a watchdog that reads stdin, and not a pty: with a pty, sshd hangs the terminal up when the
# connection drops, but SIGHUP reaches only the session leader and the foreground group, and a
# process that ignores it (nohup, ``trap '' HUP``, most daemons) or runs in the background lives
# on. Without a pty sshd signals nothing at all. What every dropped connection does do is close
# the command's stdin: the watchdog waits for that end-of-file, then sends SIGTERM to the whole
# process group (grandchildren included), SIGKILL after the grace (which nothing can ignore),
# and SIGKILL to any process that still carries the run's mark (one that left the group with
# setsid), and removes the run's scratch folder. The command's own stdin stays empty
# (/dev/null), as for local commands; as a background job it starts with SIGINT and SIGQUIT
# ignored (POSIX), which nothing here sends.
_WRAPPER = (
    'echo "mycelia-ssh-pid=$$" >&2; '
    'if [ -n "$1" ]; then cd "$1" || exit 126; fi; '
    "d=$2; g=$3; m=$4; shift 4; "
    "exec 3<&0; "
    '"$@" </dev/null 3<&- 2>&1 & c=$!; '
    "( while read -r _; do :; done; trap '' TERM HUP INT; kill -TERM -$$ 2>/dev/null; "
    'sleep "$g"; MARK_SWEEP if [ -n "$d" ]; then rm -rf -- "$d"; fi; kill -KILL -$$ '
    ") <&3 >/dev/null 2>&1 & w=$!; "
    "exec 3<&-; "
    'wait "$c"; s=$?; kill -KILL "$w" 2>/dev/null; '
    # A command killed by a signal: the wrapper dies of it too, as sshd reports it so.
    'case $s in 129|130|131|134|137|141|143) kill -s "$((s - 128))" $$;; esac; exit "$s"'
)
# Every process left that carries the run's mark ($m): found in one pass over /proc (GNU grep).
_MARK_SWEEP = (
    'if [ -n "$m" ]; then for f in $(grep -lzxF "MYCELIA_RUN_MARK=$m" /proc/[0-9]*/environ '
    '2>/dev/null); do p=${f#/proc/}; kill -KILL "${p%/environ}" 2>/dev/null; done; fi; '
)


def remote_command(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    scratch: str | None = None,
    grace_s: float = KILL_GRACE_S,
) -> str:
    """The one string sent to sshd, every piece of it quoted by shlex.join: the wrapper (its
    pid line, the working folder, the watchdog, which also removes the run's ``scratch`` folder
    if the worker is gone) and the command as ``env NAME=value… argv…``."""
    assignments = [f"{name}={value}" for name, value in (env or {}).items()]
    command = ["env", *assignments, *argv] if assignments else list(argv)
    mark = (env or {}).get(RUN_MARK_VARIABLE, "")
    script = _WRAPPER.replace("MARK_SWEEP ", _MARK_SWEEP)
    return shlex.join(["exec", "sh", "-c", script, "mycelia", cwd or "", scratch or "",
                       f"{grace_s:g}", mark, *command])  # fmt: skip


def _kill_script(pgid: int, grace_s: float, mark: str = "") -> str:
    # "kill -TERM -<pgid>", without "--": dash, a common login shell, refuses "--" there.
    rounds = max(int(grace_s * 10), 1)
    return (
        f"p={pgid}; m={shlex.quote(mark)}; if kill -0 -$p 2>/dev/null; then "
        "kill -TERM -$p 2>/dev/null; i=0; "
        f"while [ $i -lt {rounds} ] && kill -0 -$p 2>/dev/null; do sleep 0.1; i=$((i+1)); "
        f"done; kill -KILL -$p 2>/dev/null; fi; {_MARK_SWEEP}exit 0"
    )


def _remote_kill(
    client: paramiko.SSHClient, pgid: int | None, grace_s: float, mark: str = ""
) -> str:
    """Stop the remote process group (and what carries ``mark``) over the same connection;
    "" when done, else why not."""
    if pgid is None:
        return "its process on the host was never named, so it could not be stopped"
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return "the connection was lost, so its process on the host could not be stopped"
    try:
        channel = transport.open_session(timeout=5)
        channel.settimeout(grace_s + 5)
        channel.exec_command(_kill_script(pgid, grace_s, mark))
        channel.recv_exit_status()
        channel.close()
    except (paramiko.SSHException, OSError) as exc:
        return f"stopping its process on the host failed ({exc})"
    return ""


class _Stderr:
    """Finds the pid line on stderr; anything else there is the command's output too."""

    def __init__(self, output: _Output) -> None:
        self.output = output
        self.pending = b""
        self.pgid: int | None = None

    def take(self, chunk: bytes) -> None:
        if self.pgid is not None:
            self.output.take(chunk)
            return
        self.pending += chunk
        while b"\n" in self.pending and self.pgid is None:
            line, self.pending = self.pending.split(b"\n", 1)
            if line.startswith(PID_MARKER) and line[len(PID_MARKER) :].strip().isdigit():
                self.pgid = int(line[len(PID_MARKER) :])
            else:
                self.output.take(line + b"\n")
        if self.pgid is not None and self.pending:
            self.output.take(self.pending)
            self.pending = b""


def _read_available(channel: paramiko.Channel, output: _Output, stderr: _Stderr) -> None:
    while channel.recv_stderr_ready():
        stderr.take(channel.recv_stderr(_READ_CHUNK))
    while channel.recv_ready():
        chunk = channel.recv(_READ_CHUNK)
        if not chunk:
            break
        output.take(chunk)


def _pump(
    channel: paramiko.Channel,
    output: _Output,
    stderr: _Stderr,
    deadline: float,
    should_stop: Callable[[], bool] | None,
) -> str:
    """How it ended: exited, deadline, stopped, or lost (the connection closed, no status)."""
    while True:
        _read_available(channel, output, stderr)
        if channel.exit_status_ready():
            _read_available(channel, output, stderr)
            return "exited"
        if should_stop is not None and should_stop():
            return "stopped"
        if not channel.get_transport().is_active():
            return "lost"
        if channel.closed:
            # Closed by sshd without an exit status: the command died of a signal (paramiko
            # reads exit-status, not exit-signal).
            _read_available(channel, output, stderr)
            return "exited"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "deadline"
        select.select([channel], [], [], min(remaining, 0.1))


def _await_pid(channel: paramiko.Channel, output: _Output, stderr: _Stderr, wait_s: float) -> None:
    """stdout and stderr travel apart: the command may speak (and be cancelled) before the line
    naming its process group has arrived. Wait a little for it, reading on."""
    give_up = time.monotonic() + wait_s
    while stderr.pgid is None and time.monotonic() < give_up and not channel.closed:
        _read_available(channel, output, stderr)
        if stderr.pgid is None:
            select.select([channel], [], [], 0.05)


def _drain(channel: paramiko.Channel, output: _Output, stderr: _Stderr, wait_s: float) -> None:
    """What the command wrote before it was stopped is still worth keeping."""
    give_up = time.monotonic() + wait_s
    while time.monotonic() < give_up and not channel.exit_status_ready() and not channel.closed:
        _read_available(channel, output, stderr)
        select.select([channel], [], [], 0.05)
    _read_available(channel, output, stderr)
    if stderr.pending:
        output.take(stderr.pending)
        stderr.pending = b""


def ssh_command_run(
    *,
    target: SshTarget,
    argv: Sequence[str],
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float,
    output_cap_bytes: int = 65536,
    on_output: Callable[[str], None] | None = None,
    label: str | None = None,
    kill_grace_s: float = KILL_GRACE_S,
    should_stop: Callable[[], bool] | None = None,
    run_key: str = "",
    run_mark: str = "",
    scratch: str | None = None,
    upload: RemoteUpload | None = None,
    fetch: RemoteFetch | None = None,
) -> SshCommandResult:
    """Run ``argv`` on ``target`` over SSH and report how it went, like ``command_run``.

    The time limit counts from the start, connecting included. At the limit, when
    ``should_stop()`` turns true (outcome "cancelled"), when an exception interrupts the reading
    (a Celery soft time limit), and when the command exits leaving stragglers in its group, the
    remote process group is stopped (SIGTERM, then SIGKILL after ``kill_grace_s``), and so is
    anything left that carries ``run_mark``; when the worker dies, the wrapper on the host does
    the same as soon as the connection drops. ``env`` is given to the command (with
    MYCELIA_RUN_KEY and MYCELIA_RUN_MARK) through ``env NAME=value``.

    ``scratch`` (a folder on the host, see ``remote_scratch_path``), or the folder of ``upload``
    and ``fetch`` (one folder for all), is made before the command runs and removed from the
    host whatever happened; if it cannot be made, nothing runs. With ``upload``, the worker's
    file is put there first (its size checked; the time limit and a cancel count during the
    copy); nothing runs unless it arrived whole. With ``fetch``, the command passes only when the
    file it wrote at ``fetch.path`` came back and was kept (``fetched`` holds what
    ``fetch.store`` returned); a missing or empty file fails it.
    """
    started = time.monotonic()

    def finish(outcome: Outcome, reason: str, code: int | None = None, output=None, kept=None):
        duration_ms = round((time.monotonic() - started) * 1000)
        text, truncated = (output.text, output.truncated) if output else ("", False)
        problem = output.listener_problem if output else ""
        return SshCommandResult(
            outcome, code, duration_ms, text, truncated, reason + problem, fetched=kept
        )

    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        return finish("error", f"The command cannot run: it must be a non-empty list of strings, "
                               f"not {argv!r}")  # fmt: skip
    name = f"{label or _command_label(argv)} on {target.login}"
    full_env = dict(env or {})
    if run_key:
        full_env[RUN_KEY_VARIABLE] = run_key
    if run_mark:
        full_env[RUN_MARK_VARIABLE] = run_mark
    bad = [key for key in full_env if not ENV_NAME.match(key)]
    if bad:
        return finish("error", f"{name} cannot run: “{bad[0]}” is not a variable name.")
    folder, problem = _run_folder(scratch, upload, fetch)
    if problem:
        return finish("error", f"{name} cannot run: {problem}")
    if should_stop is not None and should_stop():
        return finish("cancelled", f"{name} was stopped on request before it began.")
    try:
        client = _connect(target, min(timeout_s, CONNECT_TIMEOUT_S))
    except Exception as exc:  # noqa: BLE001 - every connection failure is said in words
        outcome, why = _connect_problem(target, exc)
        return finish(outcome, why)

    output = _Output(output_cap_bytes, on_output)
    stderr = _Stderr(output)
    ending = "lost"
    kill_problem = left_behind = ""
    ended = False
    code: int | None = None
    sftp: paramiko.SFTPClient | None = None
    keeper: paramiko.Channel | None = None  # while open, the run's folder on the host is kept
    kept: Any = None
    not_fetched: _HostFileProblem | None = None
    not_run: _HostFileProblem | None = None
    early = ""  # "deadline" or "stopped" while the file was put on the host: nothing ran
    try:
        transport = client.get_transport()
        assert transport is not None
        try:
            if folder is not None:
                keeper = _keeper_start(client, folder, min(timeout_s, CONNECT_TIMEOUT_S))
            if upload is not None or fetch is not None:
                sftp = _open_sftp(client, "put its file there" if upload else "bring its file back")
            if upload is not None and sftp is not None:
                early = _upload(sftp, upload, started + timeout_s, should_stop)
        except _HostFileProblem as refused:
            not_run = refused
        if not_run is None and not early:
            channel = transport.open_session(timeout=min(timeout_s, CONNECT_TIMEOUT_S))
            channel.exec_command(
                remote_command(argv, cwd=cwd, env=full_env, scratch=folder, grace_s=kill_grace_s)
            )
            # The channel's stdin stays open and silent: the command reads /dev/null, the
            # wrapper's watchdog reads this, and its end (the connection dropped) stops all.
            ending = _pump(channel, output, stderr, started + timeout_s, should_stop)
            if ending in ("deadline", "stopped"):
                _await_pid(channel, output, stderr, wait_s=CONNECT_TIMEOUT_S)
                kill_problem = _remote_kill(client, stderr.pgid, kill_grace_s, run_mark)
                _drain(channel, output, stderr, wait_s=kill_grace_s + 1)
            elif ending == "exited" and stderr.pgid is not None:
                _drain(channel, output, stderr, wait_s=0)
                # stragglers do not outlive it, nor write into its file while it is read back
                _remote_kill(client, stderr.pgid, kill_grace_s, run_mark)
            else:
                _drain(channel, output, stderr, wait_s=0)
            code = channel.exit_status if channel.exit_status_ready() else None
            if sftp is not None and fetch is not None and ending == "exited" and code == 0:
                try:
                    kept = _fetch(sftp, fetch, name)
                except _HostFileProblem as problem:
                    not_fetched = problem
        ended = True
    except (paramiko.SSHException, OSError) as exc:
        ended = True
        kill_problem = _remote_kill(client, stderr.pgid, kill_grace_s, run_mark)
        return finish("error", f"{name} broke off: {exc}" + (f"; {kill_problem}" if kill_problem
                                                            else ""), output=output)  # fmt: skip
    finally:
        if not ended:
            # Interrupted mid-read (a soft time limit): the remote group still goes first.
            _remote_kill(client, stderr.pgid, kill_grace_s, run_mark)
        if sftp is not None:
            with contextlib.suppress(Exception):
                sftp.close()
        if keeper is not None and folder is not None:
            left_behind = _remove_folder(client, folder)
            with contextlib.suppress(Exception):
                keeper.close()
        if not output.truncated:
            output.finish()
        with contextlib.suppress(Exception):
            client.close()

    took = _seconds(round((time.monotonic() - started), 1))
    also = f" ({kill_problem})" if kill_problem else ""
    tidy = f" ({left_behind})" if left_behind else ""
    if not_run is not None:
        return finish(not_run.outcome, f"{name} was not run: {not_run.reason}{tidy}")
    if early == "deadline":
        return finish("timed_out", f"{name} was not run: its file was still on its way to the "
                                   f"host when the time limit of {_seconds(timeout_s)} "
                                   f"passed{tidy}")  # fmt: skip
    if early == "stopped":
        return finish("cancelled", f"{name} was stopped on request before it began, while its "
                                   f"file was put on the host{tidy}")  # fmt: skip
    if ending == "deadline":
        return finish("timed_out", f"{name} did not finish within {_seconds(timeout_s)} and was "
                                   f"killed{also}{tidy}", output=output)  # fmt: skip
    if ending == "stopped":
        return finish("cancelled", f"{name} was stopped on request after {took}{also}{tidy}",
                      output=output)  # fmt: skip
    if ending == "lost":
        return finish("error", f"{name}: the connection closed after {took} before the command "
                               "reported how it ended; its outcome on the host is unknown",
                      output=output)  # fmt: skip
    if code == 0:
        if not_fetched is not None:
            return finish(not_fetched.outcome, f"{not_fetched.reason}{tidy}", 0, output)
        return finish("passed", f"{name} finished in {took}{tidy}", 0, output, kept)
    cause = "was killed by a signal" if code is None or code < 0 else f"exited with code {code}"
    last = _last_line(output.tail.decode("utf-8", errors="replace"))
    reason = f"{name} {cause} after {took}" + (f": {last}" if last else "")
    return finish("failed", reason + tidy, None if code is None or code < 0 else code, output)
