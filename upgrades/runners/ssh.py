"""Commands run on an environment's host over SSH, as local commands run on the worker: an
argument list (quoted with ``shlex.join``, never a shell string made of someone's input), a time
limit, an output cap, live output, cancel, and the remote process group stopped at the limit and
on request.

Library: paramiko. It is synchronous like every runner here (a worker thread reads, nothing else
runs an event loop), mature and widely used, and gives exact control of host keys: the
configured key is the only one known, and ``RejectPolicy`` refuses anything else, so a host is
never trusted on first use and a changed key fails the run naming both fingerprints.

How the remote process is found and stopped: sshd starts every command in a session of its own
(``setsid``), so the wrapper shell's pid is also its process group. The wrapper (see
``remote_command``) names that group on its first stderr line, runs the command in the group
with stdout and stderr merged, and keeps a watchdog that reads the channel's stdin: at the time
limit, on cancel, or when the command exits leaving stragglers, a second channel on the same
connection runs ``kill -TERM -<pgid>`` and, after the grace, ``kill -KILL``; when the worker dies
and the connection drops, the watchdog does the same on the host by itself.

Files on the host live in a scratch folder of the run's own (``scratch``, or the folder of
``upload`` / ``fetch``): made before the command (mode 700, refused if anything is there), removed
after it whatever happened. A database restore's backup is put there over SFTP (``upload``) and
its size checked before the command runs; a database backup's dump is read back from there over
SFTP (``fetch``) once the command has passed, into whatever ``fetch.store`` keeps it in; a dry
run just gets the folder. All of it on the same connection, with the same verified host key. The
folder is made by a small "keeper" on a channel of its own that removes it as soon as the
connection drops, so a worker that dies while a file is on its way leaves nothing behind either.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import os
import posixpath
import re
import secrets
import select
import shlex
import socket
import stat
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

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

PID_MARKER = b"mycelia-ssh-pid="
FILE_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*_FILE$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEY_TYPE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+)$")
CONNECT_TIMEOUT_S = 15.0
_UPLOAD_CHUNK = 64 * 1024


class SshSetupProblem(ValueError):
    """A host's settings cannot work (a host key that is not one, a private key not found)."""


@dataclass(frozen=True)
class SshTarget:
    """Where and as whom to run: what an EnvironmentHost row says, free of Django."""

    address: str
    port: int
    user: str
    host_key: str  # one public key line: "ssh-ed25519 AAAA... [comment]" (known_hosts too)
    private_key_file: str  # a path on the worker, or the name of a *_FILE variable holding one

    @property
    def login(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.user}@{address}:{self.port}"


# Where a dump written on a host waits to be read back: a fresh folder of its own (mode 700,
# named with 64 random bits, so no one can have made it beforehand), removed afterwards.
# /var/tmp rather than /tmp: on most systems it is on disk, where /tmp may be a small tmpfs.
REMOTE_SCRATCH_BASE = "/var/tmp"


@dataclass(frozen=True)
class RemoteUpload:
    """A file of the worker's put on the host over SFTP before the command runs (a backup for a
    restore hook): ``local`` on the worker, ``path`` on the host (absolute, inside the run's
    scratch folder, see ``remote_scratch_path``); ``size`` is what it must hold there, else
    nothing runs."""

    path: str
    local: str
    size: int

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)


@dataclass(frozen=True)
class RemoteFetch:
    """A file the command writes on the host, read back over SFTP once the command has passed.

    ``path`` is absolute, inside a folder the runner makes before the command and removes after
    it (see ``remote_scratch_path``); ``store(handle, size)`` reads the open file (``size`` bytes)
    and returns what it kept, which the result carries as ``fetched``."""

    path: str
    store: Callable[[IO[bytes], int], Any]

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)


def remote_scratch_path(name: str, *, tag: str, base: str | None = None) -> str:
    """A path for ``name`` in a folder of its own on the host (under ``base``, by default
    REMOTE_SCRATCH_BASE), not yet made."""
    safe_tag = re.sub(r"[^A-Za-z0-9_.-]+", "-", tag)[:60]
    folder = f"mycelia-{safe_tag}-{secrets.token_hex(8)}"
    return posixpath.join(base or REMOTE_SCRATCH_BASE, folder, name)


@dataclass(frozen=True)
class SshCommandResult(CommandResult):
    fetched: Any = None  # what RemoteFetch.store kept, when the file came back


# --- keys --------------------------------------------------------------------------------------


def host_key_parse(text: str) -> paramiko.PKey:
    """The public key in one line of a .pub or known_hosts file; SshSetupProblem otherwise."""
    parts = (text or "").strip().split()
    for index, part in enumerate(parts[:-1]):
        if KEY_TYPE.match(part):
            try:
                blob = base64.b64decode(parts[index + 1], validate=True)
                return paramiko.PKey.from_type_string(part, blob)
            except Exception as exc:  # noqa: BLE001 - binascii, SSHException, ValueError...
                raise SshSetupProblem(
                    f"The host key “{part} {parts[index + 1][:16]}…” is not a valid key ({exc})."
                ) from None
    raise SshSetupProblem(
        "The host key is one line such as “ssh-ed25519 AAAAC3Nz…”, as in the host's "
        "/etc/ssh/ssh_host_ed25519_key.pub or a known_hosts line (ssh-keyscan prints them)."
    )


def key_fingerprint(key: paramiko.PKey) -> str:
    """SHA256:… as OpenSSH shows it (ssh-keygen -lf)."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def private_key_path(source: str, environ: Mapping[str, str] | None = None) -> str:
    """The file that holds the private key: ``source`` itself, or the path held by the
    ``*_FILE`` variable it names."""
    source = (source or "").strip()
    if FILE_VARIABLE.match(source):
        value = (os.environ if environ is None else environ).get(source, "").strip()
        if not value:
            raise SshSetupProblem(
                f"The private key's variable {source} is not set on the worker: set it to the "
                "path of the key file (a mounted secret)."
            )
        return value
    if not source.startswith("/"):
        raise SshSetupProblem(
            "The private key is an absolute file path on the worker (e.g. "
            "/run/secrets/mycelia_ssh_key) or a variable name ending in _FILE."
        )
    return source


def private_key_load(source: str) -> paramiko.PKey:
    path = private_key_path(source)
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        raise SshSetupProblem(
            f"The private key file {path} does not exist on the worker."
        ) from None
    except PermissionError:
        raise SshSetupProblem(f"The worker may not read the private key file {path}.") from None
    except paramiko.PasswordRequiredException:
        raise SshSetupProblem(
            f"The private key in {path} is protected by a passphrase; the worker needs a key "
            "without one, kept as a secret file."
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise SshSetupProblem(f"The file {path} does not hold a private key ({exc}).") from None


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


def _connect(target: SshTarget, timeout_s: float) -> paramiko.SSHClient:
    """A connection that trusts only the configured host key. Raises SshSetupProblem for the
    settings, paramiko/socket errors for the connection."""
    known = host_key_parse(target.host_key)
    pkey = private_key_load(target.private_key_file)
    client = paramiko.SSHClient()
    name = target.address if target.port == 22 else f"[{target.address}]:{target.port}"
    client.get_host_keys().add(name, known.get_name(), known)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            hostname=target.address,
            port=target.port,
            username=target.user,
            pkey=pkey,
            timeout=timeout_s,
            banner_timeout=timeout_s,
            auth_timeout=timeout_s,
            channel_timeout=timeout_s,
            allow_agent=False,
            look_for_keys=False,
        )
    except BaseException:
        client.close()
        raise
    transport = client.get_transport()
    assert transport is not None
    transport.set_keepalive(15)
    return client


def _connect_problem(target: SshTarget, exc: BaseException) -> tuple[Outcome, str]:
    where = target.login
    if isinstance(exc, SshSetupProblem):
        return "error", str(exc)
    if isinstance(exc, paramiko.BadHostKeyException):
        return "error", (
            f"The host key of {where} has changed: it showed {exc.key.get_name()} "
            f"{key_fingerprint(exc.key)}, the set-up expects {exc.expected_key.get_name()} "
            f"{key_fingerprint(exc.expected_key)}. Nothing was run. If the host was rebuilt, "
            "put its new key on the set-up page; if not, someone may be in between."
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return "error", (
            f"{where} refused the private key ({exc}): is its public key in "
            f"~{target.user}/.ssh/authorized_keys on the host?"
        )
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed_out", f"{where} did not answer in time; nothing was run."
    text = str(exc)
    if "host key" in text.lower() or "hostkey" in text.lower():
        return "error", (
            f"{where} does not show the host key the set-up expects ({text}); nothing was run. "
            "Check the host's key type and value on the set-up page."
        )
    return "error", f"Cannot connect to {where}: {text or type(exc).__name__}."


class _HostFileProblem(Exception):
    """The run's folder or file on the host did not work out: its outcome and why, in words."""

    def __init__(self, outcome: Outcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


# The keeper of a run's scratch folder, on a channel of its own: it makes the folder (mkdir fails
# if anything is there: the runner removes only what it made), says "made", then reads its stdin
# until that ends, and removes the folder. The run closes the channel once it has removed the
# folder itself; when the worker dies instead, the connection drops, sshd closes that stdin, and
# the keeper removes the folder at once: a backup half uploaded, a dump being read back, nothing
# stays on the host. It carries no run mark and runs in a session of its own (sshd), so stopping
# the command never stops it.
_KEEPER = 'mkdir -m 700 -- "$1" || exit 1; echo made; while read -r _; do :; done; rm -rf -- "$1"'


def _keeper_start(client: paramiko.SSHClient, folder: str, wait_s: float) -> paramiko.Channel:
    """Make the run's folder on the host, kept by a keeper that removes it if the connection
    drops; the keeper's channel, or _HostFileProblem saying why the folder was not made."""
    transport = client.get_transport()
    assert transport is not None
    said = b""
    try:
        channel = transport.open_session(timeout=wait_s)
        channel.settimeout(wait_s)
        channel.exec_command(shlex.join(["exec", "sh", "-c", _KEEPER, "mycelia-keeper", folder]))
        while b"made\n" not in said:
            chunk = channel.recv(64)
            if not chunk:
                break
            said += chunk
    except (paramiko.SSHException, OSError) as exc:
        raise _HostFileProblem("error", f"the folder {folder} could not be made on the host for "
                                        f"its files ({exc})") from exc  # fmt: skip
    if b"made\n" in said:
        return channel
    why = b""
    with contextlib.suppress(Exception):
        while channel.recv_stderr_ready():
            why += channel.recv_stderr(_READ_CHUNK)
        channel.close()
    text = why.decode("utf-8", errors="replace").strip() or "mkdir failed"
    raise _HostFileProblem("error", f"the folder {folder} could not be made on the host for its "
                                    f"files ({text})")  # fmt: skip


def _open_sftp(client: paramiko.SSHClient, why: str) -> paramiko.SFTPClient:
    try:
        return client.open_sftp()
    except (paramiko.SSHException, OSError) as exc:
        raise _HostFileProblem(
            "error",
            f"the host offers no SFTP to {why} ({exc}; "
            "is the sftp Subsystem enabled in its sshd_config?)",
        ) from exc


def _upload(
    sftp: paramiko.SFTPClient,
    upload: RemoteUpload,
    deadline: float,
    should_stop: Callable[[], bool] | None,
) -> str:
    """Put the worker's file on the host, streamed chunk by chunk (pipelined writes, never whole
    in memory), and check its size there. "" when it is there whole; "deadline" or "stopped"
    when the time limit or a cancel came first; _HostFileProblem when it could not be put."""
    where = f"{upload.path} on the host"
    try:
        with open(upload.local, "rb") as source, sftp.open(upload.path, "wbx") as target:
            target.set_pipelined(True)
            for chunk in iter(lambda: source.read(_UPLOAD_CHUNK), b""):
                target.write(chunk)
                if should_stop is not None and should_stop():
                    return "stopped"
                if time.monotonic() >= deadline:
                    return "deadline"
        size = sftp.stat(upload.path).st_size
    except (OSError, paramiko.SSHException) as exc:
        raise _HostFileProblem("error", f"its file could not be put at {where} ({exc})") from exc
    if size != upload.size:
        raise _HostFileProblem("error", f"{where} holds {size} bytes after the copy, not the "
                                        f"{upload.size} expected")  # fmt: skip
    return ""


def _fetch(sftp: paramiko.SFTPClient, fetch: RemoteFetch, name: str) -> Any:
    """Read the command's file back over SFTP and hand it to the store; what the store kept,
    or _HostFileProblem saying why nothing was kept."""
    where = f"{fetch.path} on the host"
    try:
        attributes = sftp.stat(fetch.path)
    except OSError as exc:
        if getattr(exc, "errno", None) == errno.ENOENT:
            raise _HostFileProblem(
                "failed",
                f"{name} passed but wrote no file at {where}: nothing "
                "was kept (the hook writes its dump to {output_path})",
            ) from None
        raise _HostFileProblem("error", f"{name} passed, but {where} could not be read ({exc}): "
                                   "nothing was kept") from exc  # fmt: skip
    if not stat.S_ISREG(attributes.st_mode or 0):
        raise _HostFileProblem(
            "failed", f"{name} passed, but {where} is not a file: nothing was kept"
        )
    size = attributes.st_size or 0
    if size == 0:
        raise _HostFileProblem("failed", f"{name} passed, but the file it wrote at {where} is empty: "
                                    "an empty dump is no backup, nothing was kept")  # fmt: skip
    try:
        with sftp.open(fetch.path, "rb") as handle:
            handle.prefetch(size)  # pipelined reads: it streams, never whole in memory
            return fetch.store(handle, size)
    except Exception as exc:  # noqa: BLE001 - the storage or the connection, said in words
        raise _HostFileProblem(
            "error",
            f"{name} passed, but {where} could not be copied into the "
            f"artifacts storage ({exc}): nothing was kept",
        ) from exc


def _remove_folder(client: paramiko.SSHClient, folder: str) -> str:
    """Remove the run's scratch folder on the host; "" when done, else why not."""
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return f"the connection was lost, so {folder} was left on the host"
    try:
        channel = transport.open_session(timeout=5)
        channel.settimeout(30)
        channel.exec_command(shlex.join(["rm", "-rf", "--", folder]))
        code = channel.recv_exit_status()
        channel.close()
    except (paramiko.SSHException, OSError) as exc:
        return f"removing {folder} on the host failed ({exc})"
    return "" if code == 0 else f"removing {folder} on the host failed (rm exited with {code})"


def _run_folder(
    scratch: str | None, upload: RemoteUpload | None, fetch: RemoteFetch | None
) -> tuple[str | None, str]:
    """The run's one scratch folder on the host (None without one), or why the paths given
    cannot be one: each file in the folder, the folder a fresh "mycelia-…" one."""

    def own(folder: str) -> bool:
        return (
            posixpath.isabs(folder)
            and posixpath.normpath(folder) == folder
            and posixpath.basename(folder).startswith("mycelia-")
        )

    paths = [item.path for item in (upload, fetch) if item is not None]
    for path in paths:
        if posixpath.normpath(path) != path or not own(posixpath.dirname(path)):
            return None, f"{path} is not a file in a folder of its own on the host."
    if scratch is not None and not own(scratch):
        return None, f"{scratch} is not a folder of its own on the host."
    folders = {posixpath.dirname(path) for path in paths} | ({scratch} if scratch else set())
    if len(folders) > 1:
        return None, "its files are not all in the one folder of its own on the host."
    return (folders.pop() if folders else None), ""


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
