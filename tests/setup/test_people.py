"""People on the set-up pages: invitations by email whose link expires, roles, deactivation, and
service accounts whose API tokens a pipeline uses (scoped, last use shown, revocable)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from flags.models import ApiToken
from mycelia_ops.roles import is_administrator, is_release_manager, is_viewer
from tests.conftest import PASSWORD
from upgrades.models import Invitation, SetupEvent

pytestmark = pytest.mark.django_db

MONDAY_9AM = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """The time the product reads (django.utils.timezone.now), set by the test."""
    now = [MONDAY_9AM]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now


def _invite(admin_client, mailoutbox, email="rita@example.com", role="release_manager") -> str:
    response = admin_client.post(reverse("setup:invite"), {"email": email, "role": role})
    assert response.status_code == 302, response.content.decode()
    link = re.search(r"https?://\S+/setup/join/\S+/", mailoutbox[-1].body).group(0)
    return link.split("testserver", 1)[1]


def test_invitation__signed_up_through_the_link__a_release_manager_who_signs_in(
    admin_client, client, mailoutbox, clock, staging
):
    # Given: an administrator invites rita as a release manager
    path = _invite(admin_client, mailoutbox)
    assert mailoutbox[-1].to == ["rita@example.com"]
    assert "release manager" in mailoutbox[-1].body
    admin_client.logout()

    # When: rita opens the link two days later and chooses a username and password
    clock[0] += timedelta(hours=48)
    page = client.get(path)
    assert page.status_code == 200 and "rita@example.com" in page.content.decode()
    response = client.post(path, {"username": "rita", "password": "a-long-new-pass-42",
                                  "password_again": "a-long-new-pass-42"})  # fmt: skip

    # Then: her account exists with the role, and she signs in to the upgrade list
    assert response.status_code == 302 and response.url == reverse("login")
    rita = User.objects.get(username="rita")
    assert rita.email == "rita@example.com" and is_release_manager(rita)
    assert not is_administrator(rita) and not rita.is_staff
    signed_in = client.post(
        reverse("login"), {"username": "rita", "password": "a-long-new-pass-42"}
    )
    assert signed_in.status_code == 302
    assert client.get(reverse("upgrades:list")).status_code == 200

    # And: the link works once
    client.logout()
    again = client.get(path)
    assert again.status_code == 410 and "has been used" in again.content.decode()
    assert SetupEvent.objects.filter(verb="signed up", label="rita").exists()


def test_invitation__link_expired__refused_with_whom_to_ask(
    admin_client, client, mailoutbox, clock
):
    path = _invite(admin_client, mailoutbox)
    admin_client.logout()
    # When: the invitee comes back after 72 hours and a minute
    clock[0] += timedelta(hours=72, minutes=1)
    page = client.get(path)
    posted = client.post(path, {"username": "late", "password": "a-long-new-pass-42",
                                "password_again": "a-long-new-pass-42"})  # fmt: skip
    # Then: refused (410), saying when it expired and whom to ask; no account is made
    assert page.status_code == 410 and posted.status_code == 410
    html = page.content.decode()
    assert "expired" in html and "Ask erin" in html
    assert not User.objects.filter(username="late").exists()


def test_invitation__unknown_or_called_off_link__refused(admin_client, client, mailoutbox):
    path = _invite(admin_client, mailoutbox)
    invitation = Invitation.objects.get()
    admin_client.post(reverse("setup:invitation_revoke", args=[invitation.pk]))
    assert client.get(path).status_code == 410
    assert client.get(reverse("setup:join", args=["not-a-token"])).status_code == 404


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"username": "bad name!", "password": "a-long-new-pass-42"}, "username", "letters"),
        ({"username": "erin", "password": "a-long-new-pass-42"}, "username", "taken"),
        ({"username": "newbie", "password": "123"}, "password", "too short"),
    ],
)
def test_sign_up__bad_input__400_naming_the_problem(
    admin_client, client, mailoutbox, data, field, words
):
    path = _invite(admin_client, mailoutbox)
    response = client.post(path, {**data, "password_again": data["password"]})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert Invitation.objects.get().accepted_at is None


def test_invite__bad_email_or_existing_account__400(admin_client, manager, mailoutbox):
    bad = admin_client.post(reverse("setup:invite"), {"email": "nope", "role": "stakeholder"})
    taken = admin_client.post(reverse("setup:invite"),
                              {"email": manager.email, "role": "stakeholder"})  # fmt: skip
    assert bad.status_code == 400 and "valid email" in bad.content.decode()
    assert taken.status_code == 400 and "has an account already" in taken.content.decode()
    assert not mailoutbox


def test_roles__assigned_on_the_page__take_effect_and_are_on_the_timeline(
    admin_client, stakeholder, administrator
):
    url = reverse("setup:person_roles", args=[stakeholder.pk])
    prefix = f"roles-{stakeholder.pk}-roles"
    response = admin_client.post(url, {prefix: ["release_manager", "administrator"]})
    assert response.status_code == 302
    stakeholder = User.objects.get(pk=stakeholder.pk)
    assert is_release_manager(stakeholder) and is_administrator(stakeholder)
    event = SetupEvent.objects.get(subject="person", object_id=stakeholder.pk)
    assert (event.from_value, event.to_value) == ("Stakeholder", "Administrator, Release manager")

    # Taking every role away leaves an account that sees nothing
    admin_client.post(url, {})
    stakeholder = User.objects.get(pk=stakeholder.pk)
    assert not is_viewer(stakeholder)


def test_roles__last_administrator_steps_down__409(admin_client, administrator):
    url = reverse("setup:person_roles", args=[administrator.pk])
    response = admin_client.post(url, {f"roles-{administrator.pk}-roles": ["release_manager"]})
    assert response.status_code == 409
    assert "Someone must stay an administrator" in response.content.decode()
    assert is_administrator(User.objects.get(pk=administrator.pk))


def test_deactivate__person_cannot_sign_in_and_tokens_stop__reactivate_restores(
    admin_client, client, manager
):
    from flags.services import api_token_create

    _, plaintext = api_token_create(user=manager, name="laptop", scope="user")
    url = reverse("setup:person_active", args=[manager.pk])
    assert admin_client.post(url, {"active": "no"}).status_code == 302

    assert not _signs_in(client, manager.username)
    api = client.get("/api/environments", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.status_code == 401
    assert SetupEvent.objects.filter(verb="deactivated", object_id=manager.pk).exists()

    admin_client.post(url, {"active": "yes"})
    assert _signs_in(client, manager.username)


def test_deactivate__yourself__409(admin_client, administrator):
    response = admin_client.post(reverse("setup:person_active", args=[administrator.pk]),
                                 {"active": "no"})  # fmt: skip
    assert response.status_code == 409 and "yourself" in response.content.decode()


def test_service_account__token_used_by_a_pipeline__last_use_shown__revoked_401(
    admin_client, client, staging, clock
):
    # Given: a service account for the release pipeline, as a stakeholder (reads only)
    response = admin_client.post(reverse("setup:service_account_create"), {
        "username": "release-pipeline", "role": "stakeholder", "description": "CI",
    })  # fmt: skip
    assert response.status_code == 302
    account = User.objects.get(username="release-pipeline").service_account
    assert not account.user.has_usable_password()

    # When: a token is made: its plaintext is shown once, on that answer only
    response = admin_client.post(reverse("setup:token_create", args=[account.pk]),
                                 {f"token-{account.pk}-name": "deploys",
                                  f"token-{account.pk}-scope": "user"})  # fmt: skip
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    plaintext = re.search(r'data-role="plaintext">([^<]+)<', response.content.decode()).group(1)
    assert plaintext not in admin_client.get(reverse("setup:people")).content.decode()
    token = ApiToken.objects.get(user=account.user)
    assert "never" in _token_row(admin_client, token)

    # Then: the pipeline reads the API with it, and the page shows when it was last used
    clock[0] += timedelta(minutes=5)
    api = client.get("/api/environments", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.status_code == 200 and api.json()[0]["key"] == "staging"
    token.refresh_from_db()
    assert token.last_used_at == clock[0]
    assert "never" not in _token_row(admin_client, token)

    # And: a stakeholder's token may not act
    act = client.post("/api/upgrades", {}, content_type="application/json",
                      HTTP_AUTHORIZATION=f"Bearer {plaintext}")  # fmt: skip
    assert act.status_code in (400, 403)

    # When: it is revoked, the pipeline gets 401
    admin_client.post(reverse("setup:token_revoke", args=[token.pk]))
    api = client.get("/api/environments", HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.status_code == 401
    assert "Revoked" in _token_row(admin_client, token)
    verbs = list(SetupEvent.objects.filter(subject="token").values_list("verb", flat=True))
    assert sorted(verbs) == ["created", "revoked"]
    assert not SetupEvent.objects.filter(label__contains=plaintext).exists()


def test_service_account__evaluation_token_without_environment__400(admin_client, db):
    admin_client.post(reverse("setup:service_account_create"),
                      {"username": "edge", "role": "stakeholder"})  # fmt: skip
    account = User.objects.get(username="edge").service_account
    response = admin_client.post(reverse("setup:token_create", args=[account.pk]),
                                 {f"token-{account.pk}-name": "ofrep",
                                  f"token-{account.pk}-scope": "evaluation"})  # fmt: skip
    assert response.status_code == 400
    assert "flag environment an evaluation token reads" in response.content.decode()


def test_service_account__cannot_be_made_an_administrator(admin_client, db):
    admin_client.post(reverse("setup:service_account_create"),
                      {"username": "bot", "role": "release_manager"})  # fmt: skip
    bot = User.objects.get(username="bot")
    response = admin_client.post(reverse("setup:person_roles", args=[bot.pk]),
                                 {f"roles-{bot.pk}-roles": ["administrator"]})  # fmt: skip
    assert response.status_code == 400 and not is_administrator(User.objects.get(pk=bot.pk))


def _token_row(admin_client, token) -> str:
    html = admin_client.get(reverse("setup:people")).content.decode()
    return re.search(rf'<tr id="token-{token.pk}">(.*?)</tr>', html, re.S).group(1)


def _signs_in(client, username: str) -> bool:
    client = Client()  # not the administrator's session
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    return response.status_code == 302
