"""The status page follows an upgrade live, in real Chromium, without a reload."""

from __future__ import annotations

import pytest

from comms import services
from tests.comms.conftest import sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_status_page__upgrade_progresses__page_changes_without_reload(new_page):
    services.comms_seed()
    sync(upgrade_id=1, status="scheduled", title="Upgrade to 1.5.0")
    page = new_page()
    page.goto("/status/")
    card = page.locator("#upgrade-1")
    assert card.get_attribute("data-status") == "scheduled"
    page.evaluate("window.__noReload = 'still here'")

    # When the upgrade starts and reaches its second phase
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0",
         phase_title="Deploy to production", progress_percent=60)  # fmt: skip

    # Then the page shows it within a poll or two, in the same document
    page.wait_for_selector("#upgrade-1[data-status='in_progress']", timeout=15_000)
    assert card.locator("[data-role=phase]").inner_text() == "Deploy to production"
    assert card.locator("[data-role=progress]").inner_text() == "60%"
    assert page.evaluate("window.__noReload") == "still here"

    sync(upgrade_id=1, status="monitoring", title="Upgrade to 1.5.0", phase_title="Verify",
         progress_percent=90)  # fmt: skip
    page.wait_for_selector("#upgrade-1[data-status='verifying']", timeout=15_000)
    assert page.evaluate("window.__noReload") == "still here"
