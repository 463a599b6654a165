"""Testing a hook from the set-up pages: a dry run on a worker, shown live.

What a dry run is, honestly: Mycelia Ops cannot know what a hook does on the other side, so it
tells the hook. A command hook runs with MYCELIA_DRY_RUN=1 in its environment (after its
argument list is checked: the program is found, the placeholders are known, the working folder
exists), with sample values in its placeholders; a webhook gets `"dry_run": true` in its JSON
body and an `X-Mycelia-Dry-Run: 1` header. A hook that ignores these does its real work, so a
hook that changes the target (deploy, rollback, backup, restore) is only tested when the
administrator confirms it honours the dry-run signal.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from celery import current_app
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from mycelia_ops.errors import BadInput, Conflict
from upgrades import runners
from upgrades.models import EnvironmentOperation, HookMode, HookTest, RunStatus
from upgrades.models.runs import CHANGING_OPERATIONS
from upgrades.services.hooks import STATUS_BY_OUTCOME
from upgrades.services.hosts import host_target
from upgrades.services.setup import argv_problem, hook_label

logger = logging.getLogger(__name__)

TASK_NAME = "upgrades.hook_test_execute"
DRY_RUN_VARIABLE = "MYCELIA_DRY_RUN"
DRY_RUN_HEADER = "X-Mycelia-Dry-Run"
SAMPLE_VERSION = "0.0.0-dry-run"
OUTPUT_FLUSH_SECONDS = 0.5
def hook_changes_target(hook: EnvironmentOperation) -> bool:
    return hook.operation in CHANGING_OPERATIONS


def hook_test_request(*, hook: EnvironmentOperation, by: Any, confirmed: bool = False) -> HookTest:
    """Queue a dry run of `hook` on a worker. One at a time per hook."""
    if hook_changes_target(hook) and not confirmed:
        raise BadInput(
            f"The {hook_label(hook)} changes the target. Confirm that it "
            f'honours {DRY_RUN_VARIABLE}=1 (a command) or "dry_run": true (a webhook) and '
            "changes nothing then.",
            field="confirm",
        )
    with transaction.atomic():
        if HookTest.objects.filter(
            hook=hook, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        ).exists():
            raise Conflict("A test of this hook is already under way; wait for its result.")
        test = HookTest.objects.create(hook=hook, requested_by=by)
        transaction.on_commit(lambda: _nudge(test.pk))
    return test


def _nudge(test_id: int) -> None:
    try:
        current_app.send_task(TASK_NAME, args=[test_id])
    except Exception as exc:  # noqa: BLE001 - any broker failure is said on the test's row
        logger.warning("Broker unreachable for hook test %s: %s", test_id, exc)
        HookTest.objects.filter(pk=test_id, status=RunStatus.QUEUED).update(
            status=RunStatus.ERROR,
            finished_at=timezone.now(),
            reason="The queue (broker) could not be reached, so no worker got the test. "
            "Check that the broker and a worker are running, then test again.",
        )
        return
    HookTest.objects.filter(pk=test_id).update(nudged_at=timezone.now())


def hook_test_execute(*, test_id: int) -> str:
    """Carry out one queued test (claimed with a conditional update: a second delivery of the
    same message does nothing)."""
    claimed = HookTest.objects.filter(pk=test_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return "already claimed"
    test = HookTest.objects.select_related("hook__environment", "hook__host").get(pk=test_id)
    started = time.monotonic()
    try:
        if test.hook.mode == HookMode.WEBHOOK:
            status, reason, output, measured = _webhook_dry_run(test.hook)
        elif test.hook.mode == HookMode.SSH:
            status, reason, output, measured = _ssh_dry_run(test)
        else:
            status, reason, output, measured = _command_dry_run(test)
    except Exception as exc:  # noqa: BLE001 - the row must not stay "running"
        logger.exception("Hook test %s failed", test_id)
        status, reason, output, measured = RunStatus.ERROR, f"The test broke: {exc}", None, {}
    fields: dict[str, Any] = {
        "status": status,
        "reason": reason[:500],
        "finished_at": timezone.now(),
        "duration_ms": round((time.monotonic() - started) * 1000),
        "measured": measured,
    }
    if output is not None:
        fields["output"] = output
    HookTest.objects.filter(pk=test_id).update(**fields)
    return status


def _webhook_dry_run(hook: EnvironmentOperation) -> tuple[str, str, str, dict[str, Any]]:
    environment = hook.environment
    with httpx.Client(
        timeout=hook.timeout_seconds,
        follow_redirects=False,
        headers={DRY_RUN_HEADER: "1"},
    ) as client:
        result = runners.webhook_post(
            url=hook.webhook_url,
            payload={
                "operation": hook.operation,
                "environment": environment.slug,
                "dry_run": True,
            },  # fmt: skip
            secret_header_name=hook.webhook_secret_header or None,
            secret=hook.webhook_secret or None,
            timeout_s=hook.timeout_seconds,
            client=client,
        )
    measured = {"status_code": result.status_code, "latency_ms": result.latency_ms}
    return (
        STATUS_BY_OUTCOME.get(result.outcome, RunStatus.ERROR),
        result.reason,
        result.body or "",
        measured,
    )


class _LiveOutput:
    """Appends a test's output to its row as it arrives, at most every OUTPUT_FLUSH_SECONDS."""

    def __init__(self, test: HookTest) -> None:
        self.test_id = test.pk
        self.pending: list[str] = []
        self.last_flush = time.monotonic()

    def flush(self) -> None:
        if self.pending:
            chunk = "".join(self.pending)
            self.pending.clear()
            HookTest.objects.filter(pk=self.test_id).update(
                output=Concat(F("output"), Value(chunk))
            )
        self.last_flush = time.monotonic()

    def __call__(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() - self.last_flush >= OUTPUT_FLUSH_SECONDS:
            self.flush()


def _ssh_dry_run(test: HookTest) -> tuple[str, str, str | None, dict[str, Any]]:
    """On the hook's host, over SSH: the same dry-run signal, the sample paths in a folder of its
    own made on the host (mode 700, under /var/tmp as a real run's) and removed afterwards."""
    hook, environment = test.hook, test.hook.environment
    problem = argv_problem(hook.argv)
    if problem:
        return RunStatus.ERROR, problem, "", {}
    if hook.host is None:
        return RunStatus.ERROR, "This SSH hook names no host: choose the host it runs on.", "", {}
    output_path = runners.remote_scratch_path("dry-run-output", tag=f"dry-run-{test.pk}")
    scratch = posixpath.dirname(output_path)
    values = {
        "version": SAMPLE_VERSION,
        "backup_path": posixpath.join(scratch, "sample-backup"),
        "output_path": output_path,
    }
    live = _LiveOutput(test)
    result = runners.ssh_command_run(
        target=host_target(hook.host),
        argv=hook.argv_filled(values),
        cwd=hook.host.working_directory or None,
        env={**{k: str(v) for k, v in environment.command_env.items()}, DRY_RUN_VARIABLE: "1"},
        timeout_s=hook.timeout_seconds,
        output_cap_bytes=environment.command_output_cap_bytes,
        on_output=live,
        run_key=f"hook-test-{test.pk}",
        run_mark=f"hook-test-{test.pk}@{timezone.now():%Y%m%dT%H%M%S.%f}",
        scratch=scratch,
    )
    live.flush()
    measured = {"exit_code": result.exit_code, "duration_ms": result.duration_ms}
    status = STATUS_BY_OUTCOME.get(result.outcome, RunStatus.ERROR)
    return status, result.reason, result.output, measured


def _command_dry_run(test: HookTest) -> tuple[str, str, str | None, dict[str, Any]]:
    hook, environment = test.hook, test.hook.environment
    problem = argv_problem(hook.argv)
    if problem:
        return RunStatus.ERROR, problem, "", {}
    cwd = environment.working_directory or None
    if cwd and not Path(cwd).is_dir():
        return RunStatus.ERROR, f"The working folder {cwd} does not exist on the worker.", "", {}
    program = hook.argv[0]
    env = {k: str(v) for k, v in environment.command_env.items()}
    search_path = env.get("PATH", os.environ.get("PATH", ""))
    found = (
        program
        if os.sep in program and os.access(Path(cwd or ".") / program, os.X_OK)
        else shutil.which(program, path=search_path)
    )
    if not found:
        return (
            RunStatus.ERROR,
            f"The program “{program}” is not found on the worker (PATH or the working folder).",
            "",
            {},
        )
    with tempfile.TemporaryDirectory(prefix="mycelia-dry-run-") as scratch:
        values = {
            "version": SAMPLE_VERSION,
            "backup_path": str(Path(scratch) / "sample-backup"),
            "output_path": str(Path(scratch) / "dry-run-output"),
        }
        argv = hook.argv_filled(values)
        pending: list[str] = []
        last_flush = [time.monotonic()]

        def flush() -> None:
            if pending:
                chunk = "".join(pending)
                pending.clear()
                HookTest.objects.filter(pk=test.pk).update(output=Concat(F("output"), Value(chunk)))
            last_flush[0] = time.monotonic()

        def on_output(text: str) -> None:
            pending.append(text)
            if time.monotonic() - last_flush[0] >= OUTPUT_FLUSH_SECONDS:
                flush()

        result = runners.command_run(
            argv=argv,
            cwd=cwd,
            env={**env, DRY_RUN_VARIABLE: "1"},
            timeout_s=hook.timeout_seconds,
            output_cap_bytes=environment.command_output_cap_bytes,
            on_output=on_output,
            run_key=f"hook-test-{test.pk}",
            run_mark=f"hook-test-{test.pk}@{timezone.now():%Y%m%dT%H%M%S.%f}",
        )
        flush()
    measured = {"exit_code": result.exit_code, "duration_ms": result.duration_ms}
    return (
        STATUS_BY_OUTCOME.get(result.outcome, RunStatus.ERROR),
        result.reason,
        result.output,
        measured,
    )
