"""OpenFeature Remote Evaluation Protocol (OFREP) v1: single and bulk evaluation.

Follows open-feature/protocol service/openapi.yaml: body {"context": {...}}; single answers
{key, value, reason, variant, metadata} or {key, errorCode, errorDetails} with 400/404/500;
bulk answers {"flags": [...]} with an ETag, and 304 when If-None-Match matches it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from flags import runtime
from flags.api.auth import bearer_token, token_of, token_required
from flags.api.management import default_environment_key
from flags.evaluation import (
    ERROR_STATUS,
    ErrorCode,
    FlagDefinition,
    Resolution,
    context_validate,
    evaluate,
    evaluation_failed,
)
from flags.models import ApiTokenScope, FlagEnvironment

logger = logging.getLogger(__name__)


def _ofrep_error(message: str) -> dict[str, Any]:
    return {"errorCode": ErrorCode.GENERAL, "errorDetails": message}


_token_checked = token_required(evaluation_allowed=True, error_body=_ofrep_error)


def ofrep_token_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The API's token check (401/403 and their bodies), skipped for a second or so after a
    token passed it: see runtime.TokenCache. Evaluation clients call in a steady stream."""
    checked_view = _token_checked(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        plaintext = bearer_token(request)
        token = runtime.tokens.get(plaintext) if plaintext else None
        if token is None:
            response = checked_view(request, *args, **kwargs)
            passed = getattr(request, "api_token", None)  # set only once every check passed
            if plaintext and passed is not None:
                runtime.tokens.put(plaintext, passed)
            return response
        request.api_token = token
        request.user = token.user
        return view(request, *args, **kwargs)

    return wrapped


class _BadBody(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _context(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadBody(
            ErrorCode.PARSE_ERROR, f"The request body is not valid JSON: {exc}."
        ) from exc
    if not isinstance(body, dict):
        raise _BadBody(ErrorCode.PARSE_ERROR, 'The request body must be {"context": {...}}.')
    context = body.get("context", {})
    problem = context_validate(context)
    if problem:
        raise _BadBody(ErrorCode.INVALID_CONTEXT, problem)
    return context


def _environment(request: HttpRequest) -> FlagEnvironment | None:
    token = token_of(request)
    if token.scope == ApiTokenScope.EVALUATION:
        return token.environment
    return FlagEnvironment.objects.filter(key=default_environment_key()).first()


def _resolve(definition: FlagDefinition | None, context: dict[str, Any], key: str) -> Resolution:
    try:
        resolution = evaluate(definition, context, key=key)
    except Exception:  # a malformed stored rule must not take the endpoint down
        logger.exception("Evaluating flag %s failed", key)
        return evaluation_failed(key)
    if definition is not None and not resolution.is_error:
        runtime.counter.record(definition.flag_id, definition.environment_id)
    return resolution


def _no_environment() -> JsonResponse:
    return JsonResponse(
        {"errorDetails": f"The environment '{default_environment_key()}' is not configured."},
        status=500,
    )


@csrf_exempt
@require_POST
@ofrep_token_required
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    try:
        context = _context(request)
    except _BadBody as exc:
        return JsonResponse(
            {"key": key, "errorCode": exc.code, "errorDetails": exc.details}, status=400
        )
    environment = _environment(request)
    if environment is None:
        return _no_environment()
    _revision, definitions = runtime.definitions.definitions(environment.pk)
    resolution = _resolve(definitions.get(key), context, key)
    if resolution.error_code == ErrorCode.GENERAL:
        return JsonResponse({"errorDetails": resolution.error_details}, status=500)
    status = ERROR_STATUS[resolution.error_code] if resolution.is_error else 200
    return JsonResponse(resolution.as_ofrep(), status=status)


def _etag(revision: str, environment_id: int, context: dict[str, Any]) -> str:
    # The answer depends on the definitions, the environment and the context: so does the tag.
    material = json.dumps([revision, environment_id, context], sort_keys=True, default=str)
    return '"' + hashlib.sha256(material.encode()).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


@csrf_exempt
@require_POST
@ofrep_token_required
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    try:
        context = _context(request)
    except _BadBody as exc:
        return JsonResponse({"errorCode": exc.code, "errorDetails": exc.details}, status=400)
    environment = _environment(request)
    if environment is None:
        return _no_environment()
    revision, flags = runtime.definitions.environment(environment.pk)
    etag = _etag(revision, environment.pk, context)
    if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), etag):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return response
    # The same bytes JsonResponse({"flags": [...]}) would write, each answer serialised once per
    # revision rather than once per request.
    parts, counted = flags.bulk_answers(context)
    runtime.counter.record_many(counted)
    response = HttpResponse(
        '{"flags": [' + ", ".join(parts) + "]}", content_type="application/json"
    )
    response["ETag"] = etag
    return response
