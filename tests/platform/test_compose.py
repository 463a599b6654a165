"""docker-compose.yml: every service that writes artifacts (the worker) and every service that
serves them (the web) see the same storage, with the defaults and with ARTIFACTS_STORAGE=s3.

Read the way Compose reads it: YAML merge keys (`<<: *app`), then `${VAR:-default}`
interpolation from the environment the operator gives."""

from __future__ import annotations

import copy
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# The image's data folder (Dockerfile WORKDIR /app; settings.DATA_DIR defaults to BASE_DIR/data)
IMAGE_DATA_DIR = PurePosixPath("/app/data")
S3_SETTINGS = (
    "ARTIFACTS_S3_BUCKET", "ARTIFACTS_S3_ENDPOINT_URL", "ARTIFACTS_S3_REGION",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY_FILE",
)  # fmt: skip
OPERATOR = {"POSTGRES_PASSWORD": "pw", "SECRET_KEY": "k"}  # what compose.yml requires
_VARIABLE = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg or ""

    return _VARIABLE.sub(one, value)


def compose(env: dict[str, str], text: str | None = None) -> dict[str, Any]:
    data = yaml.safe_load(text if text is not None else (ROOT / "docker-compose.yml").read_text())
    return {"services": data["services"], "volumes": data.get("volumes") or {}, "env": env}


def _environment(service: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: str(_interpolate(value, env)) for key, value in raw.items()}


def _mounts(service: dict[str, Any], named: dict[str, Any]) -> list[tuple[str, PurePosixPath]]:
    """(named volume, path in the container) for each mount of a named volume."""
    found = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume["target"]
        else:
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
        if source in named:
            found.append((source, PurePosixPath(target)))
    return found


def storage_seen(project: dict[str, Any], name: str) -> tuple[Any, ...]:
    """What artifacts storage a service sees: the S3 settings, or which named volume holds its
    MEDIA_ROOT (and where in it). A MEDIA_ROOT on no volume is that container's alone."""
    service = project["services"][name]
    env = _environment(service, project["env"])
    if env.get("ARTIFACTS_STORAGE", "filesystem") == "s3":
        return ("s3", *(env.get(key, "") for key in S3_SETTINGS))
    media = PurePosixPath(env.get("MEDIA_ROOT") or IMAGE_DATA_DIR / "media")
    for volume, target in _mounts(service, project["volumes"]):
        if media == target or target in media.parents:
            return ("volume", volume, str(media.relative_to(target)))
    return ("this container only", name)


def _command(service: dict[str, Any]) -> str:
    command = service.get("command") or ""
    return " ".join(command) if isinstance(command, list) else command


def writers_and_servers(project: dict[str, Any]) -> tuple[list[str], list[str]]:
    services = project["services"]
    writers = [n for n, s in services.items() if re.search(r"celery .*\bworker\b", _command(s))]
    servers = [n for n, s in services.items() if "mycelia_ops.serve" in _command(s)]
    return writers, servers


def _one_storage(project: dict[str, Any]) -> set[tuple[Any, ...]]:
    writers, servers = writers_and_servers(project)
    assert writers and servers, "compose has no worker or no web service"
    return {storage_seen(project, name) for name in writers + servers}


S3 = {
    **OPERATOR, "ARTIFACTS_STORAGE": "s3", "ARTIFACTS_S3_BUCKET": "mycelia-artifacts",
    "ARTIFACTS_S3_ENDPOINT_URL": "https://s3.example.com", "ARTIFACTS_S3_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "secret",
}  # fmt: skip


def test_compose__defaults__worker_and_web_mount_one_artifacts_volume():
    seen = _one_storage(compose(OPERATOR))
    assert seen == {("volume", "artifacts", ".")}


def test_compose__s3__worker_and_web_get_the_same_bucket_and_credentials():
    seen = _one_storage(compose(S3))
    assert seen == {("s3", "mycelia-artifacts", "https://s3.example.com", "eu-west-1", "AKIA",
                     "secret", "")}  # fmt: skip


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda s: s["web"].__setitem__("volumes", []), id="web-without-volume"),
        pytest.param(
            lambda s: s["worker"].__setitem__(
                "environment", {**s["worker"]["environment"], "MEDIA_ROOT": "/tmp/media"}
            ),
            id="worker-media-elsewhere",
        ),
        pytest.param(
            lambda s: s["web"].__setitem__(
                "environment", {**s["web"]["environment"], "ARTIFACTS_STORAGE": "s3"}
            ),
            id="web-on-s3-worker-on-volume",
        ),
    ],
)
def test_compose__a_service_sees_other_storage__the_check_says_so(break_it):
    # Given the compose file with one service changed so it no longer shares the storage
    project = compose(OPERATOR)
    services = copy.deepcopy(project["services"])
    for name in ("web", "worker"):  # un-share the merged mapping before changing one service
        services[name] = copy.deepcopy(services[name])
    break_it(services)
    # Then the check finds two storages, not one
    assert len(_one_storage({**project, "services": services})) == 2


def test_compose__image__media_folder_exists_for_the_volume_to_inherit_its_owner():
    # A named volume takes the owner of the folder it is mounted on, if the image has that folder
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "mkdir -p /app/data/media" in dockerfile
    assert "chown -R mycelia /app/data" in dockerfile


def test_procfile__every_process__reads_the_same_settings():
    # The Procfile's lines share one environment: nothing sets a storage for one line only
    lines = [
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert not [line for line in lines if "ARTIFACTS_" in line or "MEDIA_ROOT" in line]
    assert any("worker" in line for line in lines) and any("serve" in line for line in lines)
