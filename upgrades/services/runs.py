"""Check runs: requested by people, carried out by Celery workers, swept when a nudge is lost.

The run row is written first and the broker is nudged only after the transaction commits. A
worker claims the row with a conditional update (queued → running), so a message delivered
twice, or a run swept while its message is still in flight, is carried out once.

What a worker's death means depends on the run. A check reads the target: it is queued again
(at least once). A run that changes the target (a deploy, rollback, restore or backup) is never
carried out again by itself (at most once): the sweep stops whatever is left of it, marks it
"interrupted — outcome unknown", and a release manager decides (read the target, retry, mark
it passed or failed). Every process a run starts belongs to a process group recorded on the
run, stopped whole on timeout, cancel, time limit and worker death.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat, Length, Substr
from django.utils import timezone

from upgrades import reactions, runners, selectors
from upgrades.models import (
    ACTIVE_RUN_STATUSES,
    AUTOMATED_STEP_KINDS,
    Action,
    ChecklistStep,
    CheckRun,
    DeployState,
    EventKind,
    RollbackState,
    RunKind,
    RunStatus,
    StepKind,
    StepStatus,
    Transition,
    Upgrade,
    UpgradeEvent,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
    lifecycle,
)
from upgrades.services.checklist import (
    Conflict,
    InvalidInput,
    NotAllowed,
    status_move,
    step_complete,
)
from upgrades.services.executors import execute, read_running_version
from upgrades.services.hooks import Outcome, RunControl

logger = logging.getLogger(__name__)

# The actions a manager can start from the upgrade page, and the run kind each one is.
ACTIONS: dict[str, tuple[str, str]] = {
    "backup": (RunKind.BACKUP, "Back up configuration, logs and database"),
    "log_tail": (RunKind.CHECK, "Tail the logs (ops:tail)"),
    "deploy": (RunKind.DEPLOY, "Deploy"),
    "rollback_version": (RunKind.ROLLBACK, "Roll back to the previous version"),
    "rollback_flag": (RunKind.ROLLBACK, "Roll back the feature flag (turn it off)"),
    "rollback_database": (RunKind.ROLLBACK, "Restore the database from a backup"),
}
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
# Moves that end the upgrade: allowed while it is being deployed or watched.
ROLLBACK_FROM = frozenset({UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING})


def _stale_after() -> timedelta:
    return timedelta(seconds=getattr(settings, "MYCELIA_RUN_STALE_SECONDS", 60))


def _event(run: CheckRun, *, kind: str, by: Any, from_value: str, to_value: str, message: str):
    UpgradeEvent.objects.create(
        upgrade_id=run.upgrade_id,
        step_id=run.step_id,
        kind=kind,
        actor=by,
        from_value=from_value,
        to_value=to_value,
        message=message,
    )


def _nudge(run_id: int) -> None:
    """Send the broker a message for a run. If the broker is down the run stays queued with no
    nudge recorded, the page says so, and the sweep sends it once the broker is back."""
    try:
        # Sent by name: upgrades.tasks imports the services (importing it here is a cycle), and
        # a process that never imported it (the web server, `manage.py upgrade`) has no such
        # task in its registry; the worker has it, with its limits and late acks.
        # A short retry re-opens a pooled connection left dead by an outage; a broker that is
        # really down fails fast instead of holding up the request.
        current_app.send_task(
            "upgrades.check_run_execute", args=[run_id], retry=True, retry_policy=PUBLISH_RETRY
        )
    except Exception as exc:  # noqa: BLE001 - any broker failure leaves the row for the sweep
        logger.warning("Broker unreachable for run %s: %s", run_id, exc)
        return
    CheckRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(nudged_at=timezone.now())


def _queue(run: CheckRun) -> CheckRun:
    transaction.on_commit(lambda: _nudge(run.pk))
    return run


# --- requesting ------------------------------------------------------------------------------


def _check_upgrade_open(upgrade: Upgrade, action: str = "") -> None:
    # A rolled-back upgrade may still restore its database; nothing else runs once ended.
    if upgrade.is_finished and not (
        action == "rollback_database" and upgrade.status == UpgradeStatus.ROLLED_BACK
    ):
        raise Conflict(
            f"The upgrade is {upgrade.get_status_display().lower()}: nothing more runs for it."
        )


def _new_run(
    *, upgrade: Upgrade, step: ChecklistStep | None, kind: str, action: str, title: str,
    params: dict, by: Any, batch: str = "",
) -> CheckRun:  # fmt: skip
    run = CheckRun.objects.create(
        upgrade=upgrade,
        step=step,
        kind=kind,
        action=action,
        title=title,
        params=params,
        batch=batch,
        requested_by=by,
    )
    _event(
        run,
        kind=EventKind.RUN_REQUESTED,
        by=by,
        from_value="",
        to_value=RunStatus.QUEUED,
        message=f"Run #{run.pk}: {title}",
    )
    return _queue(run)


def check_run_request(
    *, upgrade: Upgrade, step: ChecklistStep, by: Any, batch: str = ""
) -> CheckRun:
    """Queue the automated check of one step. One active run per step at a time."""
    if step.upgrade_id != upgrade.pk:
        raise InvalidInput("That step belongs to another upgrade.")
    if step.kind not in AUTOMATED_STEP_KINDS:
        raise InvalidInput(f"“{step.title}” is a manual step: there is nothing to run.")
    if step.kind == StepKind.DEPLOY:
        return action_request(upgrade=upgrade, action="deploy", by=by, confirmed=True, step=step)
    with transaction.atomic():
        upgrade = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
        _check_upgrade_open(upgrade)
        refusal = upgrade.stage_refusal(step.phase.stage)
        if refusal:
            raise Conflict(f"“{step.title}”: {refusal}")
        if step.runs.filter(status__in=ACTIVE_RUN_STATUSES).exists():
            raise Conflict(f"“{step.title}” is already being checked.")
        kind = RunKind.BACKUP if step.kind == StepKind.BACKUP else RunKind.CHECK
        return _new_run(
            upgrade=upgrade,
            step=step,
            kind=kind,
            action=step.kind,
            title=step.title,
            params={"operation": step.operation, **step.check_config},
            by=by,
            batch=batch,
        )


def phase_checks_request(*, upgrade: Upgrade, phase: UpgradePhase, by: Any) -> list[CheckRun]:
    """Fan out every open automated check of a phase; the workers run them in parallel.
    Deploy steps are left out: a deploy is started on its own, with a confirmation."""
    if phase.upgrade_id != upgrade.pk:
        raise InvalidInput("That phase belongs to another upgrade.")
    steps = list(
        phase.steps.filter(
            kind__in=AUTOMATED_STEP_KINDS - {StepKind.DEPLOY}, status=StepStatus.OPEN
        ).exclude(runs__status__in=ACTIVE_RUN_STATUSES)
    )
    if not steps:
        raise Conflict(f"“{phase.title}” has no open automated check to run.")
    batch = uuid.uuid4().hex
    with transaction.atomic():
        return [check_run_request(upgrade=upgrade, step=s, by=by, batch=batch) for s in steps]


# The lifecycle action each worker action stands for, as the lifecycle table names it.
LIFECYCLE_ACTION = {
    "backup": Action.BACK_UP,
    "deploy": Action.DEPLOY,
    "rollback_version": Action.ROLL_BACK,
    "rollback_flag": Action.ROLL_BACK,
    "rollback_database": Action.RESTORE_DATABASE,
}


def _lifecycle_action(upgrade: Upgrade, action: str) -> str | None:
    if action == "deploy" and upgrade.deploy_state in (DeployState.FAILED, DeployState.UNKNOWN):
        return Action.RETRY
    if action.startswith("rollback_") and upgrade.rollback_state in (
        RollbackState.FAILED, RollbackState.UNKNOWN,
    ):  # fmt: skip
        return Action.RETRY
    return LIFECYCLE_ACTION.get(action)


def action_request(
    *, upgrade: Upgrade, action: str, by: Any, confirmed: bool,
    backup_id: int | None = None, step: ChecklistStep | None = None, reason: str = "",
) -> CheckRun:  # fmt: skip
    """Queue a backup, deploy or rollback, if the lifecycle table allows it now. Each asks for
    an explicit confirmation first."""
    if action not in ACTIONS:
        raise InvalidInput(f"Unknown action {action!r}.")
    if not confirmed:
        raise InvalidInput(f"“{ACTIONS[action][1]}” needs your confirmation.", field="confirm")
    kind, title = ACTIONS[action]
    params: dict[str, Any] = {}
    with transaction.atomic():
        upgrade = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
        _check_upgrade_open(upgrade, action)
        lifecycle_action = _lifecycle_action(upgrade, action)
        if lifecycle_action is not None:
            verdict = lifecycle.verdict(
                lifecycle_action, selectors.lifecycle_facts(upgrade, actor=by)
            )
            if not verdict.allowed:
                raise Conflict(verdict.why)
        if action == "deploy":
            if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG:
                params = {"flag_key": upgrade.flag_key}
                title = f"Turn on feature flag {upgrade.flag_key}"
            else:
                params = {"version": upgrade.version_to}
                title = f"Deploy {upgrade.version_to or 'the new version'}"
            # The deploy ticks the checklist's deploy step ("Enable feature flag", ...).
            step = (
                step
                or upgrade.steps.filter(kind=StepKind.DEPLOY, status=StepStatus.OPEN)
                .order_by("phase__order", "order")
                .first()
            )
            _deployment_state(
                upgrade, by=by, deploy=DeployState.RUNNING, message=f"{title} requested."
            )
        elif kind == RunKind.ROLLBACK:
            if action == "rollback_flag":
                params = {"flag_key": upgrade.flag_key}
            elif action == "rollback_version":
                params = {"version": upgrade.rollback_target}
                title = f"Roll back to {upgrade.rollback_target}"
            else:
                backup = next(
                    (b for b in selectors.database_backups_before_deploy(upgrade)
                     if b.pk == backup_id),
                    None,
                )  # fmt: skip
                if backup is None:
                    raise InvalidInput(
                        "Choose a database backup taken before this upgrade's deploy.",
                        field="backup_id",
                    )
                params = {"backup_path": backup.path, "backup_name": backup.name}
                title = f"Restore the database from {backup.name}"
            if action != "rollback_database":
                _deployment_state(
                    upgrade, by=by, rollback=RollbackState.RUNNING,
                    message=f"{title} requested" + (f": {reason}" if reason else "."),
                )  # fmt: skip
            else:
                _event_plain(upgrade, by=by, kind=EventKind.ROLLBACK, message=f"{title} requested.")
        return _new_run(
            upgrade=upgrade, step=step, kind=kind, action=action, title=title,
            params=params, by=by,
        )  # fmt: skip


def _deployment_state(
    upgrade: Upgrade, *, by: Any, message: str, deploy: str | None = None,
    rollback: str | None = None, **more: Any,
) -> None:  # fmt: skip
    """Record what the panel now knows of the change to the target, with its event."""
    fields = ["updated_at", *more]
    for name, value in more.items():
        setattr(upgrade, name, value)
    if deploy is not None:
        previous, upgrade.deploy_state = upgrade.deploy_state, deploy
        fields.append("deploy_state")
        kind, new = EventKind.DEPLOYMENT, deploy
    if rollback is not None:
        previous, upgrade.rollback_state = upgrade.rollback_state, rollback
        fields.append("rollback_state")
        kind, new = EventKind.ROLLBACK, rollback
    upgrade.save(update_fields=fields)
    UpgradeEvent.objects.create(
        upgrade=upgrade, actor=by, kind=kind, from_value=previous, to_value=new, message=message
    )


def _event_plain(upgrade: Upgrade, *, by: Any, kind: str, message: str) -> None:
    UpgradeEvent.objects.create(upgrade=upgrade, actor=by, kind=kind, message=message)


def check_run_cancel(*, run: CheckRun, by: Any) -> bool:
    """Cancel a run. A queued run is cancelled at once. A running one is asked to stop: its
    worker notices within a second, stops the command's whole process tree and ends the run
    Cancelled with the output so far. A deploy, rollback or restore stopped mid-way may have
    half-happened: its outcome is then unknown, and a release manager decides."""
    with transaction.atomic():
        changed = CheckRun.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
            status=RunStatus.CANCELLED,
            finished_at=timezone.now(),
            reason="Cancelled before it ran.",
        )
        if changed:
            _event(
                run, kind=EventKind.RUN_FINISHED, by=by, from_value=RunStatus.QUEUED,
                to_value=RunStatus.CANCELLED, message=f"Run #{run.pk} cancelled: {run.title}",
            )  # fmt: skip
            return True
        asked = CheckRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, cancel_requested_at__isnull=True
        ).update(cancel_requested_at=timezone.now())
        if asked:
            warning = (
                " It may have changed part of the target: once it stops, its outcome is "
                "unknown and you decide what happened."
                if run.changes_target
                else ""
            )
            _event(
                run, kind=EventKind.RUN_REQUESTED, by=by, from_value=RunStatus.RUNNING,
                to_value="cancel requested",
                message=f"Run #{run.pk} {run.title}: asked to stop.{warning}",
            )  # fmt: skip
            return True
    if CheckRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).exists():
        raise Conflict("This run has already been asked to stop; its worker is stopping it.")
    raise Conflict("This run has finished: there is nothing to cancel.")


# --- carrying out ----------------------------------------------------------------------------


class _Heartbeat:
    """Marks a claimed run alive every few seconds, so the sweep can tell a slow run from one
    whose worker died; and looks at the row twice a second, so a cancel (or the run taken from
    this worker by the sweep) stops the command within a second, through ``stop``."""

    POLL_S = 0.5

    def __init__(self, run_id: int, attempt: int) -> None:
        self.run_id, self.attempt = run_id, attempt
        self.interval = max(_stale_after().total_seconds() / 4, self.POLL_S)
        self.stop = threading.Event()  # the command must stop: cancelled, or no longer ours
        self.lost = False
        self._done = threading.Event()
        self._last_beat = time.monotonic()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        try:
            while not self._done.wait(self.POLL_S):
                try:
                    self._look()
                except Exception as exc:  # noqa: BLE001 - a locked database is no reason to stop beating
                    logger.warning("Heartbeat of run %s: %s", self.run_id, exc)
        finally:
            connection.close()

    def _look(self) -> None:
        mine = {"pk": self.run_id, "status": RunStatus.RUNNING, "attempt": self.attempt}
        if time.monotonic() - self._last_beat >= self.interval:
            self._last_beat = time.monotonic()
            CheckRun.objects.filter(**mine).update(heartbeat_at=timezone.now())
        row = CheckRun.objects.filter(pk=self.run_id).values_list(
            "status", "attempt", "cancel_requested_at"
        ).first()  # fmt: skip
        if row is None:
            return  # not visible from here (a test's open transaction): nothing to go by
        if row[0] != RunStatus.RUNNING or row[1] != self.attempt:
            self._lose()
        elif row[2] is not None:
            self.stop.set()

    def _lose(self) -> None:
        # The sweep decided this worker was gone: whatever it started stops now.
        self.lost = True
        self.stop.set()

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)


class OutputSink:
    """Appends a run's output to its row as it arrives (capped), for the live log; and records
    each command's process group as it starts."""

    def __init__(self, run_id: int, attempt: int, cap: int) -> None:
        self.run_id, self.attempt, self.cap = run_id, attempt, cap
        self.kept = 0
        self.truncated = False

    def __call__(self, chunk: str) -> None:
        if not chunk or self.truncated:
            return
        room = self.cap - self.kept
        if len(chunk) > room:
            chunk, self.truncated = chunk[:room] + "\n… output capped …\n", True
        self.kept += len(chunk)
        CheckRun.objects.filter(pk=self.run_id, attempt=self.attempt).update(
            output=Concat(F("output"), Value(chunk)),
            output_truncated=self.truncated,
            heartbeat_at=timezone.now(),
        )

    def started(self, pgid: int) -> None:
        CheckRun.objects.filter(pk=self.run_id, attempt=self.attempt).update(pgid=pgid)


def check_run_execute(*, run_id: int) -> str:
    """Claim a queued run and carry it out. Returns what happened, for the task's log."""
    now = timezone.now()
    claimed = CheckRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, attempt=F("attempt") + 1,
        output="", output_truncated=False, pgid=None,
    )  # fmt: skip
    if not claimed:
        # A message delivered again (late acks) for a run that is running, finished or
        # interrupted finds nothing to do.
        state = CheckRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
        return f"run {run_id} not claimed (it is {state or 'gone'})"
    run = CheckRun.objects.select_related("upgrade__environment", "step").get(pk=run_id)
    if run.kind != RunKind.CHECK:
        # Backups, deploys and rollbacks show on the timeline when they start, not only at the end.
        _event(
            run, kind=EventKind.RUN_REQUESTED, by=None, from_value=RunStatus.QUEUED,
            to_value=RunStatus.RUNNING,
            message=f"Run #{run.pk} {run.title} started on a worker (attempt {run.attempt}).",
        )  # fmt: skip
    sink = OutputSink(run.pk, run.attempt, run.upgrade.environment.command_output_cap_bytes)
    started = time.monotonic()
    with _Heartbeat(run.pk, run.attempt) as heartbeat:
        control = RunControl(
            key=run.key, mark=run.process_mark, on_start=sink.started, stop=heartbeat.stop
        )
        try:
            outcome = execute(run, on_output=sink, control=control)
        except Exception as exc:  # noqa: BLE001 - a bug in one run must not kill the worker
            logger.exception("Run %s failed unexpectedly", run.pk)
            if run.changes_target:
                # A soft time limit, say, cut it off mid-way: its tree was stopped, but what
                # it had changed by then nobody knows.
                outcome = Outcome(
                    RunStatus.INTERRUPTED,
                    f"The run was cut off mid-way ({type(exc).__name__}: {exc}); everything it "
                    "started was stopped. What it changed is unknown: check the target.",
                )
            else:
                outcome = Outcome(RunStatus.ERROR, f"The run broke: {type(exc).__name__}: {exc}")
        finally:
            # Nothing this attempt started outlives it, even a process that left its group.
            runners.run_processes_kill(pgid=None, mark=run.process_mark)
    said = _finish(run, outcome, duration_ms=int((time.monotonic() - started) * 1000))
    reactions.events_react(upgrade_id=run.upgrade_id)
    return said


def _finish(run: CheckRun, outcome: Any, *, duration_ms: int) -> str:
    cancel_asked = CheckRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=False).exists()
    if outcome.status == RunStatus.CANCELLED and run.changes_target:
        outcome.reason += (
            ". It may have changed part of the target: the outcome is unknown. Check the "
            "target, then retry, or mark it passed or failed."
        )
    elif cancel_asked and outcome.status != RunStatus.CANCELLED:
        outcome.reason += " (the request to cancel came after it had finished)"
    with transaction.atomic():
        finished = CheckRun.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, attempt=run.attempt
        ).update(
            status=outcome.status,
            reason=outcome.reason[:500],
            measured=outcome.measured,
            finished_at=timezone.now(),
            duration_ms=duration_ms,
        )
        if not finished:
            # The sweep took this run from its worker: that decision stands. A change that
            # completed after all is worth knowing to whoever decides what happened.
            now_status = CheckRun.objects.filter(pk=run.pk).values_list("status", flat=True).first()
            if now_status == RunStatus.INTERRUPTED and outcome.status == RunStatus.PASSED:
                _event(
                    run, kind=EventKind.RUN_FINISHED, by=None, from_value=RunStatus.INTERRUPTED,
                    to_value=RunStatus.INTERRUPTED,
                    message=f"Run #{run.pk} {run.title}: the worker thought lost finished after "
                    f"all and reported: {outcome.reason}. The run stays interrupted for you to "
                    "decide.",
                )  # fmt: skip
            return f"run {run.pk} attempt {run.attempt} superseded"
        if outcome.output and not CheckRun.objects.filter(pk=run.pk).exclude(output="").exists():
            CheckRun.objects.filter(pk=run.pk).update(output=outcome.output[: 64 * 1024])
        run.refresh_from_db()
        _event(
            run, kind=EventKind.RUN_FINISHED, by=None, from_value=RunStatus.RUNNING,
            to_value=outcome.status, message=f"Run #{run.pk} {run.title}: {outcome.reason}",
        )  # fmt: skip
        for artifact in outcome.artifacts:
            run.artifacts.create(upgrade_id=run.upgrade_id, **artifact)
        # In the same transaction: whoever sees the run finished also sees what it ticked.
        if run.outcome_unknown:
            _outcome_unknown(run, message=f"Run #{run.pk} {run.title}: {outcome.reason}")
        else:
            _after_finish(run, outcome)
    return f"run {run.pk} {outcome.status}: {outcome.reason}"


def _outcome_unknown(run: CheckRun, *, message: str) -> None:
    """A deploy or rollback cut off mid-way: the upgrade says its outcome is unknown, and the
    lifecycle table offers the release manager's choices (retry, roll back, mark failed,
    resolved by hand). A backup cut off changes nothing but the run."""
    if run.kind not in (RunKind.DEPLOY, RunKind.ROLLBACK):
        return
    upgrade = Upgrade.objects.select_for_update().get(pk=run.upgrade_id)
    if run.kind == RunKind.DEPLOY:
        if upgrade.deploy_state == DeployState.RUNNING:
            _deployment_state(upgrade, by=run.requested_by, message=message,
                              deploy=DeployState.UNKNOWN)  # fmt: skip
        return
    if run.action != "rollback_database" or upgrade.status in ROLLBACK_FROM:
        _deployment_state(upgrade, by=run.requested_by, message=message,
                          rollback=RollbackState.UNKNOWN)  # fmt: skip


# --- deciding what happened, when nobody knows ------------------------------------------------

RESOLUTIONS = (RunStatus.PASSED, RunStatus.FAILED)


def _decided_kind(run: CheckRun) -> str:
    return {RunKind.DEPLOY: EventKind.DEPLOYMENT, RunKind.ROLLBACK: EventKind.ROLLBACK}.get(
        run.kind, EventKind.RUN_FINISHED
    )


def _check_may_decide(run: CheckRun, by: Any) -> None:
    if not selectors.lifecycle_facts(run.upgrade, actor=by).actor_can_operate:
        raise NotAllowed("Only release managers decide what happened to a run.")


def check_run_target_read(*, run: CheckRun, by: Any) -> tuple[str, str]:
    """Read-only: ask the target which version it runs now (its /health, else its status JSON),
    to decide what an interrupted run did. Recorded on the timeline. Returns the version ("" if
    none could be read) and the sentence recorded."""

    _check_may_decide(run, by)
    if not run.outcome_unknown:
        raise Conflict("Only a run whose outcome is unknown needs the target checked.")
    upgrade = run.upgrade
    version, source = read_running_version(upgrade.environment)  # outside any transaction
    said = f"the target reports version {version} (read from {source})" if version else source
    wanted = f" The deploy was to {upgrade.version_to}." if run.kind == RunKind.DEPLOY else ""
    if run.action == "rollback_version":
        wanted = f" The rollback was to {run.params.get('version') or 'the previous version'}."
    message = f"Run #{run.pk} {run.title}, outcome unknown: {said}.{wanted}"
    with transaction.atomic():
        _event(run, kind=_decided_kind(run), by=by, from_value=run.status,
               to_value="target checked", message=message)  # fmt: skip
    return version, message


def check_run_resolve(*, run: CheckRun, by: Any, outcome: str, reason: str) -> CheckRun:
    """A release manager's decision on a run whose outcome was unknown (interrupted, or
    cancelled mid-way): it passed or it failed. Recorded with who and why, and followed by
    what a real pass or failure means (a deploy that passed is deployed; one that failed is
    offered a retry; a rollback that passed rolls the upgrade back)."""

    if outcome not in RESOLUTIONS:
        raise InvalidInput("Say whether it passed or failed.", field="outcome")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say how you know (what you checked on the target).", field="reason")
    _check_may_decide(run, by)
    with transaction.atomic():
        locked = CheckRun.objects.select_for_update().get(pk=run.pk)
        if not locked.outcome_unknown:
            raise Conflict(
                f"Run #{locked.pk} is {locked.get_status_display().lower()}: only a run whose "
                "outcome is unknown is decided by hand."
            )
        upgrade = Upgrade.objects.select_for_update().get(pk=locked.upgrade_id)
        state_now = {
            RunKind.DEPLOY: upgrade.deploy_state == DeployState.UNKNOWN,
            RunKind.ROLLBACK: upgrade.rollback_state == RollbackState.UNKNOWN,
        }.get(locked.kind, True)
        if locked.action != "rollback_database" and (
            not state_now or (locked.kind != RunKind.BACKUP and upgrade.is_finished)
        ):
            raise Conflict(
                "The upgrade has moved on since this run (it was retried, or decided another "
                "way): the run's outcome no longer matters to it."
            )
        previous = locked.status
        name = getattr(by, "get_username", lambda: "someone")()
        decided = f"marked {outcome} by {name}: {reason}"
        locked.status = outcome
        locked.resolved_by, locked.resolved_at = by, timezone.now()
        locked.reason = f"{locked.reason} — {decided}"[-500:] if locked.reason else decided[:500]
        locked.save(update_fields=["status", "resolved_by", "resolved_at", "reason"])
        _event(
            locked, kind=EventKind.RUN_FINISHED, by=by, from_value=previous, to_value=outcome,
            message=f"Run #{locked.pk} {locked.title}: outcome was unknown; {decided}",
        )  # fmt: skip
        _after_finish(locked, Outcome(outcome, f"{decided}"))
    locked.refresh_from_db()
    return locked


def _after_finish(run: CheckRun, outcome: Any) -> None:
    """What a finished run means for the upgrade: a passed check ticks its step; a deploy or
    rollback records what the panel now knows of the target. A failed deploy or rollback keeps
    the upgrade where it is and the page offers the next step (retry, roll back, mark failed,
    resolved by hand): failure is guided, never a dead end."""
    passed = outcome.status == RunStatus.PASSED
    if passed and run.step_id:
        step = ChecklistStep.objects.get(pk=run.step_id)
        if step.status == StepStatus.OPEN:
            # If the upgrade finished meanwhile the step stays as it is; the run is on record.
            with contextlib.suppress(Conflict):
                step_complete(step=step, by=None, note=f"Run #{run.pk}: {outcome.reason}", run=run)
    if run.kind not in (RunKind.DEPLOY, RunKind.ROLLBACK):
        return
    upgrade = Upgrade.objects.select_for_update().get(pk=run.upgrade_id)
    running = outcome.measured.get("running_version", "") if passed else ""
    said = f"Run #{run.pk} {run.title}: {outcome.reason}"
    if run.kind == RunKind.DEPLOY:
        more: dict[str, Any] = {}
        if passed:
            more = {
                "deployed_at": timezone.now(),
                "deployed_version": running or upgrade.version_to,
            }
            if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG:
                # Only a flip the deploy made can be undone by turning the flag off again.
                more["rollback_target"] = "off" if outcome.measured.get("changed", True) else ""
        _deployment_state(
            upgrade, by=run.requested_by, message=said,
            deploy=DeployState.PASSED if passed else DeployState.FAILED, **more,
        )  # fmt: skip
        return
    if run.action == "rollback_database":
        _after_restore(upgrade, run, outcome, running=running)
        return
    _deployment_state(
        upgrade, by=run.requested_by, message=said,
        rollback=RollbackState.PASSED if passed else RollbackState.FAILED,
        **({"deployed_version": running} if running else {}),
    )  # fmt: skip
    if passed and upgrade.status in ROLLBACK_FROM:
        status_move(
            upgrade=upgrade, transition=Transition.ROLL_BACK, by=run.requested_by, reason=said
        )


def _after_restore(upgrade: Upgrade, run: CheckRun, outcome: Any, *, running: str) -> None:
    """A database restore ends a version upgrade as rolled back only when the target runs the
    old version again (read from it) or the version was rolled back; else it says what is left."""
    if outcome.status != RunStatus.PASSED:
        _deployment_state(
            upgrade, by=run.requested_by, rollback=RollbackState.FAILED,
            message=f"Run #{run.pk} {run.title}: {outcome.reason}",
        )  # fmt: skip
        return
    old_version_back = upgrade.rollback_state == RollbackState.PASSED or (
        running and running == upgrade.rollback_target
    )
    if upgrade.status not in ROLLBACK_FROM:
        _event_plain(upgrade, by=run.requested_by, kind=EventKind.ROLLBACK,
                     message=f"Database restored after the rollback: {outcome.reason}.")  # fmt: skip
        return
    if old_version_back:
        _deployment_state(
            upgrade, by=run.requested_by, rollback=RollbackState.PASSED,
            message=f"Database restored and {running or upgrade.rollback_target} runs again.",
        )  # fmt: skip
        status_move(
            upgrade=upgrade, transition=Transition.ROLL_BACK, by=run.requested_by,
            reason=f"Database restored: {outcome.reason}",
        )  # fmt: skip
        return
    _event_plain(
        upgrade, by=run.requested_by, kind=EventKind.ROLLBACK,
        message=f"Database restored ({outcome.reason}), but the target still runs "
        f"{running or 'an unknown version'}: roll the version back to finish the rollback.",
    )  # fmt: skip


# --- the sweep -------------------------------------------------------------------------------


def check_runs_sweep(
    *, renudge_after_s: float = 30.0, now: datetime | None = None
) -> dict[str, int]:
    """Put right what the broker or a worker lost. A run whose worker stopped answering has
    whatever is left of its processes killed first; then a check goes back to the queue (at
    least once), while a run that changes the target becomes "interrupted — outcome unknown"
    (at most once) for a release manager to decide. Queued runs that no worker has picked up
    are nudged again (all of them after a broker outage)."""
    now = now or timezone.now()
    stale = list(
        CheckRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=now - _stale_after())
        .select_related("upgrade")
    )  # fmt: skip
    # requeued and nudged always; interrupted and cancelled when there were any.
    counts = {"requeued": 0, "nudged": 0}
    for run in stale:
        result = _sweep_one(run, now=now)
        if result:
            counts[result] = counts.get(result, 0) + 1
    waiting = list(
        CheckRun.objects.filter(status=RunStatus.QUEUED)
        .filter(Q(nudged_at__isnull=True) | Q(nudged_at__lt=now - timedelta(seconds=renudge_after_s)))
        .values_list("pk", flat=True)[:500]
    )  # fmt: skip
    for run_id in waiting:
        _nudge(run_id)
    counts["nudged"] = len(waiting)
    return counts


def _sweep_one(run: CheckRun, *, now: datetime) -> str | None:
    mine = {"pk": run.pk, "status": RunStatus.RUNNING, "attempt": run.attempt}
    lost = f"Its worker stopped answering during attempt {run.attempt}"
    if run.changes_target:
        status, result = RunStatus.INTERRUPTED, "interrupted"
        reason = (
            f"{lost}, while it may have been changing the target; it was not run again. "
            "Outcome unknown: check the target, then retry, or mark it passed or failed."
        )
    elif run.cancel_requested_at is not None:
        status, result = RunStatus.CANCELLED, "cancelled"
        reason = f"Cancelled on request; {lost.lower()}."
    else:
        status, result = RunStatus.QUEUED, "requeued"
        reason = f"{lost}; queued again."
    with transaction.atomic():
        changes: dict[str, Any] = {"status": status, "reason": reason}
        if status == RunStatus.QUEUED:
            changes["nudged_at"] = None
        else:
            changes["finished_at"] = now
        if not CheckRun.objects.filter(**mine).update(**changes):
            return None  # its worker finished it meanwhile, or another sweep took it
        # Kill what is left of the attempt while holding its row: a worker that is only slow
        # cannot record our kill as its run's failure, and no process of this attempt runs on
        # beside the next one. Local signals only, bounded: no outside I/O in here.
        runners.run_processes_kill(pgid=run.pgid, mark=run.process_mark)
        if status == RunStatus.QUEUED:
            return result
        run.refresh_from_db()
        _event(
            run, kind=EventKind.RUN_FINISHED, by=None, from_value=RunStatus.RUNNING,
            to_value=status, message=f"Run #{run.pk} {run.title}: {reason}",
        )  # fmt: skip
        if run.outcome_unknown:
            _outcome_unknown(run, message=f"Run #{run.pk} {run.title}: {reason}")
    return result


def check_run_log(*, run: CheckRun, offset: int) -> tuple[str, int]:
    """The part of a run's output after `offset`, for a log that tails while it runs."""
    # Beyond any output a run keeps (64 KiB): clamped so the database never sees an overflow.
    offset = min(max(offset, 0), 2**31 - 2)
    chunk, size = (
        CheckRun.objects.filter(pk=run.pk)
        .annotate(chunk=Substr("output", offset + 1), size=Length("output"))
        .values_list("chunk", "size")
        .get()
    )
    return chunk or "", size or 0
