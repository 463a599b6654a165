"""The upgrades REST API, for release pipelines: the same lifecycle table and services as the
page, over the product's one API (mycelia_ops/api.py: Bearer tokens, one error mapping).

Reads need a release manager's or a stakeholder's token; writes a release manager's. Each
operation checks its input (mycelia_ops.validation), calls one service and returns the upgrade
as it is now, with the actions the token's user may take next. What the lifecycle table refuses
is a 409 with its sentence and the actions allowed instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import Http404, HttpRequest
from ninja import Path, Query, Router
from ninja.responses import Status

from mycelia_ops.api import ERRORS, ErrorOut, manager_auth, token_auth
from mycelia_ops.roles import is_release_manager
from mycelia_ops.validation import BadInput, bounded_int, finite_float, sane_datetime
from upgrades import outcome, selectors, services
from upgrades.api_schemas import (
    ActedOut,
    ActionIn,
    EnvironmentOut,
    RefusedOut,
    ResolveIn,
    RunLogOut,
    RunOut,
    StatusName,
    StepActedOut,
    StepActIn,
    TargetCheckedOut,
    UpgradeCreateIn,
    UpgradeEditIn,
    UpgradeOut,
    UpgradePageOut,
    UpgradeTypeName,
)
from upgrades.models import (
    ACTIVE_RUN_STATUSES,
    Action,
    ChecklistStep,
    CheckRun,
    Environment,
    Upgrade,
    UpgradeType,
    lifecycle,
)

router = Router(tags=["upgrades"])

WRITE_REFUSAL = "Only release managers change upgrades: this token's user may only read."
write_auth = manager_auth(WRITE_REFUSAL)

MAX_ID = 2**63 - 1  # the largest key a database holds; larger ones are refused, not looked up
PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX = 20, 100
OUTPUT_TAIL = 4000
WINDOW_MINUTES_MAX = 60 * 24 * 14
NOT_FOUND = {404: ErrorOut}
CONFLICT = {409: RefusedOut}
# The API's names for the service's fields.
API_FIELD = {"upgrade_type": "type", "flag_key": "flag"}


def _id(description: str) -> Any:
    return Path(..., ge=1, le=MAX_ID, description=description)


# ---------------------------------------------------------------------------------------------
# Helpers


@contextmanager
def _api_field_names() -> Iterator[None]:
    """A service refusal names its field as the model does; the caller knows the API's name."""
    try:
        yield
    except services.UpgradeError as exc:
        exc.field = API_FIELD.get(exc.field or "", exc.field)
        raise


def _upgrade(upgrade_id: int) -> Upgrade:
    upgrade = Upgrade.objects.select_related("environment", "owner").filter(pk=upgrade_id).first()
    if upgrade is None:
        raise Http404(f"No upgrade #{upgrade_id}.")
    return upgrade


def _step(upgrade: Upgrade, step_id: int) -> ChecklistStep:
    step = ChecklistStep.objects.select_related("phase").filter(pk=step_id, upgrade=upgrade).first()
    if step is None:
        raise Http404(f"Upgrade #{upgrade.pk} has no step #{step_id}.")
    return step


def _environment(key: str, *, field: str = "environment") -> Environment:
    environment = Environment.objects.filter(slug=key).first()
    if environment is None:
        keys = ", ".join(Environment.objects.values_list("slug", flat=True)) or "none yet"
        raise BadInput(f"No environment '{key[:50]}'. Environments: {keys}.", field=field)
    return environment


def _window_start(value: str | None) -> datetime | None:
    return None if value is None else sane_datetime(value, field="window_start")


def _window_minutes(value: int | None) -> int | None:
    if value is None:
        return None
    return bounded_int(value, field="window_minutes", low=1, high=WINDOW_MINUTES_MAX)


def _page_url(request: HttpRequest, path: str) -> str:
    base = getattr(settings, "MYCELIA_BASE_URL", "")
    return base + path if base else request.build_absolute_uri(path)


# ---------------------------------------------------------------------------------------------
# JSON


def run_json(run: CheckRun, user: Any = None) -> dict[str, Any]:
    """A run as `user` sees it: with the decisions open to them when its outcome is unknown."""
    decisions: list[str] = []
    if user is not None and run.outcome_unknown and is_release_manager(user):
        decisions = outcome.run_decisions(run, actor=user, read_target=False).allowed
    return {
        "id": run.pk,
        "upgrade_id": run.upgrade_id,
        "step_id": run.step_id,
        "kind": run.kind,
        "action": run.action,
        "title": run.title,
        "status": run.status,
        "reason": run.reason,
        "measured": run.measured if isinstance(run.measured, dict) else {},
        "attempt": run.attempt,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_ms": run.duration_ms,
        "output_tail": run.output[-OUTPUT_TAIL:],
        "output_truncated": run.output_truncated,
        "cancel_requested": getattr(run, "cancel_requested_at", None) is not None,
        "finished": run.status not in ACTIVE_RUN_STATUSES,
        "outcome_unknown": run.outcome_unknown,
        "decisions": decisions,
        "resolved_by": run.resolved_by.get_username() if run.resolved_by_id else None,
        "resolved_at": run.resolved_at,
    }


def step_json(step: ChecklistStep, last_run: CheckRun | None) -> dict[str, Any]:
    return {
        "id": step.pk,
        "title": step.title,
        "section": step.section,
        "status": step.status,
        "required": step.required,
        "kind": step.kind,
        "note": step.note,
        "skip_reason": step.skip_reason,
        "accepted_despite_failure": step.accepted_despite_failure,
        "override_reason": step.override_reason,
        "last_run": (
            {"id": last_run.pk, "status": last_run.status, "reason": last_run.reason}
            if last_run
            else None
        ),
    }


def _last_run(step: ChecklistStep) -> CheckRun | None:
    return CheckRun.objects.filter(step=step).order_by("-created_at", "-id").first()


def upgrade_summary_json(request: HttpRequest, upgrade: Upgrade) -> dict[str, Any]:
    flag_upgrade = upgrade.upgrade_type == UpgradeType.FEATURE_FLAG
    return {
        "id": upgrade.pk,
        "title": upgrade.title,
        "type": upgrade.upgrade_type,
        "emergency_kind": upgrade.emergency_kind,
        "status": upgrade.status,
        "environment": upgrade.environment.slug,
        "version_from": upgrade.version_from,
        "version_to": upgrade.version_to,
        "flag": upgrade.flag_key if flag_upgrade else None,
        "risk": upgrade.risk,
        "owner": upgrade.owner.get_username(),
        "approval": upgrade.approval,
        "deploy_state": upgrade.deploy_state,
        "rollback_state": upgrade.rollback_state,
        "deployed_version": upgrade.deployed_version,
        "window_start": upgrade.window_start,
        "window_minutes": upgrade.window_minutes,
        "created_at": upgrade.created_at,
        "started_at": upgrade.started_at,
        "finished_at": upgrade.finished_at,
        "url": _page_url(request, upgrade.get_absolute_url()),
    }


def upgrade_json(request: HttpRequest, upgrade: Upgrade) -> dict[str, Any]:
    """The upgrade as the token's user sees it: its checklist, and what they may do next."""
    user = request.user
    checklist = selectors.upgrade_checklist(upgrade)
    last_runs = selectors.last_run_by_step(upgrade)
    if is_release_manager(user):
        facts = selectors.lifecycle_facts(upgrade, actor=user)
        allowed = lifecycle.allowed_actions(facts)
        upcoming = lifecycle.next_action(facts)
    else:  # a read-only token: the API refuses every write it could send
        allowed, upcoming = [], None
    return upgrade_summary_json(request, upgrade) | {
        "description": getattr(upgrade, "description", ""),
        "allowed_actions": allowed,
        "next_action": {"action": upcoming[0], "why": upcoming[1]} if upcoming else None,
        "phases": [
            {
                "id": view.phase.pk,
                "title": view.phase.title,
                "stage": view.phase.stage,
                "steps": [step_json(step, last_runs.get(step.pk)) for step in view.steps],
            }
            for view in checklist.phases
        ],
        "cloned_from": upgrade.cloned_from_id,
        "clones": list(upgrade.clones.order_by("pk").values_list("pk", flat=True)),
    }


def _fresh_json(request: HttpRequest, upgrade: Upgrade) -> dict[str, Any]:
    return upgrade_json(request, _upgrade(upgrade.pk))


# ---------------------------------------------------------------------------------------------
# Environments


@router.get(
    "/environments",
    auth=token_auth,
    response={200: list[EnvironmentOut], **ERRORS},
    summary="The environments upgrades run against",
    operation_id="environments_list",
)
def environments_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [
        {"key": env.slug, "name": env.name, "kind": env.kind}
        for env in Environment.objects.order_by("kind", "name")
    ]


# ---------------------------------------------------------------------------------------------
# Upgrades


@router.get(
    "/upgrades",
    auth=token_auth,
    response={200: UpgradePageOut, **ERRORS},
    summary="List upgrades, newest first, paginated",
    description="Filters: status, type, environment (key). Pages: `page` from 1, `limit` from 1 "
    f"to {PAGE_LIMIT_MAX} (default {PAGE_LIMIT_DEFAULT}). `next`/`previous` are full URLs.",
    operation_id="upgrades_list",
)
def upgrades_list(
    request: HttpRequest,
    status: StatusName | None = None,
    type: UpgradeTypeName | None = None,  # noqa: A002 - the API's name for it
    environment: str | None = Query(None, max_length=50),
    page: int = Query(1, ge=1, le=1_000_000),
    limit: int = Query(PAGE_LIMIT_DEFAULT, ge=1, le=PAGE_LIMIT_MAX),
) -> dict[str, Any]:
    upgrades = selectors.upgrade_list(
        upgrade_type=type or "", status=status or "", environment=environment or ""
    )
    count = upgrades.count()
    pages = max(1, -(-count // limit))
    if page > pages:
        raise BadInput(f"No page {page}: pages run from 1 to {pages}.", field="page")
    start = (page - 1) * limit
    results = list(upgrades[start : start + limit])
    filters = {
        k: v for k, v in {"status": status, "type": type, "environment": environment}.items() if v
    }

    def link(number: int) -> str:
        query = urlencode({**filters, "page": number, "limit": limit})
        return request.build_absolute_uri(f"{request.path}?{query}")

    return {
        "count": count,
        "next": link(page + 1) if page < pages else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": [upgrade_summary_json(request, u) for u in results],
    }


@router.post(
    "/upgrades",
    auth=write_auth,
    response={201: UpgradeOut, **ERRORS, **CONFLICT},
    summary="Create an upgrade (a draft, with its playbook checklist); you own it",
    operation_id="upgrades_create",
)
def upgrades_create(request: HttpRequest, payload: UpgradeCreateIn) -> Status:
    flag_upgrade = payload.type == UpgradeType.FEATURE_FLAG
    if flag_upgrade and (payload.version_from or payload.version_to):
        field = "version_from" if payload.version_from else "version_to"
        raise BadInput(
            f"'{field}' is for version upgrades; a feature flag upgrade names its 'flag'.",
            field=field,
        )
    if not flag_upgrade and payload.flag:
        raise BadInput(
            f"'flag' is for feature flag upgrades; a {payload.type} upgrade names versions.",
            field="flag",
        )
    environment = _environment(payload.environment)
    with _api_field_names(), transaction.atomic():
        upgrade = services.upgrade_create(
            upgrade_type=payload.type,
            emergency_kind=payload.emergency_kind,
            title=payload.title,
            environment=environment,
            owner=request.user,
            by=request.user,
            version_from=payload.version_from,
            version_to=payload.version_to,
            flag_key=payload.flag,
            risk=payload.risk,
            window_start=_window_start(payload.window_start),
            window_minutes=_window_minutes(payload.window_minutes),
            description=payload.description,
        )
    return Status(201, _fresh_json(request, upgrade))


@router.get(
    "/upgrades/{upgrade_id}",
    auth=token_auth,
    response={200: UpgradeOut, **ERRORS, **NOT_FOUND},
    summary="One upgrade: its state, checklist and the actions allowed now",
    operation_id="upgrades_detail",
)
def upgrades_detail(
    request: HttpRequest, upgrade_id: int = _id("The upgrade's id.")
) -> dict[str, Any]:
    return upgrade_json(request, _upgrade(upgrade_id))


@router.patch(
    "/upgrades/{upgrade_id}",
    auth=write_auth,
    response={200: UpgradeOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Change an upgrade's details (until its deployment starts)",
    description="Only the fields sent change; each change goes on the timeline (from → to).",
    operation_id="upgrades_edit",
)
def upgrades_edit(
    request: HttpRequest, payload: UpgradeEditIn, upgrade_id: int = _id("The upgrade's id.")
) -> Status:
    upgrade = _upgrade(upgrade_id)
    sent = payload.model_dump(exclude_unset=True)
    changes: dict[str, Any] = {}
    for name, value in sent.items():
        if value is None and name in ("title", "environment", "owner"):
            raise BadInput(f"'{name}' cannot be null.", field=name)
        if name == "environment":
            changes["environment"] = _environment(value)
        elif name == "owner":
            changes["owner"] = _owner(value)
        elif name == "window_start":
            changes["window_start"] = _window_start(value)
        elif name == "window_minutes":
            changes["window_minutes"] = _window_minutes(value)
        else:
            changes[API_FIELD_OF.get(name, name)] = value or ""
    try:
        with _api_field_names():
            edited = services.upgrade_edit(upgrade=upgrade, by=request.user, changes=changes)
    except services.Refused as exc:
        return _refused(exc.message, exc.allowed_actions)
    return Status(200, _fresh_json(request, edited))


API_FIELD_OF = {api: model for model, api in API_FIELD.items()}


def _owner(username: str) -> Any:
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not is_release_manager(user):
        raise BadInput(f"'{username[:150]}' is not a release manager.", field="owner")
    return user


# ---------------------------------------------------------------------------------------------
# Actions


@router.post(
    "/upgrades/{upgrade_id}/actions/{action}",
    auth=write_auth,
    response={
        200: ActedOut,
        201: ActedOut,
        202: ActedOut,
        **ERRORS,
        **NOT_FOUND,
        **CONFLICT,
    },
    summary="Take an action (the upgrade's allowed_actions say which)",
    description="Actions: " + ", ".join(a for a in Action.values if a != Action.EDIT) + ". "
    "200 with the upgrade; 202 when a worker was given a run (deploy, retry, roll_back, "
    "restore_database, back_up), with the run to poll at /api/runs/{id}; 201 for clone, with "
    "the new draft. Refused now: 409 {error, allowed_actions}. Unknown action: 404.",
    operation_id="upgrades_act",
)
def upgrades_act(
    request: HttpRequest,
    action: str = Path(..., max_length=40),
    upgrade_id: int = _id("The upgrade's id."),
    payload: ActionIn | None = None,
) -> Status:
    upgrade = _upgrade(upgrade_id)
    if action not in Action.values:
        raise Http404(
            f"Unknown action '{action[:40]}'. Actions: "
            + ", ".join(a for a in Action.values if a != Action.EDIT)
            + "."
        )
    payload = payload or ActionIn()
    facts = selectors.lifecycle_facts(upgrade, actor=request.user)
    verdict = lifecycle.verdict(action, facts)
    if not verdict.allowed:
        return _refused(verdict.why, lifecycle.allowed_actions(facts))
    if action == Action.EDIT:
        raise BadInput(f"Edit details with PATCH /api/upgrades/{upgrade.pk}.", field="action")
    try:
        acted = services.upgrade_act(
            upgrade=upgrade,
            action=action,
            by=request.user,
            reason=payload.reason,
            override_reason=payload.override_reason,
            backup_id=(
                None
                if payload.backup_id is None
                else bounded_int(payload.backup_id, field="backup_id", low=1, high=MAX_ID)
            ),
            hours=None if payload.hours is None else finite_float(payload.hours, field="hours"),
            decision=payload.decision,
        )
    except services.Refused as exc:  # the state moved between our look and the service's
        return _refused(exc.message, exc.allowed_actions)
    status = 201 if action == Action.CLONE else 202 if acted.run else 200
    return Status(
        status,
        {
            "message": acted.message,
            "upgrade": _fresh_json(request, acted.upgrade),
            "run": run_json(acted.run, request.user) if acted.run else None,
        },
    )


def _refused(why: str, allowed: list[str]) -> Status:
    return Status(409, {"error": why, "field": None, "allowed_actions": allowed})


# ---------------------------------------------------------------------------------------------
# Steps


def _step_acted(
    step: ChecklistStep, changed: bool, run: CheckRun | None = None, user: Any = None
) -> dict:
    step.refresh_from_db()
    return {
        "changed": changed,
        "step": step_json(step, run or _last_run(step)),
        "run": run_json(run, user) if run else None,
    }


STEP_RESPONSES = {200: StepActedOut, **ERRORS, **NOT_FOUND, **CONFLICT}


@router.post(
    "/upgrades/{upgrade_id}/steps/{step_id}/complete",
    auth=write_auth,
    response=STEP_RESPONSES,
    summary="Mark a step done (with override_reason if its latest check failed)",
    operation_id="steps_complete",
)
def steps_complete(
    request: HttpRequest,
    upgrade_id: int = _id("The upgrade's id."),
    step_id: int = _id("The step's id (from the upgrade's phases)."),
    payload: StepActIn | None = None,
) -> dict[str, Any]:
    payload = payload or StepActIn()
    step = _step(_upgrade(upgrade_id), step_id)
    step, changed = services.step_complete(
        step=step, by=request.user, note=payload.note, override_reason=payload.override_reason
    )
    return _step_acted(step, changed)


@router.post(
    "/upgrades/{upgrade_id}/steps/{step_id}/skip",
    auth=write_auth,
    response=STEP_RESPONSES,
    summary="Mark a step “not doing”, with a reason",
    operation_id="steps_skip",
)
def steps_skip(
    request: HttpRequest,
    upgrade_id: int = _id("The upgrade's id."),
    step_id: int = _id("The step's id (from the upgrade's phases)."),
    payload: StepActIn | None = None,
) -> dict[str, Any]:
    payload = payload or StepActIn()
    step = _step(_upgrade(upgrade_id), step_id)
    step, changed = services.step_skip(step=step, by=request.user, reason=payload.reason)
    return _step_acted(step, changed)


@router.post(
    "/upgrades/{upgrade_id}/steps/{step_id}/reopen",
    auth=write_auth,
    response=STEP_RESPONSES,
    summary="Reopen a done or skipped step, with a reason",
    operation_id="steps_reopen",
)
def steps_reopen(
    request: HttpRequest,
    upgrade_id: int = _id("The upgrade's id."),
    step_id: int = _id("The step's id (from the upgrade's phases)."),
    payload: StepActIn | None = None,
) -> dict[str, Any]:
    payload = payload or StepActIn()
    step = _step(_upgrade(upgrade_id), step_id)
    step, changed = services.step_reopen(step=step, by=request.user, reason=payload.reason)
    return _step_acted(step, changed)


@router.post(
    "/upgrades/{upgrade_id}/steps/{step_id}/run",
    auth=write_auth,
    response={202: StepActedOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Run a step's automated check on a worker; poll the run",
    operation_id="steps_run",
)
def steps_run(
    request: HttpRequest,
    upgrade_id: int = _id("The upgrade's id."),
    step_id: int = _id("The step's id (from the upgrade's phases)."),
) -> Status:
    upgrade = _upgrade(upgrade_id)
    step = _step(upgrade, step_id)
    run = services.check_run_request(upgrade=upgrade, step=step, by=request.user)
    return Status(202, _step_acted(step, False, run, request.user))


# ---------------------------------------------------------------------------------------------
# Runs


def _run(run_id: int) -> CheckRun:
    run = CheckRun.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No run #{run_id}.")
    return run


@router.get(
    "/runs/{run_id}",
    auth=token_auth,
    response={200: RunOut, **ERRORS, **NOT_FOUND},
    summary="A check, backup, deploy or rollback run: poll it until `finished`",
    operation_id="runs_detail",
)
def runs_detail(request: HttpRequest, run_id: int = _id("The run's id.")) -> dict[str, Any]:
    return run_json(_run(run_id), request.user)


@router.get(
    "/runs/{run_id}/log",
    auth=token_auth,
    response={200: RunLogOut, **ERRORS, **NOT_FOUND},
    summary="A run's output after `offset`, to tail it while it runs",
    operation_id="runs_log",
)
def runs_log(
    request: HttpRequest,
    run_id: int = _id("The run's id."),
    offset: int = Query(0, ge=0, le=1_000_000_000),
) -> dict[str, Any]:
    run = _run(run_id)
    text, size = services.check_run_log(run=run, offset=offset)
    return {
        "run_id": run.pk,
        "offset": offset,
        "next_offset": max(size, offset),
        "text": text,
        "finished": run.status not in ACTIVE_RUN_STATUSES,
    }


@router.post(
    "/runs/{run_id}/cancel",
    auth=write_auth,
    response={200: RunOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Cancel a run: a queued one at once; a running one is asked to stop",
    operation_id="runs_cancel",
)
def runs_cancel(request: HttpRequest, run_id: int = _id("The run's id.")) -> dict[str, Any]:
    run = _run(run_id)
    services.check_run_cancel(run=run, by=request.user)
    return run_json(_run(run_id), request.user)


# When nobody knows what a run did, a release manager decides: read the target, then mark the
# run passed or failed (or retry, or mark the upgrade failed, through the upgrade's actions).


@router.post(
    "/runs/{run_id}/check-target",
    auth=write_auth,
    response={200: TargetCheckedOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Read the version the target reports, for a run whose outcome is unknown",
    description="Read-only on the target (its /health, else its status JSON); what was read "
    "goes on the upgrade's timeline with your name. 409 when the run's outcome is known.",
    operation_id="runs_check_target",
)
def runs_check_target(request: HttpRequest, run_id: int = _id("The run's id.")) -> dict[str, Any]:
    run = _run(run_id)
    version, message = services.check_run_target_read(run=run, by=request.user)
    return {"version": version, "message": message, "run": run_json(_run(run_id), request.user)}


@router.post(
    "/runs/{run_id}/resolve",
    auth=write_auth,
    response={200: ActedOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Mark a run whose outcome is unknown passed or failed, saying what you checked",
    description="Treated as a real pass or failure from then on: a deploy marked passed is "
    "deployed (begin_monitoring comes next); one marked failed offers retry, roll_back and "
    "mark_failed; a rollback marked passed rolls the upgrade back. Recorded on the timeline "
    "with who and why. 409 when the run's outcome is known, or the upgrade has moved on.",
    operation_id="runs_resolve",
)
def runs_resolve(
    request: HttpRequest, payload: ResolveIn, run_id: int = _id("The run's id.")
) -> dict[str, Any]:
    run = _run(run_id)
    decided = services.check_run_resolve(
        run=run, by=request.user, outcome=payload.outcome, reason=payload.reason
    )
    return {
        "message": f"Run #{run.pk} marked {payload.outcome}.",
        "upgrade": _fresh_json(request, run.upgrade),
        "run": run_json(decided, request.user),
    }
