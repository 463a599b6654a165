"""An environment's hosts, where SSH command hooks run: added, changed and removed by
administrators on the set-up pages, each change on the set-up history.

The private key is never stored nor shown: a host names where the worker reads it (a file, or a
``*_FILE`` variable holding the file's path). The host's public key is checked here, so a
host that cannot be verified is refused at the form, not at the first deploy.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from mycelia_ops.errors import BadInput, Conflict
from upgrades.models import Environment, EnvironmentHost, SetupSubject
from upgrades.runners.ssh_connect import (
    FILE_VARIABLE,
    SshSetupProblem,
    SshTarget,
    host_key_parse,
    key_fingerprint,
)
from upgrades.services.setup import _diff, hook_label, setup_record

HOST_FIELDS = ("address", "port", "user", "host_key", "private_key_file", "working_directory")
ADDRESS = re.compile(r"^[A-Za-z0-9._:-]+$")
USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")


def host_target(host: EnvironmentHost) -> SshTarget:
    """What the SSH runner needs from a host row."""
    return SshTarget(
        address=host.address,
        port=host.port,
        user=host.user,
        host_key=host.host_key,
        private_key_file=host.private_key_file,
    )


def host_fingerprint(host: EnvironmentHost) -> str:
    """“ssh-ed25519 SHA256:…”, or "" for a key that does not parse."""
    try:
        key = host_key_parse(host.host_key)
    except SshSetupProblem:
        return ""
    return f"{key.get_name()} {key_fingerprint(key)}"


def _clean(data: dict[str, Any], host: EnvironmentHost) -> dict[str, Any]:
    values = {key: data[key] for key in HOST_FIELDS if key in data}
    for key in ("address", "user", "private_key_file", "working_directory"):
        if isinstance(values.get(key), str):
            values[key] = values[key].strip()
    address = values.get("address", host.address)
    if not address or not ADDRESS.match(address):
        raise BadInput(
            "The address is a host name or IP address, e.g. app1.mycelia.internal.",
            field="address",
        )
    port = values.get("port", host.port)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise BadInput("The port is a number from 1 to 65535 (SSH listens on 22).", field="port")
    user = values.get("user", host.user)
    if not user or not USER.match(user) or len(user) > 100:
        raise BadInput("The user is the account's login name, e.g. deploy.", field="user")
    if "host_key" in values:
        try:
            key = host_key_parse(values["host_key"])
        except SshSetupProblem as problem:
            raise BadInput(str(problem), field="host_key") from None
        # Kept as "type base64", whatever the line held around it (a known_hosts host name).
        values["host_key"] = f"{key.get_name()} {key.get_base64()}"
    elif not host.host_key:
        raise BadInput("Give the host's public key (ssh-keyscan prints it).", field="host_key")
    source = values.get("private_key_file", host.private_key_file)
    if not source or not (source.startswith("/") or FILE_VARIABLE.match(source)):
        raise BadInput(
            "Say where the worker reads the private key: a file path such as "
            "/run/secrets/mycelia_ssh_key, or a variable name ending in _FILE such as "
            "MYCELIA_SSH_KEY_FILE. Paste no key here: it is never stored.",
            field="private_key_file",
        )
    if "-----BEGIN" in source or len(source) > 500:
        raise BadInput("Paste no key here: name its file.", field="private_key_file")
    folder = values.get("working_directory", host.working_directory)
    if folder and not folder.startswith("/"):
        raise BadInput(
            "The working folder is an absolute path on the host.", field="working_directory"
        )
    return values


def host_save(
    *, environment: Environment, host: EnvironmentHost | None, by: Any, data: dict[str, Any]
) -> EnvironmentHost:
    """Add a host (host=None) or change one; `data` holds HOST_FIELDS (any subset on a change)."""
    creating = host is None
    host = host or EnvironmentHost(environment=environment)
    values = _clean(data, host)
    with transaction.atomic():
        changes = _diff(host, values, HOST_FIELDS)
        clash = EnvironmentHost.objects.filter(
            environment=environment, address=host.address, port=host.port, user=host.user
        ).exclude(pk=host.pk)
        if clash.exists():
            raise BadInput(f"{environment.name} lists {host.login} already.", field="address")
        if creating or changes:
            host.save()
            setup_record(
                by=by,
                subject=SetupSubject.ENVIRONMENT,
                obj=host,
                label=f"{environment.name} · host {host.login}",
                environment=environment,
                verb="created" if creating else "changed",
                changes=[] if creating else changes,
            )
    return host


def host_delete(*, host: EnvironmentHost, by: Any) -> None:
    users = list(host.hooks.all())
    if users:
        raise Conflict(
            f"{host.login} runs the "
            + ", ".join(hook_label(hook) for hook in users)
            + ": point those hooks elsewhere first."
        )
    with transaction.atomic():
        setup_record(
            by=by,
            subject=SetupSubject.ENVIRONMENT,
            obj=host,
            label=f"{host.environment.name} · host {host.login}",
            environment=host.environment,
            verb="removed",
        )
        host.delete()
