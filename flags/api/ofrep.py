"""OpenFeature Remote Evaluation Protocol (OFREP) v1: single and bulk evaluation.

Follows open-feature/protocol service/openapi.yaml: body {"context": {...}}; single answers
{key, value, reason, variant, metadata} or {key, errorCode, errorDetails} with 400/404/500;
bulk answers {"flags": [...]} with an ETag, and 304 when If-None-Match matches it.

The work is done on plain values (the Authorization and If-None-Match headers, the body) and
returns an Answer, so that two thin adapters serve it: the Django views below, and the WSGI
fast path in flags/api/ofrep_wsgi.py that Mycelia's services hit on every request of theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from flags import runtime
from flags.api.auth import bearer_from_header, token_check
from flags.api.management import default_environment_key
from flags.evaluation import (
    ERROR_STATUS,
    KEY_MISSING,
    ErrorCode,
    context_validate,
    evaluate,
    evaluation_failed,
)
from flags.models import ApiToken, ApiTokenScope, FlagEnvironment

logger = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _json(status: int, data: dict[str, Any], *headers: tuple[str, str]) -> Answer:
    # The bytes JsonResponse would write for these plain values.
    return Answer(status, json.dumps(data).encode(), headers)


# ---------------------------------------------------------------------------------------------
# The steps every evaluation takes


def authenticate(authorization: str) -> ApiToken | Answer:
    """The token, or the 401/403 Answer. A token that passed every check is trusted for a
    second or so (runtime.TokenCache): evaluation clients call in a steady stream."""
    plaintext = bearer_from_header(authorization)
    if plaintext:
        cached = runtime.tokens.get(plaintext)
        if cached is not None:
            return cached
    token, status, problem = token_check(plaintext, evaluation_allowed=True)
    if token is None:
        headers = (("WWW-Authenticate", 'Bearer realm="mycelia-ops"'),) if status == 401 else ()
        return _json(status, {"errorCode": ErrorCode.GENERAL, "errorDetails": problem}, *headers)
    runtime.tokens.put(plaintext, token)
    return token


class _BadBody(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _context(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadBody(
            ErrorCode.PARSE_ERROR, f"The request body is not valid JSON: {exc}."
        ) from exc
    if not isinstance(parsed, dict):
        raise _BadBody(ErrorCode.PARSE_ERROR, 'The request body must be {"context": {...}}.')
    context = parsed.get("context", {})
    problem = context_validate(context)
    if problem:
        raise _BadBody(ErrorCode.INVALID_CONTEXT, problem)
    return context


def _environment(token: ApiToken) -> FlagEnvironment | None:
    if token.scope == ApiTokenScope.EVALUATION:
        return token.environment
    return FlagEnvironment.objects.filter(key=default_environment_key()).first()


def _no_environment() -> Answer:
    return _json(
        500, {"errorDetails": f"The environment '{default_environment_key()}' is not configured."}
    )


def _etag(revision: str, environment_id: int, context: dict[str, Any]) -> str:
    # The answer depends on the definitions, the environment and the context: so does the tag.
    material = json.dumps([revision, environment_id, context], sort_keys=True, default=str)
    return '"' + hashlib.sha256(material.encode()).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


# ---------------------------------------------------------------------------------------------
# The two evaluations


def evaluate_single(*, authorization: str, key: str, body: bytes) -> Answer:
    token = authenticate(authorization)
    if isinstance(token, Answer):
        return token
    try:
        context = _context(body)
    except _BadBody as exc:
        return _json(400, {"key": key, "errorCode": exc.code, "errorDetails": exc.details})
    environment = _environment(token)
    if environment is None:
        return _no_environment()
    _revision, flags = runtime.definitions.environment(environment.pk)
    definition = flags.by_key.get(key)
    if definition is None:
        not_found = evaluate(None, context, key=key)
        return _json(ERROR_STATUS[ErrorCode.FLAG_NOT_FOUND], not_found.as_ofrep())
    fragment, outcome = flags.answer(definition, context)
    if outcome is None:
        return _json(500, {"errorDetails": evaluation_failed(key).error_details})
    if outcome == KEY_MISSING:
        return Answer(ERROR_STATUS[ErrorCode.TARGETING_KEY_MISSING], fragment.encode())
    runtime.counter.record(definition.flag_id, definition.environment_id)
    return Answer(200, fragment.encode())


def evaluate_bulk(*, authorization: str, if_none_match: str, body: bytes) -> Answer:
    token = authenticate(authorization)
    if isinstance(token, Answer):
        return token
    try:
        context = _context(body)
    except _BadBody as exc:
        return _json(400, {"errorCode": exc.code, "errorDetails": exc.details})
    environment = _environment(token)
    if environment is None:
        return _no_environment()
    revision, flags = runtime.definitions.environment(environment.pk)
    etag = _etag(revision, environment.pk, context)
    if _etag_matches(if_none_match, etag):
        return Answer(304, b"", (("ETag", etag),))
    # The same bytes JsonResponse({"flags": [...]}) would write, each answer serialised once per
    # revision rather than once per request.
    parts, counted = flags.bulk_answers(context)
    runtime.counter.record_many(counted)
    return Answer(200, ('{"flags": [' + ", ".join(parts) + "]}").encode(), (("ETag", etag),))


# ---------------------------------------------------------------------------------------------
# Django views (the test client, runserver, and any request the fast path passes on)


def _response(answer: Answer) -> HttpResponse:
    response = HttpResponse(answer.body, status=answer.status, content_type=JSON)
    for name, value in answer.headers:
        response[name] = value
    return response


@csrf_exempt
@require_POST
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    return _response(
        evaluate_single(
            authorization=request.META.get("HTTP_AUTHORIZATION", ""), key=key, body=request.body
        )
    )


@csrf_exempt
@require_POST
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    return _response(
        evaluate_bulk(
            authorization=request.META.get("HTTP_AUTHORIZATION", ""),
            if_none_match=request.META.get("HTTP_IF_NONE_MATCH", ""),
            body=request.body,
        )
    )
