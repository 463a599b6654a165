"""The product's one REST API (django-ninja), mounted at /api/, its OpenAPI at /api/openapi.json.

Every app adds a Router here (see ROUTERS below). What is shared lives in this module:

- Bearer-token authentication with the flags app's API tokens: `token_auth` for reads (release
  managers and stakeholders), `manager_auth("...")` for writes (release managers only; the
  sentence is the 403's message). Evaluation-scoped tokens may only call OFREP.
- The one place that turns errors into answers (`error_response`): a request that does not
  match the schema -> 400 naming the field(s); anything carrying `.status` and `.message`
  (`mycelia_ops.validation.BadInput`, `upgrades.services.UpgradeError`, ...) -> that status with
  {"error": message, "field": field}; the flag services' errors -> their status; Http404 -> 404;
  anything else is logged to django.request and answered 500 {"error": ...}. Error bodies are
  always {"error": "...", ...}.
- Request bodies are parsed by `mycelia_ops.validation.parse_json_body` (size and depth limits),
  and `Body` is the base for request schemas: unknown fields refused, text free of lone
  surrogates and control characters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.log import log_response
from ninja import NinjaAPI, Schema
from ninja.errors import HttpError
from ninja.errors import ValidationError as SchemaMismatch
from ninja.parser import Parser
from ninja.security import HttpBearer
from pydantic import ConfigDict, model_validator

from flags.api.auth import bearer_from_header, token_check
from flags.exceptions import (
    EnvironmentNotFound,
    FlagAlreadyExists,
    FlagArchived,
    FlagNotFound,
    FlagServiceError,
)
from flags.models import ApiToken
from mycelia_ops.roles import is_release_manager
from mycelia_ops.validation import BadInput, clean_text, parse_json_body

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_BODY_DEPTH = 32
MAX_TEXT = 1_000_000  # Body fields set their own max_length; this only bounds the check


# ---------------------------------------------------------------------------------------------
# Errors


class Refused(Exception):
    """A request the API refuses, with its status and a sentence for people (401, 403, ...)."""

    def __init__(self, status: int, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


_FLAG_ERROR_STATUS: tuple[tuple[type[FlagServiceError], int], ...] = (
    (FlagNotFound, 404),
    (EnvironmentNotFound, 404),
    (FlagAlreadyExists, 409),
    (FlagArchived, 409),
    (FlagServiceError, 400),
)


def _json(status: int, body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="mycelia-ops"'
    return response


def error_response(request: HttpRequest, exc: Exception) -> HttpResponse:
    """The answer to any exception raised while the API handled `request`."""
    if isinstance(exc, SchemaMismatch):
        return _json(400, _mismatch_body(exc))
    if isinstance(exc, HttpError):
        # ninja's own: a body it could not parse (our parser's BadInput is the cause), or 401
        cause = exc.__cause__
        if isinstance(cause, BadInput):
            return _json(cause.status, cause.as_dict())
        if exc.status_code == 401:
            return _json(401, {"error": "Send an API token: 'Authorization: Bearer <token>'."})
        return _json(exc.status_code, {"error": exc.message})
    if isinstance(exc, Http404):
        return _json(404, {"error": str(exc) or f"Nothing at {request.path}."})
    status, message = getattr(exc, "status", None), getattr(exc, "message", None)
    if isinstance(status, int) and 400 <= status < 500 and isinstance(message, str):
        body = {"error": message, "field": getattr(exc, "field", None)}
        if isinstance(getattr(exc, "allowed_actions", None), list):
            body["allowed_actions"] = exc.allowed_actions  # a lifecycle refusal says what is
        return _json(status, body)
    if isinstance(exc, FlagServiceError):
        status = next(code for kind, code in _FLAG_ERROR_STATUS if isinstance(exc, kind))
        return _json(status, {"error": str(exc), "field": None})
    response = _json(500, {"error": "Something went wrong on our side; it has been logged."})
    log_response(
        "Internal Server Error: %s",
        request.path,
        response=response,
        request=request,
        exception=exc,
    )
    return response


def _field_of(error: dict[str, Any]) -> str | None:
    # loc is (source, [param name for a body schema,] field, ...): name the top-level field.
    loc = [str(part) for part in error.get("loc", ())]
    loc = loc[2:] if loc and loc[0] == "body" else loc[1:]
    return loc[0] if loc else None


def _mismatch_body(exc: SchemaMismatch) -> dict[str, Any]:
    """One sentence for people naming every field that is wrong."""
    missing: list[str] = []
    unknown: list[str] = []
    problems: list[str] = []
    fields: list[str] = []
    for error in exc.errors:
        field, kind = _field_of(error), error.get("type", "")
        if field is None:
            problems.append("The request body must be a JSON object.")
            continue
        if field not in fields:
            fields.append(field)
        if kind == "missing":
            missing.append(field)
        elif kind == "extra_forbidden":
            unknown.append(field)
        elif kind == "string_unicode":
            problems.append(f"'{field}' holds a lone surrogate: not a character text can carry.")
        elif kind in ("string_type", "str_type"):
            problems.append(f"'{field}' must be a string.")
        elif kind.startswith("int_"):
            problems.append(f"'{field}' must be a whole number.")
        elif kind == "string_too_long":
            limit = (error.get("ctx") or {}).get("max_length")
            problems.append(f"'{field}' is longer than {limit} characters.")
        else:
            problems.append(f"'{field}': {error.get('msg', 'invalid')}.")
    sentences = []
    if unknown:
        allowed = getattr(exc, "allowed_fields", None)
        sentences.append(
            f"Unknown fields: {', '.join(unknown)}."
            + (f" Allowed: {', '.join(allowed)}." if allowed else "")
        )
    if missing:
        sentences.append(f"Missing fields: {', '.join(missing)}.")
    sentences.extend(dict.fromkeys(problems))  # once each, in order
    return {"error": " ".join(sentences), "field": fields[0] if fields else None, "fields": fields}


# ---------------------------------------------------------------------------------------------
# Authentication


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>` with a live, user-scoped API token whose user is a
    release manager or a stakeholder; with `manager_only`, a release manager."""

    def __init__(self, *, manager_only: str | None = None) -> None:
        super().__init__()
        self.manager_only = manager_only

    def __call__(self, request: HttpRequest) -> ApiToken:
        plaintext = bearer_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        token, status, problem = token_check(plaintext, evaluation_allowed=False)
        if token is None:
            raise Refused(status, problem)
        if self.manager_only and not is_release_manager(token.user):
            raise Refused(403, self.manager_only)
        request.user = token.user
        request.api_token = token  # type: ignore[attr-defined]
        return token

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:  # pragma: no cover
        return self(request)  # __call__ does it all; HttpBearer wants this defined


token_auth = TokenAuth()


def manager_auth(refusal: str) -> TokenAuth:
    """Auth for a write: release managers only; `refusal` is the 403's sentence for others."""
    return TokenAuth(manager_only=refusal)


# ---------------------------------------------------------------------------------------------
# Request bodies


class BodyParser(Parser):
    def parse_body(self, request: HttpRequest) -> Any:
        return parse_json_body(request.body, max_depth=MAX_BODY_DEPTH, max_bytes=MAX_BODY_BYTES)


class Body(Schema):
    """Base of request schemas: unknown fields are refused, and every text field (and every
    text in a list) is free of lone surrogates and control characters."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _clean_text(self) -> Body:
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, str):
                setattr(self, name, clean_text(value, field=name, max_length=MAX_TEXT))
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        clean_text(item, field=name, max_length=MAX_TEXT)
        return self


class ErrorOut(Schema):
    error: str
    field: str | None = None


ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut}


# ---------------------------------------------------------------------------------------------
# The API


class MyceliaAPI(NinjaAPI):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Paths answered outside ninja (OFREP) but described in the same document.
        self.extra_openapi: list[Callable[[], dict[str, Any]]] = []

    def set_default_exception_handlers(self) -> None:
        # One handler for every exception: ninja's defaults answer {"detail": ...} and 422.
        self.add_exception_handler(Exception, error_response)

    def validation_error_from_error_contexts(self, error_contexts: list[Any]) -> SchemaMismatch:
        error = super().validation_error_from_error_contexts(error_contexts)
        allowed: list[str] = []
        for context in error_contexts:
            for field in context.model.model_fields.values():
                inner = getattr(field.annotation, "model_fields", None)
                if inner:
                    allowed.extend(sorted(inner))
        error.allowed_fields = allowed  # type: ignore[attr-defined]
        return error

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        schema = super().get_openapi_schema(**kwargs)
        for describe in self.extra_openapi:
            extra = describe()
            schema["paths"].update(extra.get("paths", {}))
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                extra.get("schemas", {})
            )
        return schema


api = MyceliaAPI(
    title="Mycelia Ops",
    version="1.0.0",
    description=(
        "Feature flags (the playbook's API), OFREP evaluation, and upgrades. Authenticate with "
        "'Authorization: Bearer <token>' (tokens are made on the flags page or with "
        '`manage.py create_api_token`). Errors are {"error": "..."}; OFREP\'s are '
        '{"errorCode", "errorDetails"}.'
    ),
    urls_namespace="api",
    docs_url=None,  # the JSON document only: a docs page would load scripts from elsewhere
    parser=BodyParser(),
)


_registered = False


def _register() -> None:
    """Mount every app's router. Called when the URLconf loads (`urls()`), not at import:
    routers import this module for its auth and schemas."""
    global _registered
    if _registered:
        return
    _registered = True
    from flags.api import ofrep
    from flags.api.management import router as flags_router

    api.add_router("/", flags_router, tags=["flags"])
    api.extra_openapi.append(ofrep.openapi_description)
    api.add_router("/", "upgrades.api.router")  # H3: environments, upgrades, steps, runs
    # ---- Upgrades API: H3 adds its router here, e.g. ----------------------------------------
    #   from upgrades.api import router as upgrades_router
    #   api.add_router("/", upgrades_router, tags=["upgrades"])
    # ------------------------------------------------------------------------------------------


def urls() -> Any:
    """What mycelia_ops/urls.py mounts at api/: the API with every router added."""
    _register()
    return api.urls
