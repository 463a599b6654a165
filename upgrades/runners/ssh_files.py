"""Files on an environment's host for one SSH run, on the run's own connection: its scratch
folder, the worker's file put there before the command (``RemoteUpload``), and the command's
file read back after it (``RemoteFetch``); ``upgrades.runners.ssh`` calls these around the
command.

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

import contextlib
import errno
import posixpath
import re
import secrets
import shlex
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

import paramiko

from upgrades.runners._common import _READ_CHUNK, Outcome

_UPLOAD_CHUNK = 64 * 1024


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
