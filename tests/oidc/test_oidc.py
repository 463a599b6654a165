"""Sign-in with OpenID Connect at the HTTP level: Django's test client plays the browser, the
provider is the real one of tests/oidc/provider.py over loopback HTTP (the panel exchanges the
code and checks the token against it for real). The browser walk-through is
tests/browser/test_oidc.py; these are the edges."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import User

from mycelia_ops.oidc import provider_metadata_forget, role_groups_from_claims
from mycelia_ops.roles import RELEASE_MANAGERS, STAKEHOLDERS
from tests.conftest import PASSWORD
from tests.oidc.helpers import CONTACT, PROVIDER_NAME, use_provider

PANEL = "http://testserver"


@pytest.fixture
def oidc(settings, provider, db):
    use_provider(settings, provider, panel_url=PANEL)
    provider.add_user("rita", groups=["release-team"])
    return provider


def _through_provider(client, *, next_url: str = ""):
    """Start at the panel, let the provider answer, and bring its answer back to the panel."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start.content[:300]
    answer = httpx.get(start["Location"], follow_redirects=False)
    assert answer.status_code == 302, answer.text
    return client.get(answer.headers["location"])


def _signed_in_as(client) -> str | None:
    response = client.get("/upgrades/")
    if response.status_code == 302:
        return None
    return response.wsgi_request.user.get_username()


def test_oidc_off__sign_in_page__local_form_only_and_no_oidc_doors(client, db):
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page
    assert 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


def test_oidc_sign_in__release_team__signed_in_and_sent_where_they_were_going(client, oidc):
    oidc.sign_in_as("rita")

    response = _through_provider(client, next_url="/flags/")

    assert response.status_code == 302 and response["Location"] == "/flags/"
    assert _signed_in_as(client) == "rita"
    rita = User.objects.get(username="rita")
    assert set(rita.groups.values_list("name", flat=True)) == {RELEASE_MANAGERS}
    # The ID token stays in the session as the hint for signing out at the provider
    assert client.session["oidc_id_token"].count(".") == 2


@pytest.mark.parametrize("fault", ["wrong_audience", "wrong_issuer", "tampered", "expired"])
def test_oidc_sign_in__untrustworthy_id_token__refused_400(client, oidc, fault):
    oidc.sign_in_as("rita")
    oidc.id_token_fault = fault

    response = _through_provider(client)

    assert response.status_code == 400
    assert f"The answer from {PROVIDER_NAME} could not be verified" in response.content.decode()
    assert _signed_in_as(client) is None
    assert not User.objects.filter(username="rita").exists()


def test_oidc_sign_in__no_mapped_group__refused_403_naming_the_contact(client, oidc):
    oidc.add_user("nina", groups=["contractors"])
    oidc.sign_in_as("nina")

    response = _through_provider(client)

    page = response.content.decode()
    assert response.status_code == 403
    assert f"Ask <strong>{CONTACT}</strong>" in page
    assert "administrator, release manager, stakeholder" in page
    assert _signed_in_as(client) is None


def test_oidc_sign_in__local_account_with_that_email__refused_until_its_password_is_off(
    client, oidc, manager
):
    # Given alice has a local account with a password, and the provider knows her by that e-mail
    oidc.add_user("alice.m", groups=["everyone"], email=manager.email)
    oidc.sign_in_as("alice.m")

    # When she signs in through the provider, it does not take over the password account
    response = _through_provider(client)
    assert response.status_code == 403
    assert "signs in with a password" in response.content.decode()
    assert _signed_in_as(client) is None

    # When an administrator switches that account's password off, it is hers through the provider
    manager.set_unusable_password()
    manager.save()
    response = _through_provider(client)
    assert response.status_code == 302
    assert _signed_in_as(client) == "alice"
    assert set(manager.groups.values_list("name", flat=True)) == {STAKEHOLDERS}
    assert User.objects.filter(email__iexact=manager.email).count() == 1


def test_oidc_sign_in__superuser_email__never_signed_in_through_the_provider(client, oidc):
    root = User.objects.create_superuser("root", "root@corp.example", None)
    assert not root.has_usable_password()
    oidc.add_user("root", groups=["ops-admins"], email="root@corp.example")
    oidc.sign_in_as("root")

    response = _through_provider(client)

    assert response.status_code == 403
    assert _signed_in_as(client) is None


def test_oidc_sign_in__provider_says_no__403_with_its_reason(client, oidc):
    oidc.sign_in_as(None)  # nobody signed in at the provider: it answers access_denied

    response = _through_provider(client)

    assert response.status_code == 403
    assert f"{PROVIDER_NAME} did not sign you in" in response.content.decode()


def test_oidc_callback__state_not_started_here__400_start_again(client, oidc):
    response = client.get("/oidc/callback/?code=forged&state=forged")

    assert response.status_code == 400
    assert "Start again" in response.content.decode()
    assert oidc.seen("/token") == []


def test_oidc_start__provider_unreachable__502_says_so(client, settings, db):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings.OIDC_ISSUER = f"http://127.0.0.1:{closed_port}/idp"
    settings.OIDC_PROVIDER_NAME = PROVIDER_NAME
    settings.OIDC_TIMEOUT = 2
    provider_metadata_forget()

    response = client.get("/oidc/authenticate/")

    assert response.status_code == 502
    assert f"{PROVIDER_NAME} cannot be reached just now" in response.content.decode()


def test_oidc_token_endpoint__basic_auth_chosen__secret_not_in_the_body(client, oidc, settings):
    settings.OIDC_TOKEN_USE_BASIC_AUTH = True
    oidc.sign_in_as("rita")

    assert _through_provider(client).status_code == 302

    (token_request,) = oidc.seen("/token")
    assert "client_secret" not in token_request
    assert _signed_in_as(client) == "rita"


def test_sign_out__provider_without_end_session__signed_out_here_only(client, oidc):
    oidc.advertise_end_session = False
    oidc.sign_in_as("rita")
    _through_provider(client)

    response = client.post("/accounts/logout/")

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert _signed_in_as(client) is None
    assert oidc.end_sessions == []


def test_sign_out__local_superuser__no_provider_visit(client, oidc):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)

    response = client.post("/accounts/logout/")

    assert response["Location"] == "/accounts/login/"
    assert oidc.requests == []


def test_role_groups_from_claims__string_dotted_and_unknown_groups(settings):
    settings.OIDC_ROLE_GROUPS = {"release_managers": ["release-team", "sre"]}
    settings.OIDC_GROUPS_CLAIM = "realm_access.roles"
    assert role_groups_from_claims({"realm_access": {"roles": ["sre"]}}) == {RELEASE_MANAGERS}
    assert role_groups_from_claims({"realm_access": {"roles": ["other"]}}) == set()
    settings.OIDC_GROUPS_CLAIM = "https://corp.example/groups"  # a namespaced claim, dots and all
    assert role_groups_from_claims({"https://corp.example/groups": "release-team"}) == {
        RELEASE_MANAGERS
    }
    assert role_groups_from_claims({}) == set()


# -- settings.py itself, read from the environment in a fresh process -------------------------
_SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'backends': s.AUTHENTICATION_BACKENDS, 'issuer': s.OIDC_ISSUER,"
    "'client_id': s.OIDC_RP_CLIENT_ID, 'secret': s.OIDC_RP_CLIENT_SECRET,"
    "'scopes': s.OIDC_RP_SCOPES, 'claim': s.OIDC_GROUPS_CLAIM, 'roles': s.OIDC_ROLE_GROUPS,"
    "'contact': s.OIDC_ACCESS_CONTACT, 'name': s.OIDC_PROVIDER_NAME,"
    "'form_action': s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']}))"
)


def _settings_from(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    base.update(
        DJANGO_SETTINGS_MODULE="mycelia_ops.settings", MYCELIA_DATA_DIR=str(tmp_path), **env
    )
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {_SHOW}"],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_settings__no_issuer__oidc_off_and_nothing_changed(tmp_path):
    result = _settings_from({}, tmp_path)
    shown = json.loads(result.stdout)
    assert shown["issuer"] == ""
    assert "mycelia_ops.oidc.OIDCBackend" not in shown["backends"]
    assert shown["form_action"] == ["'self'"]


def test_settings__issuer_and_secret_file__backend_roles_and_csp(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    result = _settings_from(
        {
            "OIDC_ISSUER": "https://login.corp.example/realms/ops/",
            "OIDC_CLIENT_ID": "mycelia-ops",
            "OIDC_CLIENT_SECRET_FILE": str(secret),
            "OIDC_ROLE_GROUPS": "administrators=ops-admins;release_managers=release-team,sre;"
            "stakeholders=everyone",
        },
        tmp_path,
    )
    shown = json.loads(result.stdout)
    assert shown["backends"][-1] == "mycelia_ops.oidc.OIDCBackend"
    assert shown["issuer"] == "https://login.corp.example/realms/ops"
    assert shown["secret"] == "s3cret"
    assert shown["scopes"] == "openid email profile groups"
    assert shown["claim"] == "groups"
    assert shown["roles"] == {
        "administrators": ["ops-admins"],
        "release_managers": ["release-team", "sre"],
        "stakeholders": ["everyone"],
    }
    assert shown["contact"] == "your Mycelia Ops administrator"
    assert shown["name"] == "login.corp.example"
    assert shown["form_action"] == ["'self'", "https://login.corp.example"]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"OIDC_ROLE_GROUPS": "admins=ops"}, "is not ROLE=GROUP"),
        ({"OIDC_ROLE_GROUPS": "stakeholders="}, "is not ROLE=GROUP"),
        ({"OIDC_ROLE_GROUPS": ""}, "OIDC_ROLE_GROUPS must map at least one role"),
        ({"OIDC_CLIENT_SECRET": ""}, "OIDC_CLIENT_ID and OIDC_CLIENT_SECRET"),
        ({"OIDC_ISSUER": "login.corp.example"}, "OIDC_ISSUER must be a URL"),
    ],
)
def test_settings__oidc_misconfigured__fails_at_start_saying_what(tmp_path, env, says):
    good = {
        "OIDC_ISSUER": "https://login.corp.example",
        "OIDC_CLIENT_ID": "mycelia-ops",
        "OIDC_CLIENT_SECRET": "s3cret",
        "OIDC_ROLE_GROUPS": "stakeholders=everyone",
    }
    result = _settings_from({**good, **env}, tmp_path)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and says in result.stderr


def test_oidc_sign_in__many_refused_from_one_address__others_still_sign_in(client, oidc, settings):
    # Given the sign-in lockout (django-axes) counts failed password sign-ins per address
    assert settings.AXES_ENABLED and settings.AXES_FAILURE_LIMIT == 5
    oidc.add_user("nina", groups=["contractors"])
    oidc.sign_in_as("nina")
    # When more people than the limit are refused through the provider from one office address
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        assert _through_provider(client).status_code == 403
    # Then someone with a role still signs in from there: the provider's refusals are no
    # password guesses (the provider guards its own sign-in)
    oidc.sign_in_as("rita")
    assert _through_provider(client).status_code == 302
    assert _signed_in_as(client) == "rita"
