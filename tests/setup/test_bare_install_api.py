"""On a bare install (the migrations and a superuser, nothing else) the playbook's flag API and
OFREP answer as documented, with tokens made on the set-up pages; a missing environment is a
404 naming it, never a 500."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess

import httpx
import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from flags.models import FlagEnvironment
from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS
from upgrades.models import Environment
from upgrades.playbook import FLAG_API_ENABLE

pytestmark = pytest.mark.django_db


def _token(admin_client, account_role: str, scope: str, environment: str = "") -> str:
    name = f"pipeline-{scope}"
    admin_client.post(reverse("setup:service_account_create"),
                      {"username": name, "role": account_role})  # fmt: skip
    account = User.objects.get(username=name).service_account
    response = admin_client.post(reverse("setup:token_create", args=[account.pk]), {
        f"token-{account.pk}-name": scope, f"token-{account.pk}-scope": scope,
        f"token-{account.pk}-environment": environment,
    })  # fmt: skip
    return re.search(r'data-role="plaintext">([^<]+)<', response.content.decode()).group(1)


def test_bare_install__playbook_curl_and_ofrep__answer_as_documented(client):
    # Given: a bare install and its superuser, who makes a pipeline's tokens on the People page
    assert not Environment.objects.exists()
    root = User.objects.create_superuser("root", "root@example.com", "a-long-fresh-password-9")
    client.force_login(root)
    act = _token(client, "release_manager", "user")
    evaluate = _token(client, "stakeholder", "evaluation", environment="production")
    client.logout()
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {act}"}
    created = client.post("/api/feature-flags", {"name": "feature-name"},
                          content_type="application/json", **bearer)  # fmt: skip
    assert created.status_code == 201, created.content

    # When: the playbook's curl, with no environment named
    enabled = client.post("/api/feature-flags/enable", {"name": "feature-name"},
                          content_type="application/json", **bearer)  # fmt: skip

    # Then: the flag is on in the default environment, and OFREP says so
    assert enabled.status_code == 200, enabled.content
    assert enabled.json()["environment"] == "production"
    answer = client.post("/ofrep/v1/evaluate/flags/feature-name", {"context": {}},
                         content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {evaluate}")  # fmt: skip
    assert answer.status_code == 200 and answer.json()["value"] is True

    # And: an environment that does not exist is named in a 404, not a 500
    missing = client.post("/api/feature-flags/enable", {"name": "feature-name", "environment": "eu"},
                          content_type="application/json", **bearer)  # fmt: skip
    assert missing.status_code == 404 and "eu" in missing.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_bare_install__openfeature_sdk__evaluates_the_flag_the_playbooks_curl_enabled(
    client, live_server
):
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode

    if not shutil.which("curl"):
        if os.environ.get("CI"):
            pytest.fail("curl is missing: the playbook's command needs it (apt-get install curl)")
        pytest.skip("curl is not installed")

    # Given: a bare install (a transactional test starts from flushed tables when another ran
    # before it, so what the migrations make is put back; the test above checks they make it)
    for name in (ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS):
        Group.objects.get_or_create(name=name)
    FlagEnvironment.objects.get_or_create(key="production", defaults={"name": "Production"})
    assert not Environment.objects.exists()
    root = User.objects.create_superuser("root", "root@example.com", "a-long-fresh-password-9")
    client.force_login(root)
    act = _token(client, "release_manager", "user")
    evaluate = _token(client, "stakeholder", "evaluation", environment="production")

    # When: the pipeline creates a flag, then runs the playbook's own curl command (its text in
    # the playbook, pointed at this server, with the pipeline's token)
    created = httpx.post(f"{live_server.url}/api/feature-flags", json={"name": "feature-name"},
                         headers={"Authorization": f"Bearer {act}"}, timeout=10)  # fmt: skip
    assert created.status_code == 201, created.text
    argv = shlex.split(FLAG_API_ENABLE.replace("\\\n", " "))
    assert argv[:3] == ["curl", "-X", "POST"] and argv[3].startswith("http://localhost:3000/")
    argv[3] = argv[3].replace("http://localhost:3000", live_server.url)
    argv += ["-H", f"Authorization: Bearer {act}", "--silent", "--fail-with-body"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)

    # Then: it succeeds, and the flag is on in the default environment
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert (answer["name"], answer["environment"], answer["enabled"]) == (
        "feature-name", "production", True,
    )  # fmt: skip

    # And: the OpenFeature SDK with its OFREP provider, on the evaluation token, sees it on
    provider = OFREPProvider(
        live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {evaluate}"}
    )
    api.set_provider(provider, domain="bare-install")
    try:
        sdk = api.get_client(domain="bare-install")
        on = sdk.get_boolean_details("feature-name", False, EvaluationContext(targeting_key="u1"))
        assert (on.value, on.reason, on.variant, on.error_code) == (True, "STATIC", "on", None)
        # And: a flag that does not exist gives the caller's default, never an exception
        for default in (True, False):
            missing = sdk.get_boolean_details("no-such-flag", default)
            assert missing.value is default and missing.error_code == ErrorCode.FLAG_NOT_FOUND
        assert sdk.get_boolean_value("no-such-flag", True) is True
    finally:
        api.clear_providers()


def test_bare_install__playbook_loaded_from_the_set_up_page__a_release_manager_creates_an_upgrade(
    client, administrator, manager
):
    from upgrades.models import PlaybookTemplate, Upgrade

    # Given: a bare install with no playbook, and an environment an administrator added
    client.force_login(administrator)
    assert not PlaybookTemplate.objects.exists()
    client.post(reverse("setup:environment_create"), {
        "name": "Staging", "slug": "staging", "kind": "staging", "health_path": "/health",
        "status_path": "/ops/status.json", "request_timeout_seconds": "5",
    })  # fmt: skip
    start = client.get(reverse("setup:start")).content.decode()
    assert reverse("setup:playbook_load") in start

    # When: the administrator loads the playbook (twice: the second changes nothing)
    assert client.post(reverse("setup:playbook_load")).status_code == 302
    count = PlaybookTemplate.objects.count()
    client.post(reverse("setup:playbook_load"))

    # Then: the templates exist once, and a release manager can create an upgrade from one
    assert count == PlaybookTemplate.objects.count() == 5
    client.force_login(manager)
    environment = Environment.objects.get(slug="staging")
    response = client.post(reverse("upgrades:create"), {
        "upgrade_type": "minor", "title": "First real upgrade", "environment": environment.pk,
        "version_from": "1.4.2", "version_to": "1.5.0",
    })  # fmt: skip
    assert response.status_code == 302, response.context["form"].errors
    assert Upgrade.objects.get(title="First real upgrade").steps.exists()


def test_bare_install__no_playbook_yet__release_manager_told_who_loads_it_never_a_command(
    client, manager
):
    from upgrades.models import Upgrade

    # Given: a bare install with an environment but no playbook loaded yet
    environment = Environment.objects.create(name="Staging", slug="staging", kind="staging")

    # When: a release manager opens the new-upgrade page, and creates one anyway
    client.force_login(manager)
    page = client.get(reverse("upgrades:create")).content.decode()
    refused = client.post(reverse("upgrades:create"), {
        "upgrade_type": "minor", "title": "Too early", "environment": environment.pk,
        "version_from": "1.4.2", "version_to": "1.5.0",
    })  # fmt: skip

    # Then: both say an administrator loads the playbook under Set-up; no command to run
    assert 'id="no-templates"' in page and "An administrator loads them under Set-up" in page
    assert 'disabled aria-describedby="no-templates">Create upgrade' in page  # not offered
    assert refused.status_code == 409 and not Upgrade.objects.exists()
    said = refused.content.decode()
    assert "No playbook template exists for minor version upgrades yet" in said
    assert "Set-up → Playbooks" in said and "manage.py" not in said

    # And: the superuser (an administrator who may also make upgrades) is given the way there
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw-long-9x"))
    page = client.get(reverse("upgrades:create")).content.decode()
    assert f'href="{reverse("setup:templates")}">Load the playbook' in page
