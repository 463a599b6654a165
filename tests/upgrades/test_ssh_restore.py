"""A database restore hook that runs on a host over SSH, end to end through the product, against
a real OpenSSH server on a loopback port (tests/upgrades/ssh_server.py): the backup, taken on the
host and kept in the artifacts storage, is verified on the worker, put back on the host in a
folder of its own, handed to the hook as {backup_path}, and the folder is removed afterwards.

The restore hook hashes the file it is given into a ledger on the host (this machine), so the
test sees exactly what arrived there."""

from __future__ import annotations

import hashlib
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.upgrades.ssh_server import SshServer, sshd_running
from tests.upgrades.test_artifact_storage import _object, bucket, moto, s3_artifacts  # noqa: F401
from tests.upgrades.test_runs import _deploy, _started
from upgrades import services
from upgrades.models import (
    Artifact,
    CheckRun,
    EnvironmentHost,
    EnvironmentOperation,
    HookMode,
    Operation,
    RunStatus,
    Upgrade,
)
from upgrades.runners import ssh_files

pytestmark = pytest.mark.django_db

# The restore hook: where it was given the backup, that folder's mode, then the file's sha256
# and size into the ledger.
RESTORE = (
    'echo "from=$0"; ls -ld "$(dirname "$0")"; '
    '(sha256sum "$0" | cut -d" " -f1; stat -c %s "$0"; echo "$0") >> "$1"; '
)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    with sshd_running(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@dataclass
class OnHost:
    server: SshServer
    source: Path  # the dump the backup hook copies on the host
    ledger: Path  # what the restore hook was given, hashed on the host
    scratch: Path  # the host's /var/tmp
    host: EnvironmentHost

    def restore_hook(self, then: str = "", timeout_seconds: int = 30) -> None:
        EnvironmentOperation.objects.update_or_create(
            environment=self.host.environment, operation=Operation.DB_RESTORE,
            defaults={"mode": HookMode.SSH, "host": self.host, "timeout_seconds": timeout_seconds,
                      "argv": ["sh", "-c", RESTORE + then, "{backup_path}", str(self.ledger)]},
        )  # fmt: skip

    def logins(self) -> int:
        """Logins the host's sshd accepted so far (its log, written before it answers)."""
        return (self.server.folder / "sshd.log").read_text().count("Accepted publickey")


@pytest.fixture
def on_host(staging, sshd, settings, tmp_path, monkeypatch) -> OnHost:
    """Staging backs its database up and restores it on the host, over SSH; its deploy and data
    verification are local commands that pass."""
    settings.MEDIA_ROOT = tmp_path / "media"
    scratch = tmp_path / "host-var-tmp"
    scratch.mkdir()
    monkeypatch.setattr(ssh_files, "REMOTE_SCRATCH_BASE", str(scratch))
    host = EnvironmentHost.objects.create(
        environment=staging, address="127.0.0.1", port=sshd.port, user=sshd.user,
        host_key=sshd.host_key_line, private_key_file=str(sshd.client_key),
    )  # fmt: skip
    source = tmp_path / "source.dump"
    source.write_bytes(os.urandom(300 * 1024 + 7))  # several SFTP writes and storage chunks
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DB_BACKUP, mode=HookMode.SSH, host=host,
        timeout_seconds=30, argv=["sh", "-c", f'cp {shlex.quote(str(source))} "$0"',
                                  "{output_path}"],
    )  # fmt: skip
    for operation in (Operation.DEPLOY, Operation.VERIFY_DATA):
        EnvironmentOperation.objects.create(
            environment=staging, operation=operation, mode=HookMode.COMMAND, argv=["true"]
        )
    kept = OnHost(sshd, source, tmp_path / "ledger", scratch, host)
    kept.restore_hook()
    return kept


def _backed_up_then_deployed(make_upgrade, manager) -> tuple[Upgrade, Artifact]:
    """A database backup taken on the host (a step of the checklist), then the deploy."""
    upgrade = make_upgrade("minor")
    step = upgrade.steps.filter(title="Backup database").order_by("phase__order").first()
    backup = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=backup.pk)
    backup.refresh_from_db()
    assert backup.status == RunStatus.PASSED, backup.reason + backup.output
    dump = Artifact.objects.get(upgrade=upgrade, kind="db_backup")
    return _deploy(_started(upgrade, manager), manager), dump


def _restore(upgrade: Upgrade, dump: Artifact, manager) -> CheckRun:
    run = services.upgrade_act(
        upgrade=upgrade, action="restore_database", by=manager, backup_id=dump.pk
    ).run
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _given(run: CheckRun) -> Path:
    return Path(run.output.split("from=", 1)[1].splitlines()[0])


def test_database_restore__ssh_hook__gets_the_backup_on_its_host_exactly_then_folder_removed(
    on_host, make_upgrade, manager
):
    upgrade, dump = _backed_up_then_deployed(make_upgrade, manager)

    # When the database is restored from the backup, by a hook on the host
    run = _restore(upgrade, dump, manager)

    # Then the hook was given a path on the host, in a private folder of the run's own there,
    # holding exactly the bytes of the backup
    assert run.status == RunStatus.PASSED, run.reason + run.output
    assert "verified" in run.reason
    digest, size, given = on_host.ledger.read_text().splitlines()
    assert digest == hashlib.sha256(on_host.source.read_bytes()).hexdigest() == dump.sha256
    assert int(size) == on_host.source.stat().st_size == dump.size_bytes
    assert _given(run) == Path(given)
    assert Path(given).parent.parent == on_host.scratch
    assert Path(given).parent.name.startswith(f"mycelia-run-{run.pk}-")
    assert "drwx------" in run.output
    # And the folder is gone from the host afterwards
    assert not Path(given).parent.exists()
    assert not list(on_host.scratch.iterdir())


def test_database_restore__backup_changed_in_storage__refused_before_anything_reaches_the_host(
    on_host, make_upgrade, manager
):
    # Given a backup taken on the host, then changed in the artifacts storage
    upgrade, dump = _backed_up_then_deployed(make_upgrade, manager)
    Path(dump.path).write_bytes(b"DROP TABLE x;")
    logins = on_host.logins()
    assert logins >= 1  # the backup itself logged in: the log counts logins

    # When the database is restored from it
    run = _restore(upgrade, dump, manager)

    # Then nothing was restored, and the run says why
    assert run.status == RunStatus.ERROR
    assert "Not restored" in run.reason and "changed since it was stored" in run.reason
    # And the worker never even logged in to the host: nothing was put there, nothing ran
    assert on_host.logins() == logins
    assert not on_host.ledger.exists()
    assert not list(on_host.scratch.iterdir())


@pytest.mark.parametrize(("then", "timeout_seconds", "status"), [
    ("exit 4", 30, RunStatus.FAILED),
    ("sleep 1000", 3, RunStatus.TIMED_OUT),
])  # fmt: skip
def test_database_restore__ssh_hook_fails_or_times_out__folder_removed_from_the_host(
    on_host, make_upgrade, manager, then, timeout_seconds, status
):
    upgrade, dump = _backed_up_then_deployed(make_upgrade, manager)
    on_host.restore_hook(then, timeout_seconds=timeout_seconds)

    run = _restore(upgrade, dump, manager)

    # Then the hook had the backup, the run failed, and the folder is gone all the same
    assert run.status == status, run.reason + run.output
    assert on_host.ledger.read_text().splitlines()[0] == dump.sha256
    assert not _given(run).parent.exists()
    assert not list(on_host.scratch.iterdir())


def test_database_restore__ssh_hook_with_s3_storage__bucket_copy_arrives_on_the_host_exactly(
    on_host,
    make_upgrade,
    manager,
    s3_artifacts,  # noqa: F811
    moto,  # noqa: F811
):
    # Given a backup taken on the host and kept in the bucket
    upgrade, dump = _backed_up_then_deployed(make_upgrade, manager)
    assert dump.path.startswith(f"s3://{s3_artifacts}/")
    assert _object(moto, s3_artifacts, dump.storage_name) == on_host.source.read_bytes()

    # When the database is restored from it by the hook on the host
    run = _restore(upgrade, dump, manager)

    # Then the hook read exactly the dump's bytes there, and the folder is gone
    assert run.status == RunStatus.PASSED, run.reason + run.output
    digest, size, given = on_host.ledger.read_text().splitlines()
    assert digest == hashlib.sha256(on_host.source.read_bytes()).hexdigest()
    assert int(size) == dump.size_bytes
    assert not Path(given).parent.exists()
    assert not list(on_host.scratch.iterdir())
