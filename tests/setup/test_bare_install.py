"""A fresh install (the migrations and `createsuperuser`, nothing else) is set up on the product's
own pages: the administrator's first sign-in leads to the set-up start, an environment gets a
command hook and a webhook hook, and both are tested as dry runs on a real worker."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from flags.models import FlagEnvironment
from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS
from tests.integration.conftest import wait_for, worker_factory  # noqa: F401 - fixture
from upgrades.models import Environment, EnvironmentOperation, HookTest, SetupEvent

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

DRY_RUN_PROBE = "import os; print('dry run:', os.environ.get('MYCELIA_DRY_RUN'))"


def _test_hook(client, hook: EnvironmentOperation, **extra) -> HookTest:
    response = client.post(
        reverse("setup:hook_test", args=[hook.pk]), extra, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200, response.content.decode()
    # The answer is the live region: it polls while the test is queued or running
    assert 'hx-trigger="every 1s"' in response.content.decode()
    return HookTest.objects.filter(hook=hook).latest("id")


def test_bare_install__superuser_sets_up_and_tests_hooks__on_a_real_worker(
    client,
    monkeypatch,
    receiver,
    worker_factory,  # noqa: F811
):
    # Given: a bare install: only what the migrations made, and a superuser from createsuperuser.
    # A transactional test starts from flushed tables on PostgreSQL, so what the migrations make
    # is put back here (test_bare_install_api.py checks the migrations make it).
    for name in (ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS):
        Group.objects.get_or_create(name=name)
    FlagEnvironment.objects.get_or_create(key="production", defaults={"name": "Production"})
    assert not Environment.objects.exists()
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-fresh-password-9")
    call_command("createsuperuser", "--noinput", username="root", email="root@example.com")
    worker_factory().start()

    # When: the administrator signs in for the first time
    response = client.post(
        reverse("login"), {"username": "root", "password": "a-long-fresh-password-9"}, follow=True
    )

    # Then: the set-up start greets them, not an empty upgrade list
    assert response.redirect_chain[-1][0] == reverse("setup:start")
    assert "Add the first environment" in response.content.decode()
    assert client.get(reverse("upgrades:dashboard")).url == reverse("setup:start")

    # When: they create an environment
    response = client.post(reverse("setup:environment_create"), {
        "name": "Production", "slug": "production", "kind": "production",
        "base_url": "https://mycelia.example.com", "health_path": "/health",
        "status_path": "/ops/status.json", "request_timeout_seconds": "5",
        "public_status": "yes",
    })  # fmt: skip
    environment = Environment.objects.get(slug="production")
    assert response.status_code == 302
    assert environment.public_status is True and environment.shown_on_status_page
    # its flag environment is the default one the migrations made (same key), named after it
    assert FlagEnvironment.objects.get(key="production").name == "Production"

    # And: a command hook (one argument a line, no shell) and a webhook hook with a secret
    client.post(reverse("setup:hook_create", args=[environment.pk]), {
        "operation": "diagnose", "mode": "command",
        "argv": f"{sys.executable}\n-c\n{DRY_RUN_PROBE}", "timeout_seconds": "30",
    })  # fmt: skip
    client.post(reverse("setup:hook_create", args=[environment.pk]), {
        "operation": "deploy", "mode": "webhook", "webhook_url": f"{receiver.url}/deploy",
        "webhook_secret_header": "X-Deploy-Token", "webhook_secret": "s3cret-value",
        "timeout_seconds": "10",
    })  # fmt: skip
    command = EnvironmentOperation.objects.get(environment=environment, operation="diagnose")
    webhook = EnvironmentOperation.objects.get(environment=environment, operation="deploy")
    assert command.argv == [sys.executable, "-c", DRY_RUN_PROBE]
    assert webhook.webhook_secret == "s3cret-value"

    # Then: the deploy hook changes the target, so its test waits for a confirmation
    refused = client.post(reverse("setup:hook_test", args=[webhook.pk]), HTTP_HX_REQUEST="true")
    assert refused.status_code == 400 and "honours" in refused.content.decode()

    # When: both are tested
    command_test = _test_hook(client, command)
    webhook_test = _test_hook(client, webhook, confirm="yes")

    # Then: the worker runs both as dry runs and the page shows each result
    for test in (command_test, webhook_test):
        wait_for(lambda t=test: HookTest.objects.get(pk=t.pk).status not in ("queued", "running"),
                 timeout=30)  # fmt: skip
    command_test.refresh_from_db()
    webhook_test.refresh_from_db()
    assert command_test.status == "passed", command_test.reason
    assert "dry run: 1" in command_test.output
    assert webhook_test.status == "passed", webhook_test.reason
    sent = receiver.requests[-1]
    assert sent["json"] == {"operation": "deploy", "environment": "production", "dry_run": True}
    assert sent["headers"]["X-Mycelia-Dry-Run"] == "1"
    assert sent["headers"]["X-Deploy-Token"] == "s3cret-value"

    shown = client.get(reverse("setup:hook_test_detail", args=[command_test.pk])).content.decode()
    assert "Passed" in shown and "dry run: 1" in shown and "every 1s" not in shown
    page = client.get(reverse("setup:environment", args=[environment.pk])).content.decode()
    assert "answered 200" in page

    # And: the history has every change, and never the secret
    assert SetupEvent.objects.filter(environment=environment).count() >= 3
    assert not SetupEvent.objects.filter(to_value__contains="s3cret").exists()
    assert "s3cret-value" not in page

    # And: once an environment exists, the upgrade list is the landing page again
    assert client.get(reverse("upgrades:list")).status_code == 200
