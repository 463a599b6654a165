"""Bearer-token checks shared by the product's API (mycelia_ops/api.py) and OFREP."""

from __future__ import annotations

from django.conf import settings

from flags.models import ApiToken, ApiTokenScope
from flags.services import api_token_authenticate
from mycelia_ops.roles import is_viewer


def default_environment_key() -> str:
    """The flag environment a flip or an evaluation means when none is named."""
    return getattr(settings, "FLAGS_DEFAULT_ENVIRONMENT", "production")


def bearer_from_header(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_check(
    plaintext: str | None, *, evaluation_allowed: bool
) -> tuple[ApiToken | None, int, str]:
    """(the live token, 200, "") when it may call the endpoint, else (None, 401 or 403, why).
    Release managers and stakeholders may read; evaluation-scoped tokens only evaluate."""
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
