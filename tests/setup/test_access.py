"""Every set-up page and form, tried by an administrator, a release manager, a stakeholder and an
outsider: administrators only (403 for the others, the sign-in page for nobody)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.conftest import PASSWORD
from upgrades.models import (
    CommonIssue,
    EnvironmentOperation,
    HookTest,
    Invitation,
    PlaybookTemplate,
)
from upgrades.services import people, setup

pytestmark = pytest.mark.django_db


@pytest.fixture
def things(administrator, playbook, staging):
    hook = setup.hook_save(environment=staging, hook=None, by=administrator,
                           data={"operation": "diagnose", "mode": "command", "argv": ["true"]})  # fmt: skip
    test = HookTest.objects.create(hook=hook, requested_by=administrator)
    template = PlaybookTemplate.objects.first()
    phase = template.phases.first()
    step = phase.steps.first()
    issue = CommonIssue.objects.first() or setup.common_issue_save(
        issue=None, by=administrator,
        data={"title": "T", "issue": "I", "solution": "S", "applies_to": ["deploy"]},
    )  # fmt: skip
    invitation, _ = people.invitation_create(email="new@example.com", role="stakeholder",
                                             by=administrator, link_template="http://x/TOKEN/")  # fmt: skip
    account = people.service_account_create(username="ci", role="stakeholder", description="",
                                            by=administrator)  # fmt: skip
    token, _ = people.service_token_create(account=account, name="t", scope="user",
                                           environment_key="", by=administrator)  # fmt: skip
    target = User.objects.create_user("target", password=PASSWORD)
    return {
        "environment_id": staging.pk, "hook_id": hook.pk, "test_id": test.pk,
        "template_id": template.pk, "phase_id": phase.pk, "step_id": step.pk,
        "issue_id": issue.pk, "invitation_id": invitation.pk, "account_id": account.pk,
        "token_id": token.pk, "user_id": target.pk,
    }  # fmt: skip


PAGES = [
    ("setup:start", []), ("setup:history", []), ("setup:environment_create", []),
    ("setup:environment", ["environment_id"]), ("setup:hook_test_detail", ["test_id"]),
    ("setup:templates", []), ("setup:template", ["template_id"]),
    ("setup:common_issues", []), ("setup:people", []),
]  # fmt: skip
FORMS = [
    ("setup:environment_create", []), ("setup:environment", ["environment_id"]),
    ("setup:environment_delete", ["environment_id"]), ("setup:hook_create", ["environment_id"]),
    ("setup:slo", ["environment_id"]), ("setup:hook", ["hook_id"]),
    ("setup:hook_delete", ["hook_id"]), ("setup:hook_test", ["hook_id"]),
    ("setup:playbook_load", []), ("setup:template", ["template_id"]),
    ("setup:phase_create", ["template_id"]),
    ("setup:phase", ["phase_id"]), ("setup:step_create", ["phase_id"]), ("setup:step", ["step_id"]),
    ("setup:common_issues", []), ("setup:common_issue", ["issue_id"]), ("setup:invite", []),
    ("setup:invitation_revoke", ["invitation_id"]), ("setup:person_roles", ["user_id"]),
    ("setup:person_active", ["user_id"]), ("setup:service_account_create", []),
    ("setup:token_create", ["account_id"]), ("setup:token_revoke", ["token_id"]),
]  # fmt: skip


def _url(name, keys, things):
    return reverse(name, args=[things[key] for key in keys])


@pytest.mark.parametrize(("name", "keys"), PAGES)
def test_setup_page__administrator__200_and_nothing_inline(admin_client, things, name, keys):
    response = admin_client.get(_url(name, keys, things))
    assert response.status_code == 200
    html = response.content.decode()
    # CSP: no inline script or style on any set-up page
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html


@pytest.mark.parametrize("who", ["manager", "stakeholder", "outsider"])
@pytest.mark.parametrize(("name", "keys"), PAGES)
def test_setup_page__not_an_administrator__403(client, things, request, who, name, keys):
    client.force_login(request.getfixturevalue(who))
    response = client.get(_url(name, keys, things))
    assert response.status_code == 403
    assert "Only administrators" in response.content.decode()


@pytest.mark.parametrize("who", ["manager", "stakeholder", "outsider"])
@pytest.mark.parametrize(("name", "keys"), FORMS)
def test_setup_form__not_an_administrator__403_and_nothing_changes(
    client, things, request, who, name, keys
):
    client.force_login(request.getfixturevalue(who))
    url = _url(name, keys, things)
    assert client.post(url, {"remove": "yes", "confirm": "yes"}).status_code == 403
    # nothing changed
    assert EnvironmentOperation.objects.filter(pk=things["hook_id"]).exists()
    assert Invitation.objects.get(pk=things["invitation_id"]).revoked_at is None


@pytest.mark.parametrize(("name", "keys"), PAGES)
def test_setup_page__anonymous__sent_to_sign_in(client, things, name, keys):
    response = client.get(_url(name, keys, things))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_superuser__is_an_administrator(client, things):
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client.force_login(root)
    assert client.get(reverse("setup:start")).status_code == 200


def test_nav__administrator__set_up_link_and_no_django_admin(admin_client, things):
    html = admin_client.get(reverse("upgrades:list")).content.decode()
    assert f'href="{reverse("setup:start")}"' in html
    assert f'href="{reverse("admin:index")}"' not in html


def test_nav__release_manager__neither_set_up_nor_admin(manager_client, things):
    html = manager_client.get(reverse("upgrades:list")).content.decode()
    assert reverse("setup:start") not in html and reverse("admin:index") not in html


def test_django_admin__staff_who_are_not_superusers__refused(client, db):
    # Given: a staff member (as the demo manager once was) and a superuser
    staff = User.objects.create_user("staffer", password=PASSWORD, is_staff=True)
    root = User.objects.create_superuser("root", "root@example.com", PASSWORD)
    # Then: being staff no longer opens the Django admin; being a superuser does
    client.force_login(staff)
    assert client.get(reverse("admin:index")).status_code == 302  # to the admin's sign-in
    client.force_login(root)
    assert client.get(reverse("admin:index")).status_code == 200
