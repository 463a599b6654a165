"""The backups a run takes and the backup a database restore gives back: the configuration
archived, the log tail saved, the database dumped by its hook (on the worker, or on a host over
SSH and brought back over SFTP), each kept in the artifacts storage (upgrades.storage) and
described for its Artifact row; and a kept backup made a verified local file again for the
restore hook. Each returns an Outcome; none writes the run row (runs.py does, once).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from upgrades import runners, storage
from upgrades.models import (
    Artifact,
    CheckRun,
    Environment,
    HookMode,
    Operation,
    RunStatus,
)
from upgrades.services.hooks import Outcome, OutputCallback, RunControl, _hook, _run_hook


def _artifact_dir(run: CheckRun) -> Path:
    """A local scratch folder of the worker's for one run's files (hooks write to a local path);
    what is kept goes to the artifacts storage (upgrades.storage) and the folder is removed.
    Under the data folder, as everything the product writes."""
    scratch = Path(settings.DATA_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"upgrade-{run.upgrade_id}-run-{run.pk}-", dir=scratch))


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d-%H%M%S")


def _backup(
    run: CheckRun, environment: Environment, on_output: OutputCallback, control: RunControl
) -> Outcome:
    """The playbook's backups: configuration archived, log tail saved, database hook run.
    From a step, the one backup that step names; as an action, all three."""
    wanted = [run.params["operation"]] if run.params.get("operation") else [
        "config_archive", Operation.LOG_TAIL, Operation.DB_BACKUP,
    ]  # fmt: skip
    folder = _artifact_dir(run)
    outcomes: list[Outcome] = []
    try:
        for what in wanted:
            try:
                outcomes.append(_one_backup(what, run, environment, folder, on_output, control))
            except _NotStored as exc:
                outcomes.append(Outcome(RunStatus.ERROR, str(exc)))
            if outcomes[-1].status == RunStatus.CANCELLED:
                break
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    artifacts = [a for o in outcomes for a in o.artifacts]
    bad = [o for o in outcomes if o.status != RunStatus.PASSED]
    if bad:
        return Outcome(bad[0].status, "; ".join(o.reason for o in outcomes), artifacts=artifacts)
    return Outcome(
        RunStatus.PASSED,
        "; ".join(o.reason for o in outcomes),
        {"artifacts": len(artifacts)},
        artifacts=artifacts,
    )


class _NotStored(Exception):
    """The artifacts storage refused or could not be reached: the backup is not kept."""


def _file_artifact(kind: str, path: Path, run: CheckRun) -> dict[str, Any]:
    """Stream a file the run wrote locally into the artifacts storage (hashed on the way) and
    describe it for the Artifact row; the local file is removed."""
    try:
        stored = storage.artifact_store(local_path=path, upgrade_id=run.upgrade_id)
    except Exception as exc:  # noqa: BLE001 - whatever the storage raised, said to people
        raise _NotStored(
            f"{path.name} was written but could not be kept in the artifacts storage: {exc}"
        ) from exc
    return {
        "kind": kind,
        "name": path.name,
        "path": stored.where,
        "storage_name": stored.storage_name,
        "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
    }


def _one_backup(
    what: str, run: CheckRun, environment: Environment, folder: Path, on_output: OutputCallback,
    control: RunControl,
) -> Outcome:  # fmt: skip
    stamp = _stamp()
    if what == "config_archive":
        if not environment.config_directory:
            return Outcome(RunStatus.ERROR, f"{environment.name} has no configuration folder set.")
        archive = runners.config_archive(
            source_dir=environment.config_directory, dest_dir=str(folder), label="config-backup"
        )
        if not archive.path:
            return Outcome(RunStatus.FAILED, archive.reason)
        artifact = _file_artifact("config_archive", Path(archive.path), run)
        return Outcome(RunStatus.PASSED, archive.reason, artifacts=[artifact])
    if what == Operation.LOG_TAIL:
        outcome, _ = _run_hook(
            environment, Operation.LOG_TAIL, on_output=on_output, control=control
        )
        if outcome.status != RunStatus.PASSED:
            return outcome
        path = folder / f"logs-backup-{stamp}.json"
        path.write_text(outcome.output)
        return Outcome(
            RunStatus.PASSED,
            f"Log tail saved ({path.stat().st_size} bytes)",
            artifacts=[_file_artifact("log_tail", path, run)],
        )
    if what == Operation.DB_BACKUP:
        hook = _hook(environment, Operation.DB_BACKUP)
        if hook is not None and hook.mode == HookMode.SSH:
            return _ssh_db_backup(run, environment, f"db-backup-{stamp}.dump", on_output, control)
        path = folder / f"db-backup-{stamp}.dump"
        outcome, _ = _run_hook(
            environment,
            Operation.DB_BACKUP,
            on_output=on_output,
            values={"output_path": str(path)},
            payload={"output_path": str(path)},
            control=control,
        )
        if outcome.status != RunStatus.PASSED:
            return outcome
        if not path.exists():
            return Outcome(RunStatus.FAILED, "The database backup hook wrote no file.")
        size = path.stat().st_size
        return Outcome(
            RunStatus.PASSED,
            f"Database backed up ({size} bytes)",
            artifacts=[_file_artifact("db_backup", path, run)],
        )
    return Outcome(RunStatus.ERROR, f"Unknown backup {what!r}.")


def _ssh_db_backup(
    run: CheckRun, environment: Environment, name: str, on_output: OutputCallback,
    control: RunControl,
) -> Outcome:  # fmt: skip
    """A database backup hook that runs on a host: it writes its dump to ``{output_path}`` in a
    folder of its own on the host, and the runner brings the file back over SFTP straight into
    the artifacts storage (hashed on the way), then removes the folder there."""
    remote_path = runners.remote_scratch_path(name, tag=f"run-{run.pk}")

    def store(handle, size: int) -> storage.Stored:
        return storage.artifact_store_stream(
            handle=handle, size=size, name=name, upgrade_id=run.upgrade_id
        )

    outcome, result = _run_hook(
        environment, Operation.DB_BACKUP, on_output=on_output,
        values={"output_path": remote_path}, payload={"output_path": remote_path},
        control=control, fetch=runners.RemoteFetch(path=remote_path, store=store),
    )  # fmt: skip
    if outcome.status != RunStatus.PASSED:
        return outcome
    stored = getattr(result, "fetched", None)
    if stored is None:  # never "passed" without the artifact
        return Outcome(RunStatus.FAILED, f"{outcome.reason}, but its dump did not come back.")
    artifact = {
        "kind": "db_backup", "name": name, "path": stored.where,
        "storage_name": stored.storage_name, "sha256": stored.sha256,
        "size_bytes": stored.size_bytes,
    }  # fmt: skip
    return Outcome(
        RunStatus.PASSED,
        f"Database backed up on the host and brought back ({stored.size_bytes} bytes)",
        artifacts=[artifact],
    )


@contextmanager
def _local_backup(kept: Artifact | None, backup_path: str) -> Iterator[str]:
    """A backup as a local path for the restore hook: a verified copy from the artifacts storage,
    or, for a backup kept before artifacts went to a storage, its path as recorded."""
    if kept is None:
        yield backup_path
        return
    with storage.artifact_local_copy(
        storage_name=kept.storage_name, sha256=kept.sha256, size_bytes=kept.size_bytes,
        label=kept.name,
    ) as local:  # fmt: skip
        yield str(local)
