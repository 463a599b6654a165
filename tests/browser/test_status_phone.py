"""The status page, its history and the incidents pages on a phone (390 px wide, real
Chromium): nothing scrolls sideways, with long names, figures and 90 uptime bars per service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from comms import services
from comms.models import ComponentDay
from tests.browser.conftest import sign_in
from tests.comms._status_helpers import psync
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
OVERFLOWING = """() => Array.from(document.querySelectorAll('body *'))
    .filter((el) => el.getBoundingClientRect().right > innerWidth + 1)
    .slice(0, 5).map((el) => el.tagName + '.' + el.className + ': ' + el.textContent.trim().slice(0, 40))"""


def _busy_page(manager) -> int:
    document = {
        "version": "1.5.0",
        "services": [
            {"name": "redemption-and-loyalty-points-settlement-service", "status": "degraded",
             "error_rate": 0.0823, "latency_p95_ms": 1234.5, "availability": 0.99951},
            {"name": "api", "status": "healthy", "error_rate": 0.001, "latency_p95_ms": 120,
             "availability": 0.9995},
        ],
    }  # fmt: skip
    services.status_health_record(environment_key="production", environment_name="Production",
                                  document=document, error="", public=True)  # fmt: skip
    today = datetime.now(UTC).date()
    for n in range(90):
        ComponentDay.objects.create(environment_key="production", name="api",
                                    day=today - timedelta(days=n), samples=10, major=n % 7 == 0)  # fmt: skip
    long = "Mycelia-2.0.0-major-upgrade-with-the-new-ledger-schema-and-everything-else"
    psync(1, status="in_progress", title=long, phase_title="Upgrade Process", progress_percent=40)
    psync(2, status="scheduled", title="Scheduled: " + long)
    psync(3, status="in_progress")
    psync(3, status="rolled_back", title="Rolled back " + long)
    incident = services.status_incident_draft(upgrade_id=3, lifecycle="rolled_back")
    services.status_incident_publish(incident_id=incident.pk, name="Incident " + long,
                                     body="Status: " + long, impact="minor", status="monitoring",
                                     by=manager)  # fmt: skip
    return incident.pk


def _assert_fits(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (page.url, width, page.evaluate(OVERFLOWING))


def test_status_pages__phone_390px__no_sideways_scrolling(new_page, manager):
    incident_id = _busy_page(manager)
    page = new_page()
    page.set_viewport_size(PHONE)

    for url in ("/status/", "/status/history/"):
        page.goto(url)
        _assert_fits(page)
    page.goto("/status/")
    assert page.locator(".component .uptime").first.locator(".bar").count() == 90
    assert page.locator(".component .uptime").first.bounding_box()["width"] <= PHONE["width"]

    sign_in(page, manager.username, PASSWORD)
    for url in ("/status/", "/comms/incidents/", f"/comms/incidents/{incident_id}/"):
        page.goto(url)
        _assert_fits(page)
