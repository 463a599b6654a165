"""A real OpenSSH server (Debian's openssh-server) for the SSH tests: started on a free loopback
port with host and user keys generated into a temporary folder, logging in as the current user
with the generated key only, stopped by its pid (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = Path("/usr/sbin/sshd")


@dataclass
class SshServer:
    folder: Path
    port: int
    user: str
    host_key_line: str  # "ssh-ed25519 AAAA... comment", the server's public host key
    client_key: Path  # the private key the worker logs in with

    def other_host_key_line(self) -> str:
        """A valid key of the same type that is NOT this server's (a changed host key)."""
        path = self.folder / "impostor_ed25519"
        if not path.exists():
            _keygen(path)
        return path.with_suffix(".pub").read_text().strip()


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
        s.settimeout(1)
        return s.recv(4).startswith(b"SSH-")
    return False


@contextlib.contextmanager
def sshd_running(folder: Path) -> Iterator[SshServer]:
    if not SSHD.exists():
        pytest.fail("openssh-server is not installed (.ci/run installs it: apt-get install "
                    "openssh-server)")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = folder / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        f"PidFile {folder / 'sshd.pid'}\nPermitRootLogin prohibit-password\n"
        "MaxSessions 20\nMaxStartups 50\n"
        # SFTP brings a database dump back from the host (the runner's fetch), as Debian's own
        # sshd_config offers it.
        "Subsystem sftp internal-sftp\n"
    )
    log = (folder / "sshd.log").open("wb")
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(config), "-e"], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        give_up = time.monotonic() + 15
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > give_up:
                pytest.fail("sshd did not start: " + (folder / "sshd.log").read_text()[-2000:])
            time.sleep(0.05)
        yield SshServer(
            folder=folder,
            port=port,
            user=getpass.getuser(),
            host_key_line=host_key.with_suffix(".pub").read_text().strip(),
            client_key=client_key,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie (dead, not yet reaped by an init that may never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
