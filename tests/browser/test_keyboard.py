"""The upgrade page by keyboard alone, in real Chromium with a real worker against the demo
Mycelia: a release manager skips to the content, ticks a step, marks one "not doing" with a
reason and runs a check using Tab, Shift+Tab, Enter, Space and typing only (no mouse, no
element.click()). After each, focus is on the control used or on the step it changed (never on
<body>), the next Tab goes on from there, polls of the runs panel leave focus alone, and the
polite live region says what happened."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from tests.integration.conftest import worker_factory  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LIVE = 30_000  # ms: a check goes from queued to finished on the worker well within this

FOCUSED = """() => {
  const a = document.activeElement;
  if (!a || a === document.body) return "body";
  return a.id ? "#" + a.id : a.outerHTML.slice(0, 80);
}"""


def _focused(page) -> str:
    return page.evaluate(FOCUSED)


def _tab_to(page, selector: str, *, key: str = "Tab", limit: int = 600) -> int:
    """Press Tab (or Shift+Tab) until the element matching `selector` has focus."""
    for presses in range(1, limit + 1):
        page.keyboard.press(key)
        if page.evaluate("(sel) => document.activeElement.matches(sel)", selector):
            return presses
    raise AssertionError(f"{limit} presses of {key} never reached {selector}")


def _focus_in(page, selector: str) -> None:
    inside = page.evaluate(
        "(sel) => { const a = document.activeElement;"
        " return !!(a && a !== document.body && a.closest(sel)); }",
        selector,
    )
    assert inside, f"focus is on {_focused(page)}, not in {selector}"


def _after_in_document(page, selector: str) -> None:
    """The focused element comes after `selector` in the page (the next Tab went on from the
    place the person was, not from the top)."""
    after = page.evaluate(
        "(sel) => { const here = document.querySelector(sel); const a = document.activeElement;"
        " return !!(here && a && a !== document.body && (here.contains(a) ||"
        " (here.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING))); }",
        selector,
    )
    assert after, f"the next Tab went to {_focused(page)}, before {selector}"


@pytest.mark.worker
def test_upgrade_page__keyboard_only__tick_skip_and_run_a_check__focus_stays_and_is_announced(
    new_page,
    manager,
    make_upgrade,
    demo_environment,
    worker_factory,  # noqa: F811
):
    worker_factory().start()
    upgrade = make_upgrade("minor", environment=demo_environment, title="Mycelia 1.5.0")
    notify = upgrade.steps.get(title="Internal: Notify team members")
    diagnose = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    skipped = (
        upgrade.steps.filter(phase__stage="pre", kind="manual", status="open")
        .exclude(pk=notify.pk)
        .order_by("phase__order", "order")
        .first()
    )
    page = new_page()
    sign_in(page, manager.username, PASSWORD)
    page.goto(upgrade.get_absolute_url())
    page.evaluate("window.__no_reload = 'still here'")

    # The first Tab reaches the skip link; Enter moves focus to the main content
    page.keyboard.press("Tab")
    assert _focused(page) != "body"
    assert page.evaluate("document.activeElement.textContent") == "Skip to the main content"
    page.keyboard.press("Enter")
    assert _focused(page) == "#main"

    # Tick a step: type a note, Tab to its Done button, press Enter
    _tab_to(page, f"#note-{notify.pk}")
    page.keyboard.type("posted in #releases")
    _tab_to(page, f"#done-{notify.pk}")
    page.keyboard.press("Enter")
    expect(page.locator(f"#step-{notify.pk} .step-status")).to_have_text("Done")
    _focus_in(page, f"#step-{notify.pk}")
    expect(page.locator("#page-message")).to_have_attribute("role", "status")
    expect(page.locator("#page-message")).to_contain_text(f"“{notify.title}” done.")
    # ... and the next Tab goes on from the step, not from the top of the page
    page.keyboard.press("Tab")
    _after_in_document(page, f"#step-{notify.pk}")

    # Mark a step "not doing": open its disclosure with Space, type why, submit with Enter
    _tab_to(page, f"#skip-{skipped.pk} > summary")
    page.keyboard.press("Space")
    expect(page.locator(f"#skip-reason-{skipped.pk}")).to_be_visible()
    _tab_to(page, f"#skip-reason-{skipped.pk}")
    page.keyboard.type("done by hand last night")
    page.keyboard.press("Enter")
    expect(page.locator(f"#step-{skipped.pk} .step-meta")).to_contain_text(
        "done by hand last night"
    )
    _focus_in(page, f"#step-{skipped.pk}")
    expect(page.locator("#page-message")).to_contain_text(f"“{skipped.title}” marked not doing.")

    # Run a check: Shift+Tab back up to its button if it lies above, else Tab down; Space
    key = (
        "Shift+Tab"
        if page.evaluate(
            "(id) => !!(document.getElementById(id).compareDocumentPosition("
            "document.activeElement) & Node.DOCUMENT_POSITION_FOLLOWING)",
            f"run-check-{diagnose.pk}",
        )
        else "Tab"
    )
    _tab_to(page, f"#run-check-{diagnose.pk}", key=key)
    with page.expect_response(lambda r: f"/steps/{diagnose.pk}/run/" in r.url):
        page.keyboard.press("Space")
    expect(page.locator("#runs-live")).to_be_visible()
    _focus_in(page, f"#step-{diagnose.pk}")
    where = _focused(page)

    # While the runs panel polls, focus stays exactly where it was
    with page.expect_response(lambda r: "/runs/?" in r.url, timeout=LIVE):
        pass
    page.wait_for_load_state()
    assert _focused(page) == where, f"a poll moved focus from {where} to {_focused(page)}"

    # The check passes on the worker: the step is ticked, focus is still with it, and the
    # live region says the run passed
    expect(page.locator(f"#step-{diagnose.pk} .step-status")).to_have_text("Done", timeout=LIVE)
    expect(page.locator("#runs-live")).to_have_count(0, timeout=LIVE)
    _focus_in(page, f"#step-{diagnose.pk}")
    expect(page.locator("#page-message")).to_contain_text("Run diagnostics: Passed")
    assert page.evaluate("window.__no_reload") == "still here"


def test_status_page__pause_by_keyboard_and_reduced_motion__no_poll_while_paused(
    browser, live_server
):
    # Given the public status page with an upgrade in progress
    from comms import services
    from tests.comms.conftest import sync

    services.comms_seed()
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0", progress_percent=40)
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.clock.install()
    page.goto("/status/")
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "part=live" in r.url else None)
    pause = page.locator("button[data-pauses=live]")
    expect(pause).to_have_text("Pause live updates")
    expect(pause).to_have_attribute("aria-pressed", "false")

    # When a visitor tabs to the button and presses Enter
    _tab_to(page, "button[data-pauses=live]")
    page.keyboard.press("Enter")

    # Then the page says so, and three refresh intervals pass without a request
    expect(pause).to_have_attribute("aria-pressed", "true")
    expect(pause).to_have_text("Resume live updates")
    expect(page.locator("#live-paused")).to_have_text("Live updates are paused.")
    page.clock.run_for(16_000)
    assert polls == []
    assert _focused(page) != "body"

    # When they press it again, the next tick refreshes
    page.keyboard.press("Enter")
    expect(pause).to_have_attribute("aria-pressed", "false")
    with page.expect_response(lambda r: "part=live" in r.url):
        page.clock.run_for(5_500)
    context.close()

    # Someone who asked for reduced motion finds the refresh paused, with the button to resume
    still = browser.new_context(base_url=live_server.url, reduced_motion="reduce")
    page = still.new_page()
    page.clock.install()
    page.goto("/status/")
    polls.clear()
    page.on("request", lambda r: polls.append(r.url) if "part=live" in r.url else None)
    expect(page.locator("button[data-pauses=live]")).to_have_text("Resume live updates")
    page.clock.run_for(16_000)
    assert polls == []
    still.close()
