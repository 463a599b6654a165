"""How each kind of run is carried out against an environment, through upgrades.runners: the
checks (HTTP health, status JSON, SLO, a command; with their repeats and retries) and the
actions (backups, deploy, rollback, log tail), chosen by ``execute``. The hook itself is run by
upgrades.services.hooks, the backups are taken by upgrades.services.backups.

Each executor returns an Outcome; it never writes the run row itself (runs.py does, once).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flags import services as flag_services
from upgrades import runners, storage
from upgrades.models import (
    Artifact,
    CheckRun,
    Environment,
    HookMode,
    Operation,
    RunStatus,
    StepKind,
)
from upgrades.runners import prometheus
from upgrades.services.backups import _backup, _local_backup
from upgrades.services.hooks import Outcome, OutputCallback, RunControl, _hook, _run_hook

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
