"""How each kind of run is carried out against an environment, through upgrades.runners.

Each executor returns an Outcome; it never writes the run row itself (runs.py does, once).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from flags import services as flag_services
from upgrades import runners, storage
from upgrades.models import (
    Artifact,
    CheckRun,
    Environment,
    EnvironmentOperation,
    HookArgumentError,
    HookMode,
    Operation,
    RunStatus,
    StepKind,
)
from upgrades.runners import prometheus
from upgrades.services.hosts import host_target

OutputCallback = Callable[[str], None]

# The outcomes of runners map one to one onto run statuses.
STATUS_BY_OUTCOME = {
    "passed": RunStatus.PASSED,
    "failed": RunStatus.FAILED,
    "inconclusive": RunStatus.INCONCLUSIVE,
    "error": RunStatus.ERROR,
    "timed_out": RunStatus.TIMED_OUT,
    "cancelled": RunStatus.CANCELLED,
}


@dataclass
class RunControl:
    """What a worker hands the executors besides the output: the attempt's idempotency key
    (sent to webhooks, given to commands), a listener for each command's process group as it
    starts (recorded on the run row), and the event that says stop (a cancel, or the run lost).
    """

    key: str = ""
    mark: str = ""  # carried by every process of the attempt, to find what is left of it
    on_start: Callable[[int], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def wait(self, seconds: float) -> bool:
        """Sleep between a check's rounds; True (at once) when asked to stop."""
        return self.stop.wait(seconds) if seconds > 0 else self.stop.is_set()


@dataclass
class Outcome:
    status: str
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, result: Any, **measured: Any) -> Outcome:
        return cls(STATUS_BY_OUTCOME.get(result.outcome, RunStatus.ERROR), result.reason, measured)


def _artifact_dir(run: CheckRun) -> Path:
    """A local scratch folder of the worker's for one run's files (hooks write to a local path);
    what is kept goes to the artifacts storage (upgrades.storage) and the folder is removed.
    Under the data folder, as everything the product writes."""
    scratch = Path(settings.DATA_DIR) / "scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"upgrade-{run.upgrade_id}-run-{run.pk}-", dir=scratch))


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%d-%H%M%S")


def _hook(environment: Environment, operation: str) -> EnvironmentOperation | None:
    return environment.operations.filter(operation=operation).first()


def _run_hook(
    environment: Environment,
    operation: str,
    *,
    on_output: OutputCallback,
    values: dict[str, str] | None = None,
    payload: dict[str, Any] | None = None,
    control: RunControl | None = None,
    fetch: runners.RemoteFetch | None = None,
    upload: runners.RemoteUpload | None = None,
) -> tuple[Outcome, Any]:
    """Carry out one environment operation, as a command or a webhook, as an administrator set it up.
    A webhook carries the attempt's idempotency key; a command gets it as MYCELIA_RUN_KEY,
    reports its process group as it starts and is stopped when the control says so."""
    control = control or RunControl()
    if control.stop.is_set():
        return Outcome(RunStatus.CANCELLED, "Stopped on request before it began."), None
    hook = _hook(environment, operation)
    label = Operation(operation).label if operation in Operation.values else operation
    if hook is None:
        return (
            Outcome(
                RunStatus.ERROR,
                f"{environment.name} has no “{label}” operation set up: an administrator adds it under Set-up.",
            ),
            None,
        )
    values = values or {}
    if hook.mode == HookMode.WEBHOOK:
        result = runners.webhook_post(
            url=hook.webhook_url,
            payload={"operation": operation, "environment": environment.slug, **(payload or {})},
            secret_header_name=hook.webhook_secret_header or None,
            secret=hook.webhook_secret or None,
            timeout_s=hook.timeout_seconds,
            idempotency_key=control.key,
        )
        outcome = Outcome.of(result, status_code=result.status_code, latency_ms=result.latency_ms)
        outcome.output = result.body or ""
        return outcome, result
    # Placeholders are filled per argument: an argument list never goes through a shell.
    try:
        argv = hook.argv_filled(values)
    except HookArgumentError as error:
        return (
            Outcome(
                RunStatus.ERROR,
                f"The “{label}” hook of {environment.name} was not run: {error.message} "
                "An administrator corrects it under Set-up.",
            ),
            None,
        )
    if hook.mode == HookMode.SSH:
        # On one of the environment's hosts: the same quoting, limits, output and cancel; the
        # remote process group is stopped over the connection (no local group to record).
        if hook.host is None:
            why = f"The “{label}” hook of {environment.name} runs over SSH but names no host."
            return Outcome(RunStatus.ERROR, why), None
        result = runners.ssh_command_run(
            target=host_target(hook.host),
            argv=argv,
            cwd=hook.host.working_directory or None,
            env={k: str(v) for k, v in environment.command_env.items()},
            timeout_s=hook.timeout_seconds,
            output_cap_bytes=environment.command_output_cap_bytes,
            on_output=on_output,
            should_stop=control.stop.is_set,
            run_key=control.key,
            run_mark=control.mark,
            fetch=fetch,
            upload=upload,
        )
    else:
        result = runners.command_run(
            argv=argv,
            cwd=environment.working_directory or None,
            env={k: str(v) for k, v in environment.command_env.items()},
            timeout_s=hook.timeout_seconds,
            output_cap_bytes=environment.command_output_cap_bytes,
            on_output=on_output,
            on_start=control.on_start,
            should_stop=control.stop.is_set,
            run_key=control.key,
            run_mark=control.mark,
        )
    outcome = Outcome.of(result, exit_code=result.exit_code, duration_ms=result.duration_ms)
    outcome.output = result.output
    return outcome, result


# --- checks ------------------------------------------------------------------------------------


def _attempts(run: CheckRun, once: Callable[[], Outcome], control: RunControl) -> Outcome:
    """A check's repeats and retries, as its parameters ask.

    retries: try again (with backoff) when the answer is an error or a time-out;
    count / interval / failure_limit: a repeated check fails once failures reach the limit.
    """
    params = run.params
    retries = int(params.get("retries", 0))
    count = max(int(params.get("count", 1)), 1)
    interval = float(params.get("interval", 0))
    failure_limit = max(int(params.get("failure_limit", 1)), 1)
    samples: list[dict[str, Any]] = []
    failures = 0
    outcome = Outcome(RunStatus.ERROR, "The check did not run.")
    for round_number in range(count):
        if round_number and control.wait(interval):
            return Outcome(RunStatus.CANCELLED, "Stopped on request between rounds.")
        for attempt in range(retries + 1):
            outcome = once()
            if outcome.status not in (RunStatus.ERROR, RunStatus.TIMED_OUT):
                break
            if attempt < retries and control.wait(min(0.5 * 2**attempt, 10)):
                return Outcome(RunStatus.CANCELLED, "Stopped on request between retries.")
        if outcome.status == RunStatus.CANCELLED:
            return outcome
        samples.append({"status": outcome.status, **outcome.measured})
        if outcome.status != RunStatus.PASSED:
            failures += 1
            if failures >= failure_limit:
                break
    if count > 1:
        outcome.measured = {**outcome.measured, "samples": samples, "failures": failures}
        if failures < failure_limit and outcome.status != RunStatus.PASSED:
            outcome.status = RunStatus.PASSED
            outcome.reason = (
                f"{failures} of {len(samples)} rounds failed, under the limit of {failure_limit}."
            )
    return outcome


def _http(run: CheckRun, environment: Environment) -> Outcome:
    params = run.params
    path = params.get("path") or environment.health_path
    result = runners.http_probe(
        url=environment.base_url.rstrip("/") + path,
        method=params.get("method", "GET"),
        timeout_s=float(params.get("timeout", environment.request_timeout_seconds)),
        expected_status=params.get("expected_status"),
        json_path=params.get("json_path"),
        condition=params.get("condition"),
        fail_condition=params.get("fail_condition"),
    )
    return Outcome.of(
        result, status_code=result.status_code, latency_ms=result.latency_ms, value=result.value
    )


def _status_document(run: CheckRun, environment: Environment) -> tuple[Outcome | None, Any]:
    result = runners.http_probe(
        url=environment.status_url,
        timeout_s=float(run.params.get("timeout", environment.request_timeout_seconds)),
    )
    if result.outcome != "passed":
        return Outcome.of(
            result, status_code=result.status_code, latency_ms=result.latency_ms
        ), None
    try:
        return None, json.loads(result.body)
    except (TypeError, ValueError):
        return (
            Outcome(
                RunStatus.FAILED,
                f"GET {environment.status_path} answered {result.status_code} but the body is not JSON",
                {"status_code": result.status_code, "latency_ms": result.latency_ms},
            ),
            None,
        )


def _status_json(run: CheckRun, environment: Environment) -> Outcome:
    failed, document = _status_document(run, environment)
    if failed:
        return failed
    evaluation = runners.status_json_evaluate(document)
    return Outcome.of(evaluation, **evaluation.figures)


def _slo(
    run: CheckRun, environment: Environment, on_output: OutputCallback, control: RunControl
) -> Outcome:
    if run.params.get("source") == "command":
        return _run_hook(environment, Operation.SLO_CHECK, on_output=on_output, control=control)[0]
    every = list(environment.slo_thresholds.all())
    if not every:
        return Outcome(
            RunStatus.ERROR,
            f"{environment.name} has no SLO thresholds: an administrator sets them under Set-up.",
        )
    # Thresholds with a PromQL query are read from Prometheus (an instant query each); the
    # others from the status document. No data from Prometheus is inconclusive, never a pass.
    queried = [(t.metric, t.operator, t.limit, t.query) for t in every if t.query]
    thresholds = [(t.metric, t.operator, t.limit) for t in every if not t.query]
    outcome = None
    if thresholds:
        failed, document = _status_document(run, environment)
        if failed:
            return failed
        figures = runners.status_json_evaluate(document).figures
        evaluation = runners.slo_evaluate(
            figures=figures.get("overall", figures), thresholds=thresholds
        )
        outcome = Outcome.of(evaluation, **figures.get("overall", {}), breaches=evaluation.breaches)
        if not queried:
            return outcome
    try:
        auth = environment.prometheus_auth()
    except prometheus.SecretFileError as exc:
        return Outcome(RunStatus.ERROR, f"Prometheus of {environment.name}: {exc}")
    from_prometheus = prometheus.prometheus_slo_evaluate(
        base_url=environment.prometheus_url,
        thresholds=queried,
        timeout_s=float(run.params.get("timeout", environment.prometheus_timeout_seconds)),
        auth=auth,
    )
    measured = {**from_prometheus.figures, "source": "prometheus"}
    if from_prometheus.no_data:
        measured["no_data"] = from_prometheus.no_data
    queried_outcome = Outcome.of(from_prometheus, **measured, breaches=from_prometheus.breaches)
    if outcome is None:
        return queried_outcome
    # Both sources: the worse outcome leads (a breach anywhere fails), both reasons are kept.
    rank = [RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.ERROR, RunStatus.INCONCLUSIVE]
    worse = min(
        (outcome, queried_outcome),
        key=lambda o: rank.index(o.status) if o.status in rank else len(rank),
    )
    return Outcome(
        worse.status,
        f"{outcome.reason}; {queried_outcome.reason}",
        {
            **outcome.measured,
            **measured,
            "source": "status document and prometheus",
            "breaches": [*outcome.measured["breaches"], *from_prometheus.breaches],
        },
    )


def _command(
    run: CheckRun, environment: Environment, on_output: OutputCallback, control: RunControl
) -> Outcome:
    operation = run.params.get("operation", "")
    return _run_hook(environment, operation, on_output=on_output, control=control)[0]


# --- actions -----------------------------------------------------------------------------------


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


def _flag_state(run: CheckRun, environment: Environment, *, on: bool) -> Outcome:
    """Feature-flag deploy and rollback go through the flags app's service."""
    try:
        changed = flag_services.flag_switch_by_key(
            flag_key=run.params["flag_key"],
            environment_key=environment.slug,
            on=on,
            by=run.requested_by,
            reason=f"Upgrade #{run.upgrade_id}: {run.title}",
            source=(run.upgrade.get_absolute_url(), run.upgrade.title),
        )
    except Exception as exc:  # noqa: BLE001 - the flags app names the problem
        return Outcome(RunStatus.FAILED, str(exc))
    state = "on" if on else "off"
    return Outcome(
        RunStatus.PASSED,
        f"Flag {run.params['flag_key']} is {state} in {environment.slug}"
        + ("" if changed else " (it already was)"),
        {"flag_on": on, "changed": changed},
    )


def read_running_version(environment: Environment) -> tuple[str, str]:
    """The version the target says it runs, from /health, else its status JSON; and where it
    was read (or why it could not be)."""
    for url in (environment.health_url, environment.status_url):
        result = runners.http_probe(
            url=url, timeout_s=environment.request_timeout_seconds, expected_status=range(200, 600)
        )
        try:
            document = json.loads(result.body or "")
        except (TypeError, ValueError):
            continue
        version = document.get("version") if isinstance(document, dict) else None
        if isinstance(version, str) and version.strip():
            return version.strip()[:50], url
    return "", f"Neither {environment.health_path} nor {environment.status_path} names a version."


def _with_running_version(outcome: Outcome, environment: Environment) -> Outcome:
    # After a deploy or rollback the target says what it runs now; the page shows that.
    if outcome.status == RunStatus.PASSED:
        version, _ = read_running_version(environment)
        if version:
            outcome.measured = {**outcome.measured, "running_version": version}
    return outcome


def _deploy(
    run: CheckRun, environment: Environment, on_output: OutputCallback, control: RunControl
) -> Outcome:
    if "flag_key" in run.params:
        return _flag_state(run, environment, on=True)
    version = run.params.get("version", "")
    outcome = _run_hook(
        environment, Operation.DEPLOY, on_output=on_output,
        values={"version": version}, payload={"version": version}, control=control,
    )[0]  # fmt: skip
    return _with_running_version(outcome, environment)


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


def _rollback(
    run: CheckRun, environment: Environment, on_output: OutputCallback, control: RunControl
) -> Outcome:
    if run.action == "rollback_flag":
        return _flag_state(run, environment, on=False)
    if run.action == "rollback_version":
        version = run.params.get("version", "")
        outcome = _run_hook(
            environment, Operation.ROLLBACK, on_output=on_output,
            values={"version": version}, payload={"version": version}, control=control,
        )[0]  # fmt: skip
        return _with_running_version(outcome, environment)
    # Database rollback: restore the chosen backup, then verify the data.
    backup_path = run.params.get("backup_path", "")
    kept = Artifact.objects.filter(
        upgrade_id=run.upgrade_id, path=backup_path, name=run.params.get("backup_name", "")
    ).exclude(storage_name="").first()  # fmt: skip
    on_host = getattr(_hook(environment, Operation.DB_RESTORE), "mode", "") == HookMode.SSH
    try:
        with _local_backup(kept, backup_path) as local_path:
            path, upload = local_path, None
            if on_host:  # the verified copy goes to the hook's host, into a folder of its own
                path = runners.remote_scratch_path(Path(local_path).name, tag=f"run-{run.pk}")
                size = kept.size_bytes if kept else Path(local_path).stat().st_size
                upload = runners.RemoteUpload(path=path, local=local_path, size=size)
            restored, _ = _run_hook(
                environment, Operation.DB_RESTORE, on_output=on_output,
                values={"backup_path": path}, payload={"backup_path": path},
                control=control, upload=upload,
            )  # fmt: skip
    except (storage.ArtifactTampered, FileNotFoundError) as exc:
        gone = f"{run.params.get('backup_name')} is no longer in the artifacts storage."
        why = str(exc) if isinstance(exc, storage.ArtifactTampered) else gone
        return Outcome(RunStatus.ERROR, f"Not restored: {why}")
    if restored.status != RunStatus.PASSED:
        return restored
    verified, _ = _run_hook(
        environment, Operation.VERIFY_DATA, on_output=on_output, control=control
    )
    if verified.status != RunStatus.PASSED:
        verified.reason = f"Restored {run.params.get('backup_name')}, but data verification failed: {verified.reason}"
        return verified
    outcome = Outcome(
        RunStatus.PASSED,
        f"Restored {run.params.get('backup_name')} and verified the data",
        {**restored.measured, "verified": True},
    )
    return _with_running_version(outcome, environment)


def execute(
    run: CheckRun, *, on_output: OutputCallback, control: RunControl | None = None
) -> Outcome:
    environment = run.upgrade.environment
    control = control or RunControl(key=run.key, mark=run.process_mark)
    if run.action == StepKind.HTTP_HEALTH:
        return _attempts(run, lambda: _http(run, environment), control)
    if run.action == StepKind.STATUS_JSON:
        return _attempts(run, lambda: _status_json(run, environment), control)
    if run.action == StepKind.SLO:
        return _attempts(run, lambda: _slo(run, environment, on_output, control), control)
    if run.action == StepKind.COMMAND:
        return _attempts(run, lambda: _command(run, environment, on_output, control), control)
    if run.action in (StepKind.BACKUP, "backup"):
        return _backup(run, environment, on_output, control)
    if run.action == "deploy":
        return _deploy(run, environment, on_output, control)
    if run.action == "log_tail":
        return _run_hook(environment, Operation.LOG_TAIL, on_output=on_output, control=control)[0]
    if run.action.startswith("rollback_"):
        return _rollback(run, environment, on_output, control)
    return Outcome(RunStatus.ERROR, f"Nothing knows how to run {run.action!r}.")
