"""Connecting to an environment's host over SSH: whom and where (``SshTarget``), the keys
(the host key as configured, the worker's private key), and every way a connection fails, said
in words a release manager can act on.

Library: paramiko. It is synchronous like every runner here (a worker thread reads, nothing else
runs an event loop), mature and widely used, and gives exact control of host keys: the
configured key is the only one known, and ``RejectPolicy`` refuses anything else, so a host is
never trusted on first use and a changed key fails the run naming both fingerprints.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass

import paramiko

from upgrades.runners._common import Outcome

FILE_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*_FILE$")
KEY_TYPE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+)$")
CONNECT_TIMEOUT_S = 15.0


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
