"""The JSON API the playbook gives: list, show, create, enable and disable flags."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flags import selectors, services
from flags.api.auth import api_error, token_required
from flags.exceptions import (
    EnvironmentNotFound,
    FlagAlreadyExists,
    FlagArchived,
    FlagNotFound,
    FlagServiceError,
)
from flags.models import Flag, FlagEvent, FlagState, Via
from mycelia_ops.roles import is_release_manager

HISTORY_IN_DETAIL = 20

api_token_required = token_required(evaluation_allowed=False, error_body=api_error)


class BadRequest(Exception):
    pass


def default_environment_key() -> str:
    return getattr(settings, "FLAGS_DEFAULT_ENVIRONMENT", "production")


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse(api_error(message), status=status)


def _service_error(exc: FlagServiceError) -> JsonResponse:
    if isinstance(exc, FlagNotFound | EnvironmentNotFound):
        return _error(404, str(exc))
    if isinstance(exc, FlagAlreadyExists | FlagArchived):
        return _error(409, str(exc))
    return _error(400, str(exc))


def read_json(request: HttpRequest, *, allowed: set[str], required: set[str]) -> dict[str, Any]:
    try:
        data = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(
            f"Unknown fields: {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
        )
    missing = sorted(f for f in required if f not in data)
    if missing:
        raise BadRequest(f"Missing fields: {', '.join(missing)}.")
    for name, value in data.items():
        if name != "tags" and not isinstance(value, str):
            raise BadRequest(f"'{name}' must be a string.")
    return data


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


@csrf_exempt
@require_http_methods(["GET", "POST"])
@api_token_required
def flag_collection(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _flag_create(request)
    page_number = request.GET.get("page", "1")
    paginator = Paginator(selectors.flag_list(state="all"), settings.PAGE_SIZE)
    try:
        page = paginator.page(page_number)
    except (EmptyPage, PageNotAnInteger):
        return _error(400, f"No page '{page_number}': pages run from 1 to {paginator.num_pages}.")
    base = reverse("flags:api_flags")
    return JsonResponse(
        {
            "count": paginator.count,
            "page": page.number,
            "pages": paginator.num_pages,
            "next": f"{base}?page={page.next_page_number()}" if page.has_next() else None,
            "previous": f"{base}?page={page.previous_page_number()}"
            if page.has_previous()
            else None,
            "results": [flag_json(flag) for flag in page.object_list],
        }
    )


def _flag_create(request: HttpRequest) -> HttpResponse:
    if not is_release_manager(request.user):
        return _error(403, "Only release managers can create flags.")
    try:
        data = read_json(request, allowed={"name", "description", "tags"}, required={"name"})
        tags = data.get("tags", "")
        if not isinstance(tags, str | list) or (
            isinstance(tags, list) and not all(isinstance(t, str) for t in tags)
        ):
            raise BadRequest("'tags' must be a list of strings or a comma-separated string.")
        flag = services.flag_create(
            key=data["name"],
            description=data.get("description", ""),
            tags=tags,
            by=request.user,
            via=Via.API,
        )
    except BadRequest as exc:
        return _error(400, str(exc))
    except FlagServiceError as exc:
        return _service_error(exc)
    flag = selectors.flag_list(state="all").get(pk=flag.pk)
    return JsonResponse(flag_json(flag), status=201)


@require_GET
@api_token_required
def flag_detail(request: HttpRequest, name: str) -> HttpResponse:
    flag = selectors.flag_list(state="all").filter(key=name).first()
    if flag is None:
        return _error(404, str(FlagNotFound(name)))
    events = flag.events.select_related("environment", "actor")[:HISTORY_IN_DETAIL]
    return JsonResponse(flag_json(flag) | {"history": [event_json(e) for e in events]})


def _set_state(request: HttpRequest, *, on: bool) -> HttpResponse:
    if not is_release_manager(request.user):
        return _error(403, "Only release managers can turn flags on or off.")
    try:
        data = read_json(request, allowed={"name", "environment", "reason"}, required={"name"})
        flag = selectors.flag_get(key=data["name"])
        environment = selectors.environment_get(
            key=data.get("environment") or default_environment_key()
        )
        change = services.flag_set_state(
            flag=flag,
            environment=environment,
            on=on,
            by=request.user,
            via=Via.API,
            reason=data.get("reason", ""),
        )
    except BadRequest as exc:
        return _error(400, str(exc))
    except FlagServiceError as exc:
        return _service_error(exc)
    return JsonResponse(
        {
            "changed": change.changed,
            "name": flag.key,
            "environment": environment.key,
            "enabled": change.state.enabled,
            "version": change.state.version,
        }
    )


@csrf_exempt
@require_POST
@api_token_required
def flag_enable(request: HttpRequest) -> HttpResponse:
    return _set_state(request, on=True)


@csrf_exempt
@require_POST
@api_token_required
def flag_disable(request: HttpRequest) -> HttpResponse:
    return _set_state(request, on=False)
