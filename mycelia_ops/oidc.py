"""Sign-in with OpenID Connect, on mozilla-django-oidc.

The library does the code flow (state, nonce, PKCE), the token exchange and the session; this
module adds what the panel needs on top:
- endpoints discovered from `<issuer>/.well-known/openid-configuration` on first use (cached),
  never at import or when a signed-in request loads the backend;
- a stricter ID token check than the library's (issuer, audience, expiry and issue time);
- roles from the groups claim on every sign-in (`OIDC_ROLE_GROUPS`), never superuser, and a
  page that says whom to ask when no group maps to a role;
- local accounts only for superusers while single sign-on is on (break-glass);
- sign-out that ends the provider's session (RP-initiated logout) when it offers one;
- a session that is renewed with the provider every OIDC_RENEW_SECONDS (SessionRenewal): roles
  are read again then, and someone the provider no longer signs in, or who lost every role,
  is signed out here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.generic import View
from django_htmx.http import trigger_client_event
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.middleware import SessionRefresh
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from mycelia_ops import roles

logger = logging.getLogger(__name__)

# The Django group each role of OIDC_ROLE_GROUPS stands for (made by migrations; created here
# if missing all the same).
ROLE_GROUPS = {
    "administrators": roles.ADMINISTRATORS,
    "release_managers": roles.RELEASE_MANAGERS,
    "stakeholders": roles.STAKEHOLDERS,
}
ROLE_LABELS = {
    roles.ADMINISTRATORS: "administrator",
    roles.RELEASE_MANAGERS: "release manager",
    roles.STAKEHOLDERS: "stakeholder",
}
DISCOVERY_MAX_AGE_SECONDS = 3600
CLOCK_SKEW_SECONDS = 60  # what a token's times may be off by between two honest clocks


def oidc_enabled() -> bool:
    return bool(getattr(settings, "OIDC_ISSUER", ""))


# -- discovery --------------------------------------------------------------------------------
class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read or does not fit its issuer."""


_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_discovery_lock = threading.Lock()


def provider_metadata() -> dict[str, Any]:
    """The provider's OpenID configuration, read once an hour at most (per process)."""
    issuer = settings.OIDC_ISSUER
    with _discovery_lock:
        cached = _discovered.get(issuer)
        if cached and time.monotonic() - cached[0] < DISCOVERY_MAX_AGE_SECONDS:
            return cached[1]
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"{url} could not be read: {exc}") from exc
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ProviderUnavailable(
            f"{url} names the issuer {document.get('issuer')!r}, not {issuer!r} (OIDC_ISSUER)"
        )
    needed = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
    missing = [key for key in needed if not document.get(key)]
    if missing:
        raise ProviderUnavailable(f"{url} does not name {', '.join(missing)}")
    with _discovery_lock:
        _discovered[issuer] = (time.monotonic(), document)
    return document


def provider_metadata_forget() -> None:
    with _discovery_lock:
        _discovered.clear()


# -- claims to roles --------------------------------------------------------------------------
def _claim(claims: dict[str, Any], name: str) -> Any:
    """A claim by its name, or by a dotted path into nested claims (realm_access.roles)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def provider_groups(claims: dict[str, Any]) -> set[str]:
    raw = _claim(claims, settings.OIDC_GROUPS_CLAIM)
    if isinstance(raw, str):
        return {raw}
    if isinstance(raw, list | tuple):
        return {str(item) for item in raw}
    return set()


def role_groups_from_claims(claims: dict[str, Any]) -> set[str]:
    """The Django groups (roles) that the provider's groups map to by OIDC_ROLE_GROUPS."""
    groups = provider_groups(claims)
    return {
        ROLE_GROUPS[role]
        for role, names in settings.OIDC_ROLE_GROUPS.items()
        if groups.intersection(names)
    }


def user_roles_sync(*, user: Any, wanted: set[str]) -> None:
    """Give the user exactly the roles in `wanted` (other groups and superuser untouched)."""
    managed = set(ROLE_GROUPS.values())
    current = set(user.groups.filter(name__in=managed).values_list("name", flat=True))
    for name in sorted(wanted - current):
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    if current - wanted:
        user.groups.remove(*Group.objects.filter(name__in=current - wanted))
    if wanted != current:
        logger.info(
            "OIDC sign-in: %s now has the roles %s (was %s)",
            user.get_username(),
            sorted(wanted),
            sorted(current),
        )
    if hasattr(user, "_mycelia_groups"):
        del user._mycelia_groups  # roles.py caches group names on the user object


class SignInFailed(Exception):
    """The provider signed someone in, but what it sent cannot be used; says why, for people."""


@dataclass(frozen=True)
class Refusal:
    """Why a person who proved who they are still may not sign in, for the refusal page."""

    reason: str  # "no_role", "local_account", "inactive"
    email: str


# -- the authentication backend ---------------------------------------------------------------
class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with discovered endpoints, a strict ID token check, users
    matched by e-mail among accounts without a local password, and roles from the groups."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django makes a backend for every request of a signed-in person: no settings of the
        # provider's endpoints are read here (the library's __init__ would), only on use below.
        self.UserModel = get_user_model()

    OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802 - the library's attribute names
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:  # noqa: N802
        return settings.OIDC_RP_CLIENT_SECRET

    @property
    def OIDC_RP_SIGN_ALGO(self) -> str:  # noqa: N802
        return settings.OIDC_RP_SIGN_ALGO

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802
        return provider_metadata()["token_endpoint"]

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return provider_metadata()["userinfo_endpoint"]

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return provider_metadata()["jwks_uri"]

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if not oidc_enabled():
            return None
        return super().authenticate(request, **kwargs)

    def _verify_jws(self, payload: str, key: Any) -> dict[str, Any]:
        # The library checks the signature and expiry only; an ID token is also for this client
        # from this issuer (OpenID Connect Core 3.1.3.7).
        client_id = self.OIDC_RP_CLIENT_ID
        try:
            claims = jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=client_id,
                issuer=provider_metadata()["issuer"],
                leeway=CLOCK_SKEW_SECONDS,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"The ID token was refused: {exc}") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp", client_id) != client_id:
            raise SuspiciousOperation("The ID token was refused: it was made for another client")
        return claims

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]):
        """The ID token's claims with the userinfo endpoint's on top (groups may be in either)."""
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo answer is about someone else (sub differs)")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub") and claims.get("email")) and (
            claims.get("email_verified") is not False
        )

    def filter_users_by_claims(self, claims: dict[str, Any]):
        # Single sign-on takes over no account that signs in with a password here: a superuser
        # stays local-only, and a local account is handed over by switching its password off.
        return self.UserModel.objects.filter(
            email__iexact=claims["email"], is_superuser=False, password__startswith="!"
        )

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]):
        # The library turns a SuspiciousOperation from here into a silent "no user"; these
        # failures are said to the person instead (SignInCallbackView).
        provider = settings.OIDC_PROVIDER_NAME
        try:
            claims = self.get_userinfo(access_token, id_token, payload)
        except SuspiciousOperation as exc:
            raise SignInFailed(f"What {provider} said about you could not be verified.") from exc
        if not self.verify_claims(claims):
            raise SignInFailed(
                f"{provider} sent no verified e-mail address for you, which this panel needs."
            )
        wanted = role_groups_from_claims(claims)
        users = list(self.filter_users_by_claims(claims))
        if len(users) > 1:
            raise SignInFailed(f"Several accounts here have the e-mail address {claims['email']}.")
        user = users[0] if users else None
        if user is None and self.UserModel.objects.filter(email__iexact=claims["email"]).exists():
            return self._refuse("local_account", claims)
        if not wanted:
            if user is not None:
                user_roles_sync(user=user, wanted=set())
            return self._refuse("no_role", claims)
        with transaction.atomic():
            if user is None:
                user = self.create_user(claims)
            return self.update_user(user, claims, wanted=wanted)

    def _refuse(self, reason: str, claims: dict[str, Any]) -> None:
        self.request.oidc_refusal = Refusal(reason=reason, email=claims.get("email", ""))
        logger.warning("OIDC sign-in refused (%s) for %s", reason, claims.get("email"))
        return None

    def create_user(self, claims: dict[str, Any]) -> Any:
        username = next(
            candidate
            for candidate in (
                claims.get("preferred_username"),
                claims.get("email"),
                f"oidc-{claims['sub']}"[:150],
            )
            if candidate
            and len(candidate) <= 150
            and not self.UserModel.objects.filter(username__iexact=candidate).exists()
        )
        # No password: this account signs in through the provider only.
        return self.UserModel.objects.create_user(username, email=claims["email"])

    def update_user(self, user: Any, claims: dict[str, Any], *, wanted: set[str] | None = None):
        user.email = claims["email"]
        user.first_name = str(claims.get("given_name") or claims.get("name") or "")[:150]
        user.last_name = str(claims.get("family_name") or "")[:150]
        user.save(update_fields=["email", "first_name", "last_name"])
        user_roles_sync(
            user=user, wanted=role_groups_from_claims(claims) if wanted is None else wanted
        )
        return user


# -- views ------------------------------------------------------------------------------------
def _failed(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    return render(
        request,
        "registration/oidc_failed.html",
        {
            "message": message,
            "provider": settings.OIDC_PROVIDER_NAME,
            "contact": settings.OIDC_ACCESS_CONTACT,
        },
        status=status,
    )


class SignInStartView(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's authorization endpoint (state, nonce, PKCE)."""

    def __init__(self, **kwargs: Any) -> None:
        # The endpoint is discovered in get(), not read from settings when the view is made.
        View.__init__(self, **kwargs)

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802 - the library's attribute name
        return settings.OIDC_RP_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("Single sign-on is not set up here.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            logger.warning("OIDC sign-in could not start: %s", exc)
            return _failed(
                request,
                f"{settings.OIDC_PROVIDER_NAME} cannot be reached just now, so you cannot sign "
                "in with it. Try again in a few minutes.",
                status=502,
            )
        return super().get(request)


class SignInCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: code exchange, token check, roles, sign-in."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("Single sign-on is not set up here.")
        try:
            return super().get(request)
        except SignInFailed as exc:
            logger.warning("OIDC sign-in failed: %s", exc)
            return _failed(
                request,
                f"{exc} You are not signed in; tell {settings.OIDC_ACCESS_CONTACT}.",
                status=403,
            )
        except (SuspiciousOperation, requests.RequestException, ProviderUnavailable) as exc:
            logger.warning("OIDC sign-in failed: %s", exc)
            return _failed(
                request,
                f"The answer from {settings.OIDC_PROVIDER_NAME} could not be verified, so you "
                "are not signed in. Try again; if it keeps happening, tell "
                f"{settings.OIDC_ACCESS_CONTACT}.",
                status=400,
            )

    def login_failure(self) -> HttpResponse:
        request = self.request
        if request.user.is_authenticated:
            # A renewal (SessionRenewal) that did not sign the person in again ends the session.
            logout(request)
        if request.GET.get("error") in RENEWAL_NEEDS_PERSON:
            # Only a silent renewal asks with prompt=none: the provider's own session ended (or
            # the person was switched off there). Signing in again shows the provider's form.
            messages.info(
                request,
                f"Your session ended: sign in with {settings.OIDC_PROVIDER_NAME} again.",
            )
            return redirect("login")
        refusal: Refusal | None = getattr(request, "oidc_refusal", None)
        user = getattr(self, "user", None)
        if refusal is None and user is not None and not user.is_active:
            refusal = Refusal(reason="inactive", email=user.email)
        if refusal is not None:
            return render(
                request,
                "registration/oidc_refused.html",
                {
                    "refusal": refusal,
                    "provider": settings.OIDC_PROVIDER_NAME,
                    "contact": settings.OIDC_ACCESS_CONTACT,
                    "roles": [ROLE_LABELS[ROLE_GROUPS[role]] for role in settings.OIDC_ROLE_GROUPS],
                },
                status=403,
            )
        if request.GET.get("error"):
            said = request.GET.get("error_description") or request.GET["error"]
            return _failed(
                request,
                f"{settings.OIDC_PROVIDER_NAME} did not sign you in ({said}).",
                status=403,
            )
        return _failed(
            request,
            "This sign-in was started in another window or has expired. Start again.",
            status=400,
        )


# What a provider answers a prompt=none request when it would have to ask the person.
RENEWAL_NEEDS_PERSON = frozenset({"login_required", "interaction_required", "consent_required"})
# What an htmx request is told when the session is due for renewal (handled in app.js).
RENEWAL_EVENT = "mycelia:renew-sign-in"


class SessionRenewal(SessionRefresh):
    """mozilla-django-oidc's SessionRefresh: once the session's ID token is older than
    OIDC_RENEW_SECONDS, the next page a person opens goes through the provider again without a
    form (prompt=none), so their roles follow the provider's groups, and someone the provider
    no longer signs in (switched off, signed out there) or who lost every role is signed out.

    On top of the library: endpoints are discovered, not read from settings (nothing is read
    when the middleware is made, so it sits in MIDDLEWARE whether OIDC is on or not), and an
    htmx GET (a poll) is not followed to the provider, which its XMLHttpRequest could not do:
    it gets no data and no swap (204) but RENEWAL_EVENT, and static/js/app.js pauses the page's
    polls with a banner offering to renew. A reload would throw away what the person typed, and
    fresh data before renewing could show it to someone the provider has removed."""

    def __init__(self, get_response: Any) -> None:
        super(SessionRefresh, self).__init__(get_response)

    @staticmethod
    def get_settings(attr: str, *args: Any) -> Any:
        return getattr(settings, attr, args[0] if args else None)

    OIDC_EXEMPT_URLS: list[str] = []
    OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
    OIDC_STATE_SIZE = 32
    OIDC_USE_NONCE = True
    OIDC_NONCE_SIZE = 32

    @property
    def OIDC_OP_AUTHORIZATION_ENDPOINT(self) -> str:  # noqa: N802 - the library's names
        return provider_metadata()["authorization_endpoint"]

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_RP_SCOPES(self) -> str:  # noqa: N802
        return settings.OIDC_RP_SCOPES

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not oidc_enabled() or not self.is_refreshable_url(request):
            return None
        if request.session.get("oidc_id_token_expiration", 0) > time.time():
            return None
        if request.headers.get("HX-Request") == "true":
            return trigger_client_event(HttpResponse(status=204), RENEWAL_EVENT)
        try:
            return super().process_request(request)
        except ProviderUnavailable as exc:
            # The person keeps the session they have until the provider answers again.
            logger.warning("Session of %s not renewed: %s", request.user.get_username(), exc)
            return None


def provider_logout_url(request: HttpRequest) -> str:
    """Where sign-out sends the browser (OIDC_OP_LOGOUT_URL_METHOD): the provider's
    end_session endpoint when this session came from the provider and it offers one, with the
    ID token as the hint and the sign-in page to come back to; otherwise the sign-in page."""
    local = resolve_url(settings.LOGOUT_REDIRECT_URL)
    id_token = request.session.get("oidc_id_token")
    if not (oidc_enabled() and id_token):
        return local
    try:
        endpoint = provider_metadata().get("end_session_endpoint")
    except ProviderUnavailable as exc:
        logger.warning("Signed out here only; the provider cannot be reached: %s", exc)
        return local
    if not endpoint:
        return local
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(local),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def axes_skips_provider_sign_in(request: HttpRequest | None, credentials: dict | None) -> bool:
    """AXES_WHITELIST_CALLABLE: the lockout counts password guesses. A sign-in that comes back
    from the provider carries no password (the provider guards its own sign-in), so it is never
    counted nor locked out; else people refused for having no role would, from one office
    address, lock everyone there out of single sign-on."""
    return (
        request is not None
        and "password" not in (credentials or {})
        and request.path == reverse("oidc_authentication_callback")
    )


class LocalSignInForm(AuthenticationForm):
    """The username and password form; while single sign-on is on, for superusers only."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if oidc_enabled() and not user.is_superuser:
            raise ValidationError(
                f"Sign in with {settings.OIDC_PROVIDER_NAME} instead. A password signs in here "
                "only for local superusers, as a way in while single sign-on is down.",
                code="single_sign_on_only",
            )


class SignInView(auth_views.LoginView):
    authentication_form = LocalSignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["oidc_enabled"] = oidc_enabled()
        context["oidc_provider_name"] = getattr(settings, "OIDC_PROVIDER_NAME", "")
        return context
