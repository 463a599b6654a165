"""An interrupted deploy on a phone (390 px) in real Chromium, under the Content-Security-Policy:
the page says "Interrupted — outcome unknown", the release manager checks the target and marks
the deploy passed with what was checked, and the page moves on to "Begin monitoring" in place
(HTMX, no reload), with no sideways scrolling and no CSP violation.

The interrupted deploy is made the honest way (a worker claims it and dies; the sweep runs with
the clock moved on), as tests/upgrades/test_at_most_once.py does."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.browser.test_csp import _violations, _watched
from tests.conftest import PASSWORD
from tests.upgrades.test_at_most_once import _interrupted_deploy, _started
from upgrades.models import DeployState, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def _fits(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"


def test_phone__interrupted_deploy__manager_checks_and_marks_it_passed__page_moves_on(
    new_page, manager, make_upgrade, demo_environment
):
    upgrade = make_upgrade(
        "minor", environment=demo_environment, version_to="1.5.0",
        title="Mycelia 1.5.0: a-very-long-unbroken-title-that-has-to-wrap-on-a-phone-screen",
    )  # fmt: skip
    run = _interrupted_deploy(_started(upgrade, manager), manager)
    assert run.status == RunStatus.INTERRUPTED

    page = new_page()
    refused = _watched(page)
    page.set_viewport_size(PHONE)
    sign_in(page, manager.username, PASSWORD)
    page.goto(upgrade.get_absolute_url())
    page.evaluate("window.__no_reload = 'still here'")

    # The page says so in words, and offers the decisions
    panel = page.locator(f"#decide-{run.pk}")
    expect(panel.locator(".badge")).to_have_text("Interrupted — outcome unknown")
    expect(page.locator("#deploy-state")).to_contain_text("Deploy interrupted: outcome unknown")
    for name in ("Check the target", "Retry the deploy"):
        expect(panel.get_by_role("button", name=name)).to_be_visible()
    _fits(page)

    # Check the target: the version it reports, and when, in the panel
    panel.get_by_role("button", name="Check the target").click()
    read = page.locator(f"#decide-{run.pk}-target-read")
    expect(read).to_contain_text("the target reports version")
    expect(read.locator("time")).to_have_count(1)
    _fits(page)

    # Mark it passed, saying what was checked
    page.fill(f"#decide-{run.pk}-passed-reason", "/health reports 1.5.0")
    page.click(f"#decide-{run.pk}-passed")

    expect(page.locator("#next .next-title")).to_have_text("Next: Begin monitoring")
    expect(page.locator(f"#decide-{run.pk}")).to_have_count(0)
    expect(page.locator("#deploy-state")).to_contain_text("Deployed 1.5.0")
    expect(page.locator(f"#run-{run.pk} .run-status")).to_have_text("Passed")
    expect(page.locator("#timeline")).to_contain_text("marked passed by alice: /health reports")
    assert page.evaluate("window.__no_reload") == "still here"  # swapped in place
    _fits(page)
    assert _violations(page, refused) == []
    upgrade.refresh_from_db()
    assert upgrade.deploy_state == DeployState.PASSED
