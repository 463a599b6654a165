"""Issue 12, "cost independent of history": the public page, every JSON endpoint, the feed,
the calendar and the history page make the same, pinned number of queries with no past at all
and with 10,000 past upgrades (40,000 updates), and answer with bounded sets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from comms import selectors, services
from tests.comms._status_helpers import health, long_history, psync

pytestmark = pytest.mark.django_db

# url -> queries for an anonymous visitor (the session and auth lookups included).
PINNED = {
    "/status/": 9,
    "/status/?part=live": 9,
    "/status/api/v2/status.json": 3,
    "/status/api/v2/summary.json": 6,
    "/status/api/v2/components.json": 2,
    "/status/api/v2/incidents.json": 4,
    "/status/api/v2/incidents/unresolved.json": 4,
    "/status/api/v2/scheduled-maintenances.json": 4,
    "/status/api/v2/scheduled-maintenances/upcoming.json": 4,
    "/status/api/v2/scheduled-maintenances/active.json": 3,
    "/status/feed.atom": 1,
    "/status/calendar.ics": 1,
    "/status/history/": 2,
    "/status/history/?month=2025-06&page=2": 1,
}


def _today(manager) -> None:
    """What is going on now: services, one maintenance running, one scheduled, one that ended
    yesterday with a published incident."""
    health("production", "Production", public=True, redemption="degraded")
    now = timezone.now()
    psync(1, status="in_progress", phase_title="Upgrade Process", progress_percent=40)
    psync(2, status="scheduled")
    psync(3, status="in_progress", window_start=now - timedelta(hours=3),
          window_end=now - timedelta(hours=2))  # fmt: skip
    psync(3, status="rolled_back", window_start=now - timedelta(hours=3),
          window_end=now - timedelta(hours=2))  # fmt: skip
    incident = services.status_incident_draft(upgrade_id=3, lifecycle="rolled_back")
    services.status_incident_publish(incident_id=incident.pk, name="Slow logins", body="Status: ok",
                                     impact="minor", status="monitoring", by=manager)  # fmt: skip


def _queries(client, url: str) -> int:
    headers = {"HX-Request": "true"} if "part=live" in url else {}
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, url
    return len(captured)


def test_public_endpoints__no_history_then_10000_upgrades__same_pinned_query_count(
    client, seeded, manager
):
    # Given today's status and no past
    _today(manager)
    before = {url: _queries(client, url) for url in PINNED}

    # When three years of history (10,000 upgrades, 40,000 updates) lie behind it
    long_history(10_000, 4)

    # Then every public answer makes the same queries as before, as pinned
    after = {url: _queries(client, url) for url in PINNED}
    assert after == before == PINNED


def test_public_endpoints__long_history__answers_hold_bounded_sets(client, seeded, manager):
    _today(manager)
    long_history(2_000, 4)
    assert len(client.get("/status/api/v2/incidents.json").json()["incidents"]) == 50
    assert len(
        client.get("/status/api/v2/scheduled-maintenances.json").json()["scheduled_maintenances"]
    ) == 50  # fmt: skip
    summary = client.get("/status/api/v2/summary.json").json()
    assert {m["name"] for m in summary["scheduled_maintenances"]} == {
        "CVE-2026-1234 patch 1", "CVE-2026-1234 patch 2",
    }  # fmt: skip
    page = selectors.status_page_get()
    assert [m.upgrade_id for m in page.recent] == [3]  # only the last few days
    assert page.current[0].upgrade_id == 1
    assert client.get("/status/feed.atom").content.decode().count("<entry>") <= 50


def test_history_page__a_month_of_the_past__paginated_by_month(client, seeded, monkeypatch):
    long_history(2_000, 1)
    monkeypatch.setattr(selectors, "HISTORY_PER_PAGE", 5)
    month = (timezone.now() - timedelta(days=60)).strftime("%Y-%m")

    first = client.get(f"/status/history/?month={month}").content.decode()
    second = client.get(f"/status/history/?month={month}&page=2").content.decode()

    assert first.count('id="upgrade-') == 5 and "Older →" in first
    assert second.count('id="upgrade-') == 5 and "← Newer" in second
    assert "← " in first and 'rel="prev"' in first  # the month before, one link away
    for bad in ("month=banana", "month=2026-13", "page=0", "page=x"):
        assert client.get(f"/status/history/?{bad}").status_code == 400, bad
