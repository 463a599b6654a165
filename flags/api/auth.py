"""Bearer-token authentication for the JSON API and OFREP."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from flags.models import ApiToken, ApiTokenScope
from flags.services import api_token_authenticate
from mycelia_ops.roles import is_viewer


def bearer_token(request: HttpRequest) -> str | None:
    # META rather than request.headers: that builds a dict of every header, on the hot path.
    return bearer_from_header(request.META.get("HTTP_AUTHORIZATION", ""))


def bearer_from_header(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_check(
    plaintext: str | None, *, evaluation_allowed: bool
) -> tuple[ApiToken | None, int, str]:
    """(the live token, 200, "") when it may call the endpoint, else (None, 401 or 403, why)."""
    if plaintext is None:
        return None, 401, "Send an API token: 'Authorization: Bearer <token>'."
    token = api_token_authenticate(plaintext=plaintext)
    if token is None:
        return None, 401, "The API token is unknown or revoked."
    if token.scope == ApiTokenScope.EVALUATION and not evaluation_allowed:
        return None, 403, "An evaluation token may only call the OFREP endpoints."
    if not is_viewer(token.user):
        return None, 403, "The token's user needs the Release managers or Stakeholders role."
    return token, 200, ""


def token_required(
    *, evaluation_allowed: bool, error_body: Callable[[str], dict[str, Any]]
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """401 without a live token, 403 for a token that may not call this endpoint. The token
    is on `request.api_token`, its user on `request.user`."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token, status, problem = token_check(
                bearer_token(request), evaluation_allowed=evaluation_allowed
            )
            if token is None:
                return _deny(status, problem, error_body)
            request.api_token = token
            request.user = token.user
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def _deny(status: int, message: str, error_body: Callable[[str], dict[str, Any]]) -> JsonResponse:
    response = JsonResponse(error_body(message), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="mycelia-ops"'
    return response


def api_error(message: str) -> dict[str, Any]:
    return {"error": message}


def token_of(request: HttpRequest) -> ApiToken:
    return request.api_token  # type: ignore[attr-defined]
