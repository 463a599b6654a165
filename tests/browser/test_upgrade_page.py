"""The upgrade page on a phone (390 px wide) with a real worker against the demo Mycelia: a
release manager ticks a step, runs a check and deploys, and the page never scrolls sideways
and keeps focus on or near the control that was used."""

from __future__ import annotations

import contextlib

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.conftest import worker_factory  # noqa: F401 - fixture
from upgrades.models import StepStatus, UpgradeStatus

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LIVE = 30_000  # ms: a run goes from queued to finished on the worker well within this
PHONE = {"width": 390, "height": 844}


def _fits(page) -> None:
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways: {width} px wide"


def _focus_within(page, selector: str) -> None:
    # app.js moves focus once htmx has swapped: wait for that moment, not for a fixed time.
    check = (
        "(sel) => { const a = document.activeElement;"
        " return !!(a && a !== document.body && a.closest(sel)); }"
    )
    with contextlib.suppress(PlaywrightTimeout):  # the assertion below says where focus went
        page.wait_for_function(check, arg=selector, timeout=3000)
    inside = page.evaluate(check, selector)
    focused = page.evaluate(
        "() => document.activeElement ? document.activeElement.outerHTML.slice(0, 120) : ''"
    )
    assert inside, f"focus left {selector}: {focused}"


def test_phone__tick_run_a_check_start_and_deploy__no_sideways_scroll_and_focus_stays(
    new_page,
    manager,
    make_upgrade,
    demo_environment,
    demo_mycelia,
    worker_factory,  # noqa: F811
):
    worker_factory().start()
    upgrade = make_upgrade(
        "minor", environment=demo_environment, version_from="1.4.2", version_to="1.5.0",
        title="Mycelia 1.5.0: a-very-long-unbroken-title-that-has-to-wrap-on-a-phone-screen",
    )  # fmt: skip
    page = new_page()
    page.set_viewport_size(PHONE)
    sign_in(page, manager.username, PASSWORD)
    page.goto(upgrade.get_absolute_url())
    page.evaluate("window.__no_reload = 'still here'")
    _fits(page)
    total = upgrade.steps.count()

    # Tick a manual step with the keyboard: the step changes in place, focus stays on it
    notify = upgrade.steps.get(title="Internal: Notify team members")
    page.fill(f"#note-{notify.pk}", "posted in #releases")
    page.focus(f"#done-{notify.pk}")
    page.keyboard.press("Enter")
    expect(page.locator(f"#step-{notify.pk} .step-status")).to_have_text("Done")
    expect(page.locator("#overall-progress")).to_contain_text(f"1 of {total} steps")
    expect(page.locator("#page-message")).to_contain_text("done")
    _focus_within(page, f"#step-{notify.pk}")
    _fits(page)

    # Run a check: the worker runs it, the step is ticked by the run, live
    diagnose = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    page.locator(f"#step-{diagnose.pk}").get_by_role(
        "button", name="Run check — Run diagnostics"
    ).click()
    expect(page.locator(f"#step-{diagnose.pk} .step-status")).to_have_text("Done", timeout=LIVE)
    expect(page.locator(f"#step-{diagnose.pk} .step-run")).to_contain_text("Passed")
    expect(page.locator("#runs-live")).to_have_count(0, timeout=LIVE)
    _focus_within(page, f"#step-{diagnose.pk}")
    _fits(page)

    # Start the deployment: the next action says why, and asks for the override reason
    expect(page.locator("#next")).to_contain_text("Next: Start deployment")
    page.fill("#override-reason", "rehearsed on staging")
    page.focus("#act-start")
    page.keyboard.press("Enter")
    expect(page.locator("#upgrade-status")).to_have_text("In progress")
    expect(page.locator("#next")).to_contain_text("Next: Deploy")
    _focus_within(page, "#lifecycle")
    _fits(page)

    # Deploy (one confirmation): the target changes version and the page says so in words
    page.locator("#act-deploy").click()
    expect(page.locator("#deploy-state")).to_contain_text(
        "Deployed 1.5.0 (target reports 1.5.0)", timeout=LIVE
    )
    expect(page.locator("#act-begin_monitoring")).to_be_visible()
    _focus_within(page, "#lifecycle")
    _fits(page)
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.5.0"
    assert page.evaluate("window.__no_reload") == "still here"
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.steps.get(pk=notify.pk).status == StepStatus.DONE
