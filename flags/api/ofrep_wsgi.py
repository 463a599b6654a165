"""OFREP straight from WSGI: the evaluation in flags/api/ofrep.py without Django's request and
response objects, middleware, signals or URL resolution.

Evaluation is the one hot path: every request of Mycelia's services asks it. The evaluation
itself costs about 55 µs; Django's machinery around it cost about 200 µs more (measured in
process, see bench/README.md). This adapter takes only the plain case: a POST to one of the two
OFREP paths, with a Content-Length within DATA_UPLOAD_MAX_MEMORY_SIZE, and not an http request
that SECURE_SSL_REDIRECT would send to https. Anything else goes to the Django handler it wraps,
which answers it as before (405, 404, the redirect, the size error).

What Django would have done around the view is done here: request_started and request_finished
are sent (so the database connection is checked before and after, honouring CONN_MAX_AGE and
dropping broken ones), and the response carries the headers SecurityMiddleware would add.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started

from flags.api import ofrep

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

BULK_PATH = "/ofrep/v1/evaluate/flags"
SINGLE_PATH = re.compile(r"^/ofrep/v1/evaluate/flags/([^/]+)$")

_REASONS = {200: "OK", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 500: "Internal Server Error"}  # fmt: skip


def _is_secure(environ: dict[str, Any]) -> bool:
    # As HttpRequest.is_secure: the proxy's header when one is trusted, else the scheme.
    if settings.SECURE_PROXY_SSL_HEADER:
        header, secure_value = settings.SECURE_PROXY_SSL_HEADER
        value = environ.get(header)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return environ.get("wsgi.url_scheme") == "https"


def _security_headers(secure: bool) -> list[tuple[str, str]]:
    """What SecurityMiddleware adds to a response."""
    headers: list[tuple[str, str]] = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append(("Strict-Transport-Security", value))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        if not isinstance(policy, str):
            policy = ",".join(policy)
        headers.append(("Referrer-Policy", policy))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    return headers


def _body(environ: dict[str, Any]) -> bytes | None:
    """The request body, or None when it is not the plain case (no or a too large length)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if length < 0 or (limit is not None and length > limit):
        return None
    return environ["wsgi.input"].read(length) if length else b""


def _answer(environ: dict[str, Any], path: str, body: bytes) -> ofrep.Answer:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    if path == BULK_PATH:
        return ofrep.evaluate_bulk(
            authorization=authorization,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH", ""),
            body=body,
        )
    key = SINGLE_PATH.match(path).group(1)  # type: ignore[union-attr]  # checked by the caller
    return ofrep.evaluate_single(authorization=authorization, key=key, body=body)


def ofrep_fast_path(django_handler: WSGIApp) -> WSGIApp:
    """A WSGI application for the OFREP paths that answers the plain case itself and passes
    everything else to `django_handler`."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]):
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not (
            path == BULK_PATH or SINGLE_PATH.match(path)
        ):
            return django_handler(environ, start_response)
        secure = _is_secure(environ)
        if settings.SECURE_SSL_REDIRECT and not secure:
            return django_handler(environ, start_response)
        body = _body(environ)
        if body is None:
            return django_handler(environ, start_response)

        # Django's own signals, so the database connection is handled exactly as for any request
        # (and as tests arrange it).
        request_started.send(sender=ofrep_fast_path, environ=environ)
        try:
            answer = _answer(environ, path, body)
        except Exception:
            logger.exception("OFREP evaluation failed: %s", path)
            answer = ofrep.Answer(
                500, b'{"errorCode": "GENERAL", "errorDetails": "Evaluation failed."}'
            )
        finally:
            request_finished.send(sender=ofrep_fast_path)
        headers = [("Content-Type", ofrep.JSON), ("Content-Length", str(len(answer.body)))]
        headers += answer.headers
        headers += _security_headers(secure)
        start_response(f"{answer.status} {_REASONS.get(answer.status, '')}".rstrip(), headers)
        return [answer.body]

    return application
