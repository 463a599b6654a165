"""Sign-in with OpenID Connect in real Chromium against a real provider (tests/oidc/provider.py,
Authlib over HTTP on a loopback port): the redirect, the code exchange with PKCE, the ID token's
signature and claims, userinfo and RP-initiated logout all happen for real; nothing is mocked."""

from __future__ import annotations

import time
from importlib import import_module

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from playwright.sync_api import expect

from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS
from tests.conftest import PASSWORD, drive
from tests.oidc.helpers import CONTACT, PROVIDER_NAME, use_provider
from tests.oidc.provider import TestProvider
from upgrades.models import CheckRun, RunKind, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider(settings, live_server):
    running = TestProvider().start()
    use_provider(settings, running, panel_url=live_server.url)
    running.add_user("rita", groups=["release-team", "everyone"])
    running.add_user("otto", groups=["ops-admins"])
    running.add_user("nina", groups=["contractors"])
    yield running
    running.stop()


def _sso_sign_in(page) -> None:
    page.goto("/accounts/login/")
    page.click(f"text=Sign in with {PROVIDER_NAME}")


def _roles(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_oidc_sign_in__release_team_member__lands_signed_in_as_release_manager(new_page, provider):
    # Given rita is signed in at the provider, in release-team
    provider.sign_in_as("rita")
    page = new_page()

    # When she chooses single sign-on on the panel's sign-in page
    _sso_sign_in(page)

    # Then she went through the provider and is back, signed in as a release manager
    page.wait_for_url("**/upgrades/")
    assert "rita · release manager" in page.inner_text(".who")
    rita = User.objects.get(username="rita")
    assert _roles("rita") == {RELEASE_MANAGERS, STAKEHOLDERS}
    assert not rita.is_superuser and not rita.has_usable_password()
    assert rita.email == "rita@corp.example"
    # ...through a code exchange with PKCE and the userinfo endpoint, for real
    (token_request,) = provider.seen("/token")
    assert token_request["grant_type"] == ["authorization_code"]
    assert token_request["code_verifier"]
    assert len(provider.seen("/userinfo")) == 1


def test_oidc_sign_in__ops_admins_member__signed_in_as_administrator_never_superuser(
    new_page, provider
):
    provider.sign_in_as("otto")
    page = new_page()

    _sso_sign_in(page)

    # (where an administrator lands first is the set-up's business: any signed-in page)
    page.wait_for_selector(".who")
    otto = User.objects.get(username="otto")
    assert _roles("otto") == {ADMINISTRATORS}
    assert not otto.is_superuser and not otto.is_staff
    assert "otto · administrator" in page.inner_text(".who")


def test_oidc_sign_in__no_mapped_group__refused_with_whom_to_ask(new_page, provider):
    provider.sign_in_as("nina")
    page = new_page()

    _sso_sign_in(page)

    page.wait_for_url("**/oidc/callback/**")
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    assert "You have no access to Mycelia Ops yet" in text
    assert f"Ask {CONTACT}" in text
    assert "nina@corp.example" in text
    assert not User.objects.filter(username="nina").exists()
    # And she is not signed in
    page.goto("/upgrades/")
    assert "/accounts/login/" in page.url


def test_oidc_sign_in__groups_changed_at_provider__roles_follow_at_next_sign_in(new_page, provider):
    # Given rita signed in once as a release manager and signed out
    provider.sign_in_as("rita")
    page = new_page()
    _sso_sign_in(page)
    page.wait_for_url("**/upgrades/")
    assert RELEASE_MANAGERS in _roles("rita")
    page.click("form[action='/accounts/logout/'] button")
    page.wait_for_url("**/accounts/login/")

    # When the provider moves her out of release-team, and she signs in again
    provider.users["rita"].groups = ["everyone"]
    provider.sign_in_as("rita")
    _sso_sign_in(page)
    page.wait_for_url("**/upgrades/")

    # Then she is a stakeholder only, in the same account
    assert _roles("rita") == {STAKEHOLDERS}
    assert User.objects.filter(email="rita@corp.example").count() == 1
    assert "rita · stakeholder" in page.inner_text(".who")

    # When she is removed from every mapped group, the next sign-in is refused and strips roles
    page.click("form[action='/accounts/logout/'] button")
    page.wait_for_url("**/accounts/login/")
    provider.users["rita"].groups = []
    provider.sign_in_as("rita")
    _sso_sign_in(page)
    page.wait_for_url("**/oidc/callback/**")
    assert "You have no access to Mycelia Ops yet" in page.inner_text("body")
    assert _roles("rita") == set()


def test_oidc_sign_out__signed_in_through_provider__ends_the_provider_session(
    new_page, provider, live_server
):
    provider.sign_in_as("rita")
    page = new_page()
    _sso_sign_in(page)
    page.wait_for_url("**/upgrades/")

    # When rita signs out
    page.click("form[action='/accounts/logout/'] button")

    # Then the browser went to the provider's end_session endpoint with her ID token as the hint,
    # and the provider sent it back to the panel's sign-in page
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    (ended,) = provider.end_sessions
    assert ended["id_token_claims"]["sub"] == provider.users["rita"].sub
    assert ended["redirect_uri"] == f"{live_server.url}/accounts/login/"
    assert provider.signed_in is None
    # And the panel's session is gone too
    page.goto("/upgrades/")
    assert "/accounts/login/" in page.url


@pytest.mark.parametrize("fault", ["tampered", "expired"])
def test_oidc_sign_in__bad_id_token__refused_and_not_signed_in(new_page, provider, fault):
    # Given a provider (or someone on the way) that sends a token that must not be trusted
    provider.sign_in_as("otto")
    provider.id_token_fault = fault
    page = new_page()

    _sso_sign_in(page)

    page.wait_for_url("**/oidc/callback/**")
    body = page.inner_text("body")
    assert "Sign-in failed" in body
    assert f"The answer from {PROVIDER_NAME} could not be verified" in body
    assert not User.objects.filter(username="otto").exists()
    page.goto("/upgrades/")
    assert "/accounts/login/" in page.url


def test_local_sign_in__oidc_on__superuser_breaks_glass_others_refused(new_page, provider, manager):
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    page = new_page()

    # Given the sign-in page offers single sign-on first, the password form folded below it
    page.goto("/accounts/login/")
    assert page.locator("#sign-in-sso").is_visible()
    assert not page.locator("input[name=password]").is_visible()

    # When a release manager with a local password tries it
    page.click("text=Local superuser sign-in")
    page.fill("input[name=username]", manager.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/accounts/login/'] button[type=submit]")

    # Then the page says to use single sign-on, and nobody is signed in
    assert f"Sign in with {PROVIDER_NAME} instead" in page.inner_text("[role=alert]")
    assert "/accounts/login/" in page.url

    # When the local superuser signs in with the password, the provider is not asked at all
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/accounts/login/'] button[type=submit]")
    page.wait_for_selector(".who")
    assert page.inner_text(".who").startswith("root")
    assert provider.requests == []


def test_session_renewal__due_while_upgrade_page_polls__banner_typed_text_kept_renews_on_click(
    new_page, provider, make_upgrade, manager
):
    # Given rita, signed in through the provider, on an upgrade page whose runs panel polls
    upgrade = drive(make_upgrade("minor", title="Mycelia 1.5.0"), manager, to="in_progress")
    CheckRun.objects.create(
        upgrade=upgrade, kind=RunKind.CHECK, action="http_check", title="Health check",
        status=RunStatus.QUEUED,
    )  # fmt: skip
    provider.sign_in_as("rita")
    page = new_page()
    _sso_sign_in(page)
    page.wait_for_url("**/upgrades/")
    page.goto(f"/upgrades/{upgrade.pk}/")
    assert page.locator("#runs[hx-trigger]").count() == 1
    # ...typing a reason she has not sent yet
    reason = page.locator("input[name=reason]:visible").first
    reason.fill("half typed, not sent")
    authorized = len(provider.seen("/authorize"))

    # When her sign-in falls due for renewal (the clock of the session, moved) and a poll comes
    (cookie,) = [c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME]
    session = import_module(settings.SESSION_ENGINE).SessionStore(cookie["value"])
    session["oidc_id_token_expiration"] = 0
    session.save()

    # Then the banner says so, with the way to renew; the page stays as it was, typing and all
    banner = page.locator("#renew-sign-in")
    expect(banner).to_contain_text(
        "Your sign-in needs renewing to keep this page live.", timeout=15_000
    )
    expect(banner).to_contain_text("Live updates are paused")
    assert reason.input_value() == "half typed, not sent"
    assert len(provider.seen("/authorize")) == authorized  # nothing went to the provider

    # When she chooses to renew
    with page.expect_navigation(url=f"**/upgrades/{upgrade.pk}/"):
        banner.get_by_role("link", name="Renew sign-in").click()

    # Then the page went through the provider and is back, renewed, still signed in as her
    assert len(provider.seen("/authorize")) == authorized + 1
    expect(page.locator(".who")).to_contain_text("rita · release manager")
    expect(banner).to_be_empty()
    session = import_module(settings.SESSION_ENGINE).SessionStore(cookie["value"])
    assert session["oidc_id_token_expiration"] > time.time()
