"""Real Chromium under the Content-Security-Policy: no violation on the pages, and what htmx
does (polls, clicks, swaps) still works without eval or inline code."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from comms import services
from tests.browser.conftest import sign_in
from tests.comms.conftest import sync
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every violation, whether Chromium logs it ("Refused to ...") or only fires the event; and a
# visibility the test can set (Chromium's own stays "visible" in a headless page).
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
window.__visibility = "visible";
Object.defineProperty(document, "visibilityState", {get: () => window.__visibility});
"""


def _watched(page) -> list[str]:
    refused: list[str] = []
    page.on(
        "console",
        lambda m: (
            refused.append(m.text)
            if "Refused to" in m.text or "Content Security Policy" in m.text
            else None
        ),
    )
    page.add_init_script(WATCH)
    return refused


def _violations(page, refused: list[str]) -> list[str]:
    return refused + page.evaluate("window.__csp")


def test_status_page__under_the_policy__polls_and_subscribes_without_a_violation(new_page):
    services.comms_seed()
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0", progress_percent=40)
    page = new_page()
    refused = _watched(page)
    page.clock.install()
    page.goto("/status/")
    expect(page.locator("#upgrade-1 [data-role=progress]")).to_have_text("40%")
    page.evaluate("window.__noReload = 'still here'")

    # When the upgrade moves on and the 5 s poll comes round (the page's clock, not ours)
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0", progress_percent=70)
    with page.expect_response(lambda r: "part=live" in r.url):
        page.clock.run_for(5_500)

    # Then the page shows it, with no trigger filter evaluated and no reload
    expect(page.locator("#upgrade-1 [data-role=progress]")).to_have_text("70%")
    assert page.evaluate("window.__noReload") == "still here"

    # When someone subscribes (an hx-post swap)
    page.fill("#subscribe input[name=email]", "fan@example.com")
    page.click("#subscribe button[type=submit]")
    expect(page.locator("#subscribe")).to_contain_text("Check your inbox")

    assert page.evaluate("window.__noReload") == "still here"
    assert _violations(page, refused) == []


def test_status_page__tab_hidden__polls_wait_until_it_is_visible(new_page):
    services.comms_seed()
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0", progress_percent=40)
    page = new_page()
    _watched(page)
    page.clock.install()
    page.goto("/status/")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "part=live" in r.url else None)

    # While the tab is hidden, three poll intervals pass without a request
    page.evaluate("window.__visibility = 'hidden'")
    page.clock.run_for(16_000)
    assert polls == []

    # Once it is visible again, the next tick polls
    page.evaluate("window.__visibility = 'visible'")
    with page.expect_response(lambda r: "part=live" in r.url):
        page.clock.run_for(5_500)
    assert len(polls) == 1


def test_upgrade_page__tick_a_step__htmx_works_without_a_violation(new_page, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    page = new_page()
    refused = _watched(page)
    sign_in(page, manager.username, PASSWORD)

    page.goto(upgrade.get_absolute_url())
    page.evaluate("window.__noReload = 'still here'")
    total = upgrade.steps.count()
    expect(page.locator("#overall-progress")).to_contain_text(f"0 of {total} steps")

    # When the manager ticks a step (an hx-post that swaps parts of the page)
    page.locator(f"#step-{step.pk} .tick-button").click()

    # Then the page changes in place, and nothing was refused by the policy
    expect(page.locator("#overall-progress")).to_contain_text(f"1 of {total} steps")
    assert page.evaluate("window.__noReload") == "still here"
    assert _violations(page, refused) == []


@pytest.fixture
def page_asking(browser, live_server):
    """A page whose confirm() dialogs are recorded and dismissed (new_page accepts them)."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.asked = []

    def dismiss(dialog):
        page.asked.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    yield page
    context.close()


def test_flag_archive__confirm_from_app_js__asks_and_cancel_keeps_the_flag(page_asking, manager):
    from flags import services as flags
    from flags.models import Flag, Via

    flags.flag_environment_ensure(key="staging", name="Staging")
    flags.flag_create(key="new-checkout", description="x", by=manager, via=Via.UI, tags="")
    page = page_asking
    refused = _watched(page)
    sign_in(page, manager.username, PASSWORD)
    page.goto("/flags/new-checkout/")

    # When the manager presses Archive and cancels the question (data-confirm, in app.js)
    page.click("text=Archive flag")

    # Then it was asked, nothing was posted, and the flag is still there
    assert page.asked and "Archive new-checkout?" in page.asked[0]
    assert page.url.endswith("/flags/new-checkout/")
    assert Flag.objects.get(key="new-checkout").archived_at is None
    assert _violations(page, refused) == []
