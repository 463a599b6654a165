"""The playbook's flags API on the product's API (mycelia_ops/api.py): list, show and create
flags, turn them on and off. Thin: each operation checks its input and calls a service."""

from __future__ import annotations

import re
from typing import Annotated, Any

from django.conf import settings
from django.core.paginator import EmptyPage, Paginator
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from flags import selectors, services
from flags.api.auth import default_environment_key
from flags.exceptions import FlagNotFound
from flags.models import FLAG_KEY_PATTERN, Flag, FlagEvent, FlagState, Via, tags_normalise
from mycelia_ops.api import ERRORS, Body, ErrorOut, manager_auth, token_auth
from mycelia_ops.validation import BadInput

HISTORY_IN_DETAIL = 20
TAGS_MAX = 200  # Flag.tags is a CharField(max_length=200)
_KEY = re.compile(FLAG_KEY_PATTERN)

router = Router()


# ---------------------------------------------------------------------------------------------
# Schemas

DATE_TIME = {"format": "date-time"}


class FlagStateOut(Schema):
    enabled: bool
    rollout_percentage: int = Field(ge=0, le=100)
    rules: list[dict[str, Any]]
    version: int
    updated_at: str | None = Field(json_schema_extra=DATE_TIME)


class FlagOut(Schema):
    name: str
    description: str
    tags: list[str]
    owner: str | None
    archived: bool
    created_at: str | None = Field(json_schema_extra=DATE_TIME)
    environments: dict[str, FlagStateOut]


class FlagEventOut(Schema):
    at: str | None = Field(json_schema_extra=DATE_TIME)
    environment: str | None
    kind: str
    via: str
    actor: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    reason: str


class FlagDetailOut(FlagOut):
    history: list[FlagEventOut]


class FlagPageOut(Schema):
    count: int
    page: int
    pages: int
    next: str | None
    previous: str | None
    results: list[FlagOut]


Tag = Annotated[str, Field(max_length=TAGS_MAX)]


class FlagCreateIn(Body):
    name: str = Field(max_length=100, description="Lowercase letters, digits, '-', '_', '.'")
    description: str = Field("", max_length=5000)
    tags: (
        Annotated[list[Tag], Field(max_length=50)] | Annotated[str, Field(max_length=TAGS_MAX)]
    ) = Field("", description="A list of tags, or one comma-separated string")


class StateChangeIn(Body):
    name: str = Field(max_length=100)
    environment: str | None = Field(
        None,
        max_length=64,
        description="Environment key; FLAGS_DEFAULT_ENVIRONMENT when absent",
    )
    reason: str = Field("", max_length=2000)


class StateChangeOut(Schema):
    changed: bool
    name: str
    environment: str
    enabled: bool
    version: int


NOT_FOUND = {404: ErrorOut}
CONFLICT = {409: ErrorOut}


# ---------------------------------------------------------------------------------------------
# JSON of rows (plain dicts, so the bytes are what they were before the schemas)


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment else None


def state_json(state: FlagState) -> dict[str, Any]:
    return {
        "enabled": state.enabled,
        "rollout_percentage": state.rollout_percentage,
        "rules": state.rules,
        "version": state.version,
        "updated_at": _iso(state.updated_at),
    }


def flag_json(flag: Flag) -> dict[str, Any]:
    return {
        "name": flag.key,
        "description": flag.description,
        "tags": flag.tag_list,
        "owner": flag.owner.get_username() if flag.owner else None,
        "archived": flag.is_archived,
        "created_at": _iso(flag.created_at),
        "environments": {s.environment.key: state_json(s) for s in flag.states.all()},
    }


def event_json(event: FlagEvent) -> dict[str, Any]:
    return {
        "at": _iso(event.at),
        "environment": event.environment.key if event.environment else None,
        "kind": event.kind,
        "via": event.via,
        "actor": event.actor.get_username() if event.actor else None,
        "before": event.before,
        "after": event.after,
        "reason": event.reason,
    }


# ---------------------------------------------------------------------------------------------
# Operations. enable/disable come before {name}: those two words are reserved flag keys.


@router.get(
    "/feature-flags",
    auth=token_auth,
    response={200: FlagPageOut, **ERRORS},
    summary="List flags, paginated",
    operation_id="flags_list",
)
def flags_list(request: HttpRequest, page: int = Query(1, ge=1, le=1_000_000)) -> dict[str, Any]:
    paginator = Paginator(selectors.flag_list(state="all"), settings.PAGE_SIZE)
    try:
        current = paginator.page(page)
    except EmptyPage:
        raise BadInput(
            f"No page '{page}': pages run from 1 to {paginator.num_pages}.", field="page"
        ) from None
    base = request.path
    return {
        "count": paginator.count,
        "page": current.number,
        "pages": paginator.num_pages,
        "next": f"{base}?page={current.next_page_number()}" if current.has_next() else None,
        "previous": f"{base}?page={current.previous_page_number()}"
        if current.has_previous()
        else None,
        "results": [flag_json(flag) for flag in current.object_list],
    }


@router.post(
    "/feature-flags",
    auth=manager_auth("Only release managers can create flags."),
    response={201: FlagOut, **ERRORS, **CONFLICT},
    summary="Create a flag (off in every environment)",
    operation_id="flags_create",
)
def flags_create(request: HttpRequest, payload: FlagCreateIn) -> Status:
    tags = payload.tags
    if len(tags_normalise(tags)) > TAGS_MAX:
        raise BadInput(f"'tags' hold more than {TAGS_MAX} characters in all.", field="tags")
    flag = services.flag_create(
        key=payload.name,
        description=payload.description,
        tags=tags,
        by=request.user,
        via=Via.API,
    )
    flag = selectors.flag_list(state="all").get(pk=flag.pk)
    return Status(201, flag_json(flag))


def _set_state(request: HttpRequest, payload: StateChangeIn, *, on: bool) -> dict[str, Any]:
    flag = selectors.flag_get(key=payload.name)
    environment = selectors.environment_get(key=payload.environment or default_environment_key())
    change = services.flag_set_state(
        flag=flag,
        environment=environment,
        on=on,
        by=request.user,
        via=Via.API,
        reason=payload.reason,
    )
    return {
        "changed": change.changed,
        "name": flag.key,
        "environment": environment.key,
        "enabled": change.state.enabled,
        "version": change.state.version,
    }


_SWITCH_REFUSAL = "Only release managers can turn flags on or off."


@router.post(
    "/feature-flags/enable",
    auth=manager_auth(_SWITCH_REFUSAL),
    response={200: StateChangeOut, **ERRORS, **NOT_FOUND, **CONFLICT},
    summary="Turn a flag on (done, or already on)",
    operation_id="flags_enable",
)
def flags_enable(request: HttpRequest, payload: StateChangeIn) -> dict[str, Any]:
    return _set_state(request, payload, on=True)


@router.post(
    "/feature-flags/disable",
    auth=manager_auth(_SWITCH_REFUSAL),
    response={200: StateChangeOut, **ERRORS, **NOT_FOUND},
    summary="Turn a flag off (done, or already off)",
    operation_id="flags_disable",
)
def flags_disable(request: HttpRequest, payload: StateChangeIn) -> dict[str, Any]:
    return _set_state(request, payload, on=False)


@router.get(
    "/feature-flags/{name}",
    auth=token_auth,
    response={200: FlagDetailOut, **ERRORS, **NOT_FOUND},
    summary="One flag with its recent history",
    operation_id="flags_detail",
)
def flags_detail(request: HttpRequest, name: str) -> dict[str, Any]:
    # A name no flag can have is not looked up (a NUL would not even reach PostgreSQL).
    flag = selectors.flag_list(state="all").filter(key=name).first() if _KEY.match(name) else None
    if flag is None:
        raise FlagNotFound(name)
    events = flag.events.select_related("environment", "actor")[:HISTORY_IN_DETAIL]
    return flag_json(flag) | {"history": [event_json(e) for e in events]}
