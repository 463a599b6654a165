"""Carrying out one environment operation (a "hook") as an administrator set it up: a command
on the worker, a command on one of the environment's hosts over SSH, or a webhook; with what
every executor shares, the ``RunControl`` a worker hands in (idempotency key, process mark, the
stop event) and the ``Outcome`` it hands back. Nothing here writes a run row (runs.py does, once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from upgrades import runners
from upgrades.models import (
    Environment,
    EnvironmentOperation,
    HookArgumentError,
    HookMode,
    Operation,
    RunStatus,
)
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
