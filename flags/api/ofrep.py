"""OpenFeature Remote Evaluation Protocol (OFREP) v1: single and bulk evaluation.

Follows open-feature/protocol service/openapi.yaml: body {"context": {...}}; single answers
{key, value, reason, variant, metadata} or {key, errorCode, errorDetails}; bulk answers
{"flags": [...]} with an ETag, and 304 when If-None-Match matches it.

One implementation answers every request: these views, whichever Django handler runs them
(the lean OFREP stack of mycelia_ops/wsgi.py, or the full one under the test client and
ASGI). They answer every shape of request themselves, always in OFREP's error shape
{"errorCode", "errorDetails"}: a method other than POST, a body too large, not JSON or too
deep, a context that is not an object or a targetingKey that is not text, an unknown or
missing environment, an unknown path under /ofrep/ (`not_found`, routed by
flags/api/ofrep_urls.py), and a failure, which is logged to django.request.

OFREP is a plain Django view rather than an operation of the ninja API (mycelia_ops/api.py):
its paths, status codes and error shape are fixed by the OFREP specification, not by our API's
conventions, and it is the hot path (every request of Mycelia's services asks it), where a
schema validation and a re-serialisation per request would cost throughput for nothing. It is
described in the same OpenAPI document (`openapi_description`, from the pydantic models below).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any, Literal

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.utils.log import log_response
from django.views.decorators.csrf import csrf_exempt
from pydantic import BaseModel, ConfigDict, Field

from flags import runtime
from flags.api.auth import bearer_from_header, default_environment_key, token_check
from flags.evaluation import (
    ERROR_STATUS,
    KEY_MISSING,
    ErrorCode,
    context_validate,
    evaluate,
)
from flags.models import ApiToken, ApiTokenScope, FlagEnvironment
from mycelia_ops.validation import BadInput, clean_text, parse_json_body

JSON = "application/json"
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 32
TARGETING_KEY_MAX = 1024
BEARER_CHALLENGE = ("WWW-Authenticate", 'Bearer realm="mycelia-ops"')


class OfrepError(Exception):
    """An answer in OFREP's error shape: {"key"?, "errorCode", "errorDetails"}."""

    def __init__(
        self,
        status: int,
        code: str,
        details: str,
        *,
        key: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(details)
        self.status, self.code, self.details = status, code, details
        self.key, self.headers = key, headers

    def response(self) -> HttpResponse:
        body: dict[str, Any] = {} if self.key is None else {"key": self.key}
        body |= {"errorCode": self.code, "errorDetails": self.details}
        return _response(self.status, json.dumps(body), self.headers)


def _response(status: int, body: str | bytes, headers: tuple[tuple[str, str], ...] = ()):
    response = HttpResponse(body, status=status, content_type=JSON)
    for name, value in headers:
        response[name] = value
    return response


def _failed(request: HttpRequest, error: OfrepError, exc: BaseException) -> HttpResponse:
    response = error.response()
    log_response(
        "OFREP evaluation failed: %s",
        request.path,
        response=response,
        request=request,
        exception=exc,
    )
    return response


def ofrep_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """POST only; every OfrepError becomes its answer; anything else is logged to
    django.request and answered 500 GENERAL."""

    @csrf_exempt
    @wraps(view)
    def wrapped(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        key = kwargs.get("key")
        try:
            if request.method != "POST":
                raise OfrepError(
                    405,
                    ErrorCode.GENERAL,
                    f"OFREP evaluates with POST, not {request.method}.",
                    key=key,
                    headers=(("Allow", "POST"),),
                )
            return view(request, **kwargs)
        except OfrepError as exc:
            return _failed(request, exc, exc) if exc.status >= 500 else exc.response()
        except Exception as exc:
            return _failed(
                request, OfrepError(500, ErrorCode.GENERAL, "Evaluation failed.", key=key), exc
            )

    return wrapped


# ---------------------------------------------------------------------------------------------
# The steps every evaluation takes


def _token(request: HttpRequest) -> ApiToken:
    """The caller's token. One that passed every check is trusted for a second or so
    (runtime.TokenCache): evaluation clients call in a steady stream."""
    plaintext = bearer_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
    if plaintext:
        cached = runtime.tokens.get(plaintext)
        if cached is not None:
            return cached
    token, status, problem = token_check(plaintext, evaluation_allowed=True)
    if token is None:
        headers = (BEARER_CHALLENGE,) if status == 401 else ()
        raise OfrepError(status, ErrorCode.GENERAL, problem, headers=headers)
    runtime.tokens.put(plaintext, token)  # type: ignore[arg-type]  # not None: token passed
    return token


def _body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise OfrepError(
            413, ErrorCode.PARSE_ERROR, "The request body is too large for an evaluation."
        ) from None
    except UnreadablePostError:
        raise OfrepError(
            400, ErrorCode.PARSE_ERROR, "The request body could not be read."
        ) from None


def _context(body: bytes) -> dict[str, Any]:
    try:
        parsed = parse_json_body(body, max_depth=MAX_DEPTH, max_bytes=MAX_BODY_BYTES, empty={})
    except BadInput as exc:
        raise OfrepError(400, ErrorCode.PARSE_ERROR, exc.message) from None
    if not isinstance(parsed, dict):
        raise OfrepError(400, ErrorCode.PARSE_ERROR, 'The request body must be {"context": {...}}.')
    context = parsed.get("context", {})
    problem = context_validate(context)
    if problem:
        raise OfrepError(400, ErrorCode.INVALID_CONTEXT, problem)
    targeting_key = context.get("targetingKey")
    if targeting_key is not None:
        try:
            clean_text(targeting_key, field="targetingKey", max_length=TARGETING_KEY_MAX)
        except BadInput as exc:
            raise OfrepError(400, ErrorCode.INVALID_CONTEXT, exc.message) from None
    return context


def _environment_id(token: ApiToken) -> int:
    """An evaluation token's own environment; a user token's is FLAGS_DEFAULT_ENVIRONMENT."""
    if token.scope == ApiTokenScope.EVALUATION:
        return token.environment_id  # type: ignore[return-value]  # the model's constraint
    key = default_environment_key()
    found = FlagEnvironment.objects.filter(key=key).values_list("pk", flat=True).first()
    if found is None:
        raise OfrepError(
            404,
            ErrorCode.GENERAL,
            f"The flag environment '{key}' (FLAGS_DEFAULT_ENVIRONMENT) does not exist: create "
            "it, or evaluate with an evaluation token of an environment that does.",
        )
    return found


def _etag(revision: str, environment_id: int, body: bytes) -> str:
    # The answer depends on the definitions, the environment and the context, which is all
    # in the body: so does the tag (another spelling of one context is only another tag).
    material = f"{revision}\x00{environment_id}\x00".encode() + body
    return '"' + hashlib.sha256(material).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip() for c in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


# ---------------------------------------------------------------------------------------------
# The views


@ofrep_view
def evaluate_flag(request: HttpRequest, key: str) -> HttpResponse:
    token = _token(request)
    try:
        context = _context(_body(request))
        environment_id = _environment_id(token)
    except OfrepError as exc:
        exc.key = key
        raise
    _revision, flags = runtime.definitions.environment(environment_id)
    definition = flags.by_key.get(key)
    if definition is None:
        not_found = evaluate(None, context, key=key)
        return _response(ERROR_STATUS[ErrorCode.FLAG_NOT_FOUND], json.dumps(not_found.as_ofrep()))
    fragment, outcome = flags.answer(definition, context)
    if outcome is None:  # a stored definition that cannot be evaluated (logged by answer)
        raise OfrepError(500, ErrorCode.GENERAL, "Evaluation failed.", key=key)
    if outcome == KEY_MISSING:
        return _response(ERROR_STATUS[ErrorCode.TARGETING_KEY_MISSING], fragment)
    runtime.counter.record(definition.flag_id, definition.environment_id)
    return _response(200, fragment)


@ofrep_view
def evaluate_flags(request: HttpRequest) -> HttpResponse:
    token = _token(request)
    body = _body(request)
    context = _context(body)
    environment_id = _environment_id(token)
    revision, flags = runtime.definitions.environment(environment_id)
    etag = _etag(revision, environment_id, body)
    if _etag_matches(request.META.get("HTTP_IF_NONE_MATCH", ""), etag):
        return _response(304, b"", (("ETag", etag),))
    # The same bytes JsonResponse({"flags": [...]}) would write, each answer serialised once per
    # revision rather than once per request.
    parts, counted = flags.bulk_answers(context)
    runtime.counter.record_many(counted)
    return _response(200, '{"flags": [' + ", ".join(parts) + "]}", (("ETag", etag),))


@csrf_exempt
def not_found(request: HttpRequest) -> HttpResponse:
    """Any other path under /ofrep/."""
    return OfrepError(
        404,
        ErrorCode.GENERAL,
        f"Nothing at {request.path}: OFREP answers POST /ofrep/v1/evaluate/flags and "
        "POST /ofrep/v1/evaluate/flags/{key}.",
    ).response()


# ---------------------------------------------------------------------------------------------
# OpenAPI description (merged into /api/openapi.json by mycelia_ops/api.py)


class OfrepContext(BaseModel):
    model_config = ConfigDict(extra="allow")
    targetingKey: str | None = Field(None, max_length=TARGETING_KEY_MAX)  # noqa: N815


class OfrepRequest(BaseModel):
    context: OfrepContext = Field(default_factory=OfrepContext)


class OfrepSuccess(BaseModel):
    key: str
    value: bool
    reason: Literal["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"]
    variant: str
    metadata: dict[str, Any]


class OfrepFailure(BaseModel):
    key: str | None = None
    errorCode: Literal[  # noqa: N815
        "FLAG_NOT_FOUND", "PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"
    ]
    errorDetails: str  # noqa: N815


class OfrepBulk(BaseModel):
    flags: list[OfrepSuccess | OfrepFailure]


def openapi_description() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (OfrepRequest, OfrepSuccess, OfrepFailure, OfrepBulk):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema

    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def answer(name: str, description: str) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": ref(name)}}}

    errors = {
        "400": answer("OfrepFailure", "PARSE_ERROR, INVALID_CONTEXT or TARGETING_KEY_MISSING"),
        "401": answer("OfrepFailure", "Missing, unknown or revoked token"),
        "403": answer("OfrepFailure", "The token may not evaluate"),
        "405": answer("OfrepFailure", "Not a POST"),
        "413": answer("OfrepFailure", "The body is too large"),
        "500": answer("OfrepFailure", "A stored definition could not be evaluated (logged)"),
    }
    body = {"required": False, "content": {JSON: {"schema": ref("OfrepRequest")}}}
    security = [{"TokenAuth": []}]
    return {
        "schemas": schemas,
        "paths": {
            "/ofrep/v1/evaluate/flags": {
                "post": {
                    "operationId": "ofrep_evaluate_flags",
                    "summary": "OFREP bulk evaluation: every live flag of the environment",
                    "tags": ["ofrep"],
                    "security": security,
                    "parameters": [
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
                    ],
                    "requestBody": body,
                    "responses": {
                        "200": {
                            **answer("OfrepBulk", "Every live flag, evaluated"),
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "Not modified since the ETag sent"},
                        "404": answer("OfrepFailure", "The default environment does not exist"),
                        **errors,
                    },
                }
            },
            "/ofrep/v1/evaluate/flags/{key}": {
                "post": {
                    "operationId": "ofrep_evaluate_flag",
                    "summary": "OFREP single flag evaluation",
                    "tags": ["ofrep"],
                    "security": security,
                    "parameters": [
                        {
                            "name": "key",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": body,
                    "responses": {
                        "200": answer("OfrepSuccess", "Evaluated"),
                        "404": answer("OfrepFailure", "FLAG_NOT_FOUND, or no such environment"),
                        **errors,
                    },
                }
            },
        },
    }
