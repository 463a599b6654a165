"""A session that came from the provider is renewed with it (mycelia_ops.oidc.SessionRenewal):
once its ID token is older than OIDC_RENEW_SECONDS, the next page goes through the provider
again without a form (prompt=none). Roles follow the provider's groups then, and someone the
provider no longer signs in, or who lost every role, is signed out. The provider is the real
one of tests/oidc/provider.py; the clock is the session's renewal time, set in the past."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.auth.models import User

from mycelia_ops.oidc import RENEWAL_EVENT
from mycelia_ops.roles import RELEASE_MANAGERS, STAKEHOLDERS
from tests.oidc.helpers import CONTACT, PROVIDER_NAME, use_provider

PANEL = "http://testserver"


@pytest.fixture
def oidc(settings, provider, db):
    use_provider(settings, provider, panel_url=PANEL)
    provider.add_user("rita", groups=["release-team"])
    return provider


def _signed_in(client, oidc) -> None:
    oidc.sign_in_as("rita")
    start = client.get("/oidc/authenticate/")
    answer = httpx.get(start["Location"], follow_redirects=False)
    assert client.get(answer.headers["location"]).status_code == 302
    assert client.session["oidc_id_token_expiration"] > 0


def _renewal_due(client) -> None:
    """As if OIDC_RENEW_SECONDS had passed since the sign-in."""
    session = client.session
    session["oidc_id_token_expiration"] = 0
    session.save()


def _roles(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def _renew(client, path: str = "/upgrades/"):
    """Open a page with the renewal due: the panel sends the browser to the provider without
    a form, and the provider's answer comes back to the callback."""
    response = client.get(path)
    assert response.status_code == 302, response.content[:300]
    asked = urlsplit(response["Location"])
    assert parse_qs(asked.query)["prompt"] == ["none"]
    answer = httpx.get(response["Location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return client.get(answer.headers["location"])


def test_session_renewal__groups_changed_at_provider__roles_follow_same_session(client, oidc):
    # Given rita signed in as a release manager
    _signed_in(client, oidc)
    assert _roles("rita") == {RELEASE_MANAGERS}
    session_key = client.session.session_key

    # When the provider moves her to "everyone", and her session is due for renewal
    oidc.users["rita"].groups = ["everyone"]
    _renewal_due(client)
    back = _renew(client, "/flags/")

    # Then she is back where she was going, a stakeholder now, still signed in, renewed
    assert back.status_code == 302 and back["Location"] == "/flags/"
    assert _roles("rita") == {STAKEHOLDERS}
    assert client.get("/flags/").wsgi_request.user.get_username() == "rita"
    assert client.session.session_key == session_key
    assert client.session["oidc_id_token_expiration"] > 0


def test_session_renewal__switched_off_at_provider__signed_out_and_asked_to_sign_in(client, oidc):
    _signed_in(client, oidc)

    # When the provider no longer signs her in (switched off, or signed out there)
    oidc.sign_in_as(None)
    _renewal_due(client)
    back = _renew(client)

    # Then the panel signs her out and sends her to sign in again, saying why
    assert back.status_code == 302 and back["Location"] == "/accounts/login/"
    page = client.get("/accounts/login/").content.decode()
    assert f"Your session ended: sign in with {PROVIDER_NAME} again." in page
    assert client.get("/upgrades/").status_code == 302  # to the sign-in page


def test_session_renewal__removed_from_every_group__refused_signed_out_roles_gone(client, oidc):
    _signed_in(client, oidc)

    oidc.users["rita"].groups = ["contractors"]
    _renewal_due(client)
    back = _renew(client)

    assert back.status_code == 403
    text = back.content.decode()
    assert "You have no access to Mycelia Ops yet" in text and CONTACT in text
    assert _roles("rita") == set()
    assert client.get("/upgrades/").status_code == 302


def test_session_renewal__htmx_poll__no_data_no_swap_no_reload_page_told_to_ask(
    client, oidc, make_upgrade
):
    # Given a renewal is due while the upgrade page polls its runs (the person may be typing)
    upgrade = make_upgrade()
    _signed_in(client, oidc)
    runs = f"/upgrades/{upgrade.pk}/runs/"
    assert 'id="runs"' in client.get(runs, headers={"HX-Request": "true"}).content.decode()
    _renewal_due(client)

    # When the poll comes in
    response = client.get(runs, headers={"HX-Request": "true"})

    # Then nothing of the view is sent and nothing on the page is swapped or reloaded (what was
    # typed stays); the page is told to offer the renewal, and no sign-in was started for it
    assert response.status_code == 204 and response.content == b""
    assert "HX-Refresh" not in response and "HX-Redirect" not in response
    assert json.loads(response["HX-Trigger"]) == {RENEWAL_EVENT: {}}
    assert not client.session.get("oidc_states")
    assert client.session["oidc_id_token_expiration"] == 0

    # And the page's own GET (the banner's link) still renews through the provider
    back = _renew(client, f"/upgrades/{upgrade.pk}/")
    assert back.status_code == 302 and back["Location"] == f"/upgrades/{upgrade.pk}/"
    assert 'id="runs"' in client.get(runs, headers={"HX-Request": "true"}).content.decode()


def test_session_renewal__htmx_form_post_while_due__sent_as_typed_not_held_back(
    client, oidc, make_upgrade
):
    # Given the banner asks rita to renew while she has a reason typed in an in-page form
    upgrade = make_upgrade()
    step = upgrade.steps.filter(phase__stage="pre").first()
    _signed_in(client, oidc)
    _renewal_due(client)

    # When she sends it first, as the banner suggests
    response = client.post(
        f"/upgrades/{upgrade.pk}/steps/{step.pk}/skip/",
        {"reason": "done by hand last night"},
        headers={"HX-Request": "true"},
    )

    # Then it is done (only pages and polls wait for the renewal, never what she sends)
    assert response.status_code == 200 and "HX-Trigger" not in response
    step.refresh_from_db()
    assert step.status == "skipped"


def test_session_renewal__not_due_or_local_session__no_detour(client, oidc, manager):
    _signed_in(client, oidc)
    assert client.get("/upgrades/").status_code == 200  # renewal not due yet

    # A password session (local superuser break-glass) never goes to the provider
    client.logout()
    client.force_login(manager, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session["oidc_id_token_expiration"] = 0
    session.save()
    assert client.get("/upgrades/").status_code == 200
