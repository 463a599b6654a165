"""Artifacts through Django's storage API, against a real S3-compatible server (moto in server
mode, started here as a process of its own): backups land in the bucket, downloads stream and are
verified, a changed object never downloads as if it were whole, and a backup a worker wrote with
one data folder downloads through a web process with another."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.urls import reverse

from tests.conftest import PASSWORD
from tests.integration.conftest import wait_for, worker_factory  # noqa: F401 - a fixture
from upgrades import services, storage
from upgrades.models import Artifact, RunStatus

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
KEYS = {"access_key": "testing-key", "secret_key": "testing-secret"}


class MotoServer:
    """moto_server on a port the system picks, its output in a file; stopped by its PID."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", "0"],
            stdout=log_path.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        found = wait_for(self._announced, timeout=30)
        self.url = f"http://127.0.0.1:{found}"

    def _announced(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"moto_server exited:\n{self.log_path.read_text()}")
        match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", self.log_path.read_text())
        return match.group(1) if match else None

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=KEYS["access_key"], aws_secret_access_key=KEYS["secret_key"],
        )  # fmt: skip

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def bucket(moto) -> str:
    name = f"artifacts-{uuid.uuid4().hex[:12]}"
    moto.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_artifacts(settings, moto, bucket, tmp_path) -> str:
    """This process keeps artifacts in the bucket, as ARTIFACTS_STORAGE=s3 would set it."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket, "endpoint_url": moto.url, "region_name": "us-east-1",
                **KEYS, "default_acl": None, "file_overwrite": False,
                "max_memory_size": 1024 * 1024,
            },
        },
    }  # fmt: skip
    return bucket


def _object(moto, bucket: str, key: str) -> bytes:
    return moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def _url(artifact: Artifact) -> str:
    return reverse("upgrades:artifact_download", args=[artifact.upgrade_id, artifact.pk])


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


def _backed_up(upgrade, manager) -> list[Artifact]:
    run = services.upgrade_act(upgrade=upgrade, action="back_up", by=manager).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, run.reason + run.output
    return list(Artifact.objects.filter(upgrade=upgrade).order_by("kind"))


# --- in: the worker's files go to the storage ------------------------------------------------


def test_artifact_store__local_file__streamed_into_bucket_hashed_and_removed(
    s3_artifacts, moto, tmp_path
):
    local = tmp_path / "db-backup.dump"
    content = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, not a round number
    local.write_bytes(content)

    stored = storage.artifact_store(local_path=local, upgrade_id=7)

    assert stored.storage_name == "artifacts/upgrade-7/db-backup.dump"
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.size_bytes == len(content)
    assert stored.where == f"s3://{s3_artifacts}/artifacts/upgrade-7/db-backup.dump"
    assert _object(moto, s3_artifacts, stored.storage_name) == content
    assert not local.exists()


@pytest.mark.parametrize("held", [1000, 3000], ids=["cut-short", "grew"])
def test_artifact_store_stream__file_holds_another_size__refused_and_nothing_kept(
    settings, tmp_path, held
):
    # Given a dump read back from a host that says it holds 2,000 bytes but holds another size
    settings.MEDIA_ROOT = tmp_path / "media"
    handle = io.BytesIO(os.urandom(held))

    # When it is streamed into the storage, it is refused, and nothing is left to be recorded
    with pytest.raises(OSError, match=f"held {held} bytes where 2000 were expected"):
        storage.artifact_store_stream(handle=handle, size=2000, name="db.dump", upgrade_id=3)
    assert not list((tmp_path / "media").rglob("db*.dump"))


def test_artifact_store__same_name_twice__both_kept_under_their_own_names(s3_artifacts, tmp_path):
    first, second = tmp_path / "a" / "logs.json", tmp_path / "b" / "logs.json"
    for path, text in ((first, b"one"), (second, b"two")):
        path.parent.mkdir()
        path.write_bytes(text)
    names = {
        storage.artifact_store(local_path=p, upgrade_id=1).storage_name for p in (first, second)
    }
    assert len(names) == 2


def test_backup__s3_storage__every_artifact_in_the_bucket_none_left_on_disk(
    s3_artifacts, moto, minor, manager, settings
):
    artifacts = _backed_up(minor, manager)

    assert {a.kind for a in artifacts} == {"config_archive", "db_backup", "log_tail"}
    for artifact in artifacts:
        body = _object(moto, s3_artifacts, artifact.storage_name)
        assert hashlib.sha256(body).hexdigest() == artifact.sha256
        assert len(body) == artifact.size_bytes
        assert artifact.path == f"s3://{s3_artifacts}/{artifact.storage_name}"
    media, scratch = Path(settings.MEDIA_ROOT), Path(settings.DATA_DIR) / "scratch"
    for folder in (media, scratch):
        assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]


def test_backup__storage_unreachable__run_errors_saying_the_file_was_not_kept(
    settings, minor, manager
):
    # Given an S3 storage nobody answers at
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "gone", "endpoint_url": "http://127.0.0.1:9", **KEYS,
                        "region_name": "us-east-1"},
        },
    }  # fmt: skip
    run = services.upgrade_act(upgrade=minor, action="back_up", by=manager).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ERROR
    assert "could not be kept in the artifacts storage" in run.reason
    assert not Artifact.objects.filter(upgrade=minor).exists()


# --- out: downloads stream and are verified --------------------------------------------------


def test_download__s3_artifact__streams_the_exact_bytes(s3_artifacts, moto, minor, manager, client):
    client.force_login(manager)
    dump = next(a for a in _backed_up(minor, manager) if a.kind == "db_backup")

    response = client.get(_url(dump))

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Length"] == str(dump.size_bytes)
    assert f'filename="{dump.name}"' in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == _object(moto, s3_artifacts, dump.storage_name)


def test_download__object_changed_in_bucket__stops_short_and_never_completes(
    s3_artifacts, moto, manager, client, tmp_path, make_upgrade, caplog
):
    # Given a stored artifact of several chunks whose object is then changed, size kept
    client.force_login(manager)
    upgrade = make_upgrade("minor")
    local = tmp_path / "db-backup.dump"
    local.write_bytes(os.urandom(5 * storage.CHUNK_BYTES + 3))
    stored = storage.artifact_store(local_path=local, upgrade_id=upgrade.pk)
    artifact = Artifact.objects.create(
        upgrade=upgrade, kind="db_backup", name="db-backup.dump", path=stored.where,
        storage_name=stored.storage_name, sha256=stored.sha256, size_bytes=stored.size_bytes,
    )  # fmt: skip
    tampered = bytearray(_object(moto, s3_artifacts, stored.storage_name))
    tampered[-1] ^= 0xFF
    moto.client().put_object(Bucket=s3_artifacts, Key=stored.storage_name, Body=bytes(tampered))

    # When it is downloaded
    response = client.get(_url(artifact))
    assert response["Content-Length"] == str(artifact.size_bytes)
    received = bytearray()
    with pytest.raises(storage.ArtifactTampered, match="sha256 differs"):
        for chunk in response.streaming_content:
            received += chunk

    # Then the last chunk was held back: fewer bytes than announced, and the mismatch is logged
    assert 0 < len(received) < artifact.size_bytes
    assert "does not match what was stored" in caplog.text


def test_download__object_longer_than_recorded__stops_before_sending_more(
    s3_artifacts, moto, manager, client, make_upgrade
):
    client.force_login(manager)
    upgrade = make_upgrade("minor")
    body = b"x" * (2 * storage.CHUNK_BYTES)
    moto.client().put_object(Bucket=s3_artifacts, Key="artifacts/upgrade-1/f.dump", Body=body)
    artifact = Artifact.objects.create(
        upgrade=upgrade, kind="db_backup", name="f.dump", path="", size_bytes=10,
        storage_name="artifacts/upgrade-1/f.dump", sha256=hashlib.sha256(body[:10]).hexdigest(),
    )  # fmt: skip
    response = client.get(_url(artifact))
    with pytest.raises(storage.ArtifactTampered, match="longer"):
        b"".join(response.streaming_content)


def test_download__object_gone__404_naming_the_file(s3_artifacts, moto, minor, manager, client):
    client.force_login(manager)
    dump = next(a for a in _backed_up(minor, manager) if a.kind == "db_backup")
    moto.client().delete_object(Bucket=s3_artifacts, Key=dump.storage_name)
    response = client.get(_url(dump))
    assert response.status_code == 404


def test_download__stakeholder_and_outsider__refused(
    s3_artifacts, minor, manager, stakeholder_client, outsider_client
):
    dump = _backed_up(minor, manager)[0]
    assert stakeholder_client.get(_url(dump)).status_code == 403
    assert outsider_client.get(_url(dump)).status_code == 403


def test_download__large_file_on_filesystem__streams_without_holding_it_in_memory(
    settings, tmp_path, manager, client, make_upgrade
):
    # Given a 24 MiB artifact in the embedded (filesystem) storage
    settings.MEDIA_ROOT = tmp_path / "media"
    client.force_login(manager)
    upgrade = make_upgrade("minor")
    local = tmp_path / "big.dump"
    size = 24 * 1024 * 1024
    with local.open("wb") as out:
        for _ in range(size // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))
    stored = storage.artifact_store(local_path=local, upgrade_id=upgrade.pk)
    assert Path(stored.where).is_relative_to(settings.MEDIA_ROOT)
    artifact = Artifact.objects.create(
        upgrade=upgrade, kind="db_backup", name="big.dump", path=stored.where,
        storage_name=stored.storage_name, sha256=stored.sha256, size_bytes=stored.size_bytes,
    )  # fmt: skip

    # When it is downloaded, chunk by chunk, hashing what arrives
    tracemalloc.start()
    try:
        response = client.get(_url(artifact))
        digest, total = hashlib.sha256(), 0
        for chunk in response.streaming_content:
            digest.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then all of it arrived, verified, while memory never held more than a few chunks
    assert total == size and digest.hexdigest() == artifact.sha256
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes"


def test_database_restore__backup_changed_in_bucket__refused_before_the_hook_runs(
    s3_artifacts, moto, minor, manager
):
    from tests.upgrades.test_runs import _deploy, _started

    # Given a database backup taken before the deploy, then changed in the bucket
    dump = next(a for a in _backed_up(minor, manager) if a.kind == "db_backup")
    upgrade = _deploy(_started(minor, manager), manager)
    moto.client().put_object(Bucket=s3_artifacts, Key=dump.storage_name, Body=b"DROP TABLE x;")

    # When the database is restored from it
    run = services.upgrade_act(
        upgrade=upgrade, action="restore_database", by=manager, backup_id=dump.pk
    ).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()

    # Then nothing was restored, and the run says why
    assert run.status == RunStatus.ERROR
    assert "Not restored" in run.reason and "changed since it was stored" in run.reason
    assert "db-restore" not in run.output


def test_database_restore__s3_backup__hook_gets_a_verified_local_copy(
    s3_artifacts, moto, minor, manager, demo_mycelia
):
    from tests.upgrades.test_runs import _deploy, _started

    dump = next(a for a in _backed_up(minor, manager) if a.kind == "db_backup")
    upgrade = _deploy(_started(minor, manager), manager)
    run = services.upgrade_act(
        upgrade=upgrade, action="restore_database", by=manager, backup_id=dump.pk
    ).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, run.reason + run.output
    assert "verified" in run.reason


# --- across processes: a worker with one data folder, a web process with another --------------


@pytest.mark.worker
@pytest.mark.slow
def test_backup__worker_data_dir_a__downloads_through_web_process_with_data_dir_b(
    moto,
    bucket,
    worker_factory,  # noqa: F811 - the fixture imported above
    tmp_path,
    make_upgrade,
    demo_environment,
    manager,
    settings,
):
    from tests.integration.test_web_server import WebServer

    s3_env = {
        "ARTIFACTS_STORAGE": "s3", "ARTIFACTS_S3_BUCKET": bucket,
        "ARTIFACTS_S3_ENDPOINT_URL": moto.url, "ARTIFACTS_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": KEYS["access_key"], "AWS_SECRET_ACCESS_KEY": KEYS["secret_key"],
    }  # fmt: skip
    # Given a real worker on the S3 settings whose data folder is A (this suite's: it holds the
    # filesystem broker the worker takes its work from) with a media folder of its own
    folder_a, folder_b = settings.DATA_DIR, tmp_path / "data-b"
    worker_factory(MEDIA_ROOT=str(tmp_path / "media-a"), **s3_env).start()
    upgrade = make_upgrade("minor", environment=demo_environment)

    # When a release manager backs up, and the worker carries it out
    run = services.upgrade_act(upgrade=upgrade, action="back_up", by=manager).run

    def finished():
        run.refresh_from_db()
        return run.finished_at is not None

    wait_for(finished, timeout=60)
    assert run.status == RunStatus.PASSED, run.reason + run.output
    dump = Artifact.objects.get(upgrade=upgrade, kind="db_backup")

    # Then a web process whose data folder is B serves it, byte for byte, from the bucket
    hasher = PBKDF2PasswordHasher()
    manager.password = hasher.encode(PASSWORD, hasher.salt())
    manager.save(update_fields=["password"])
    web = WebServer(
        tmp_path, MYCELIA_DATA_DIR=str(folder_b), MEDIA_ROOT=str(folder_b / "media"), **s3_env
    )
    try:
        with httpx.Client(base_url=web.url, timeout=10) as browser:
            browser.get("/accounts/login/")
            signed_in = browser.post(
                "/accounts/login/",
                data={"username": manager.username, "password": PASSWORD,
                      "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                headers={"Referer": f"{web.url}/accounts/login/"},
            )  # fmt: skip
            assert signed_in.status_code in (200, 302)
            response = browser.get(_url(dump))
    finally:
        web.stop()
    assert response.status_code == 200, response.text[:500]
    assert hashlib.sha256(response.content).hexdigest() == dump.sha256
    assert response.content == _object(moto, bucket, dump.storage_name)
    # And neither process kept the file on its disk: it lives in the bucket only
    assert folder_b != folder_a
    for folder in (tmp_path / "media-a", folder_b):
        assert not [p for p in folder.rglob("db-backup-*")]


def test_download__storage_unreachable__503_saying_so(settings, manager, client, make_upgrade):
    # Given an artifact recorded in an S3 storage that no longer answers
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "gone", "endpoint_url": "http://127.0.0.1:9", **KEYS,
                        "region_name": "us-east-1"},
        },
    }  # fmt: skip
    client.force_login(manager)
    artifact = Artifact.objects.create(
        upgrade=make_upgrade("minor"), kind="db_backup", name="d.dump", path="",
        storage_name="artifacts/upgrade-1/d.dump", sha256="0" * 64, size_bytes=1,
    )  # fmt: skip
    response = client.get(_url(artifact))
    assert response.status_code == 503
    assert b"artifacts storage did not answer" in response.content


# --- settings: ARTIFACTS_STORAGE from the environment -----------------------------------------


def _storages_in_a_fresh_process(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; from django.conf import settings; django.setup(); "
        "print(settings.STORAGES['artifacts'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
        env={**{k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACTS_", "AWS_"))},
             "DJANGO_SETTINGS_MODULE": "mycelia_ops.settings",
             "MYCELIA_DATA_DIR": str(tmp_path), **env},
    )  # fmt: skip


def test_settings__nothing_set__filesystem_under_media_root(tmp_path):
    done = _storages_in_a_fresh_process(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FileSystemStorage" in done.stdout and "location" not in done.stdout


def test_settings__s3_with_secret_file__bucket_endpoint_and_keys_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    done = _storages_in_a_fresh_process(
        tmp_path, ARTIFACTS_STORAGE="s3", ARTIFACTS_S3_BUCKET="b1",
        ARTIFACTS_S3_ENDPOINT_URL="http://minio:9000", ARTIFACTS_S3_REGION="eu-west-1",
        AWS_ACCESS_KEY_ID="AKIA", AWS_SECRET_ACCESS_KEY_FILE=str(secret),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for expected in (
        "S3Storage",
        "'b1'",
        "http://minio:9000",
        "eu-west-1",
        "'AKIA'",
        "from-a-file",
    ):
        assert expected in done.stdout


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"ARTIFACTS_STORAGE": "ftp"}, "ARTIFACTS_STORAGE must be filesystem or s3, not 'ftp'"),
        ({"ARTIFACTS_STORAGE": "s3"}, "ARTIFACTS_STORAGE=s3 needs ARTIFACTS_S3_BUCKET"),
    ],
)
def test_settings__bad_artifacts_settings__refuse_to_start_naming_them(tmp_path, env, said):
    done = _storages_in_a_fresh_process(tmp_path, **env)
    assert done.returncode != 0
    assert said in done.stderr
