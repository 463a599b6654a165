"""The first day on a phone (390 px) in real Chromium, under the Content-Security-Policy: a
superuser of a bare install signs in, lands on the set-up start, creates an environment with a
command hook and a webhook hook, tests both on a real worker and watches the results arrive,
then invites a release manager who signs up through the emailed link."""

from __future__ import annotations

import re
import sys

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.browser.test_csp import _violations, _watched
from tests.browser.test_freezes import OVERFLOWING_TEXT
from tests.integration.conftest import worker_factory  # noqa: F401 - fixture
from tests.setup.conftest import receiver  # noqa: F401 - fixture
from upgrades.models import EnvironmentOperation

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
LIVE = 30_000  # ms: a dry run goes from queued to finished on the worker well within this
PROBE = "import os; print('dry run', os.environ.get('MYCELIA_DRY_RUN'))"


def _fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (page.url, width, page.evaluate(OVERFLOWING_TEXT))


def test_first_day__phone__set_up_test_hooks_invite__no_sideways_scrolling(
    new_page,
    mailoutbox,
    receiver,  # noqa: F811
    worker_factory,  # noqa: F811
):
    User.objects.create_superuser("root", "root@example.com", "a-long-fresh-password-9")
    worker_factory().start()
    page = new_page()
    refused = _watched(page)
    page.set_viewport_size(PHONE)

    # Sign in: a bare install sends the administrator to the set-up start
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", "a-long-fresh-password-9")
    page.click("button[type=submit]")
    page.wait_for_url("**/setup/")
    expect(page.locator("#first-steps")).to_be_visible()
    _fits(page)

    # An environment, with a mistake first: the form says what is wrong
    page.click("text=Add the first environment")
    page.fill("#environment-form [name=name]", "Production")
    page.fill("#environment-form [name=slug]", "Production!")
    page.fill("#environment-form [name=base_url]", receiver.url)
    page.click("#environment-form button[type=submit]")
    expect(page.locator("#environment-form .error")).to_contain_text("lower-case")
    _fits(page)
    page.fill("#environment-form [name=slug]", "production")
    page.click("#environment-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/setup/environments/\d+/#hooks$"))
    _fits(page)

    # A command hook (one argument a line) and a webhook hook with its secret
    form = page.locator("#new-hook-form")
    form.locator("[name=operation]").select_option("diagnose")
    form.locator("[name=mode][value=command]").check()
    form.locator("[name=argv]").fill(f"{sys.executable}\n-c\n{PROBE}")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*#hook-\d+$"))
    page.locator("#new-hook > summary").click()
    form.locator("[name=operation]").select_option("deploy")
    form.locator("[name=mode][value=webhook]").check()
    form.locator("[name=webhook_url]").fill(f"{receiver.url}/deploy")
    form.locator("[name=webhook_secret_header]").fill("X-Deploy-Token")
    form.locator("[name=webhook_secret]").fill("s3cret-value")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*#hook-\d+$"))
    command = EnvironmentOperation.objects.get(operation="diagnose")
    webhook = EnvironmentOperation.objects.get(operation="deploy")
    _fits(page)

    # Test both: the results arrive in place, without a reload
    page.evaluate("window.__noReload = 'still here'")
    page.locator(f"#hook-{command.pk} [data-role=test-hook]").click()
    page.locator(f"#confirm-{webhook.pk}").check()
    page.locator(f"#hook-{webhook.pk} [data-role=test-hook]").click()
    expect(page.locator(f"#hook-{command.pk}-test [data-role=test-status]")).to_have_text(
        "Passed", timeout=LIVE
    )
    expect(page.locator(f"#hook-{command.pk}-test [data-role=test-output]")).to_contain_text(
        "dry run 1"
    )
    expect(page.locator(f"#hook-{webhook.pk}-test [data-role=test-status]")).to_have_text(
        "Passed", timeout=LIVE
    )
    expect(page.locator(f"#hook-{webhook.pk}-test [data-role=test-reason]")).to_contain_text(
        "answered 200"
    )
    assert page.evaluate("window.__noReload") == "still here"
    assert receiver.requests[-1]["headers"]["X-Mycelia-Dry-Run"] == "1"
    _fits(page)

    # Invite a release manager
    page.goto("/setup/people/")
    page.fill("#invite-form [name=email]", "rita@example.com")
    page.select_option("#invite-form [name=role]", "release_manager")
    page.click("#invite-form button[type=submit]")
    expect(page.locator("#invitations")).to_contain_text("rita@example.com")
    _fits(page)
    assert _violations(page, refused) == []

    # She signs up through the link on her own phone, then signs in
    link = re.search(r"https?://\S+/setup/join/\S+/", mailoutbox[-1].body).group(0)
    rita = new_page()
    rita_refused = _watched(rita)
    rita.set_viewport_size(PHONE)
    rita.goto(link)
    _fits(rita)
    rita.fill("#join-form [name=username]", "rita")
    rita.fill("#join-form [name=password]", "a-long-new-pass-42")
    rita.fill("#join-form [name=password_again]", "a-long-new-pass-42")
    rita.click("#join-form button[type=submit]")
    rita.wait_for_url("**/accounts/login/")
    rita.fill("input[name=username]", "rita")
    rita.fill("input[name=password]", "a-long-new-pass-42")
    rita.click("button[type=submit]")
    rita.wait_for_url("**/upgrades/")
    expect(rita.locator(".who")).to_contain_text("release manager")
    _fits(rita)
    assert _violations(rita, rita_refused) == []
