"""Issue 12, "made for polling and caches": every public status answer carries a strong ETag
and a short public Cache-Control, answers 304 to If-None-Match while nothing changed, and the
anonymous page is the same bytes for everyone (no CSRF token, no cookie)."""

from __future__ import annotations

import re

import pytest

from tests.comms._status_helpers import health, psync

pytestmark = pytest.mark.django_db

PUBLIC = [
    "/status/",
    "/status/api/v2/status.json",
    "/status/api/v2/summary.json",
    "/status/api/v2/components.json",
    "/status/api/v2/incidents.json",
    "/status/api/v2/incidents/unresolved.json",
    "/status/api/v2/scheduled-maintenances.json",
    "/status/api/v2/scheduled-maintenances/upcoming.json",
    "/status/api/v2/scheduled-maintenances/active.json",
    "/status/feed.atom",
    "/status/calendar.ics",
    "/status/history/",
]
CACHE_CONTROL = re.compile(r"^public, max-age=([1-9]|[1-5][0-9]), stale-while-revalidate=\d+$")


@pytest.mark.parametrize("url", PUBLIC)
def test_public_answer__anonymous__strong_etag_public_cache_and_304(client, seeded, url):
    psync(1, status="in_progress")
    first = client.get(url)

    etag = first["ETag"]
    assert first.status_code == 200 and re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: no W/
    assert CACHE_CONTROL.match(first["Cache-Control"]), first["Cache-Control"]
    assert not first.cookies
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert CACHE_CONTROL.match(again["Cache-Control"])


def test_public_answer__something_changes__new_etag_and_full_answer(client, seeded):
    psync(1, status="in_progress", progress_percent=10)
    etag = client.get("/status/api/v2/summary.json")["ETag"]

    psync(1, status="in_progress", progress_percent=60, phase_title="Upgrade Process")
    response = client.get("/status/api/v2/summary.json", headers={"If-None-Match": etag})

    assert response.status_code == 200 and response["ETag"] != etag


def test_live_poll__htmx_partial__cached_and_304_like_the_page(client, seeded):
    psync(1, status="in_progress")
    headers = {"HX-Request": "true"}
    first = client.get("/status/?part=live", headers=headers)
    assert first.status_code == 200 and 'id="live"' in first.content.decode()
    assert "HX-Request" in first["Vary"]
    again = client.get("/status/?part=live", headers={**headers, "If-None-Match": first["ETag"]})
    assert again.status_code == 304


def test_status_page__anonymous__same_bytes_for_everyone_and_polls(client, seeded):
    from django.test import Client

    health("production", "Production", public=True)
    psync(1, status="in_progress")
    one, two = client.get("/status/"), Client().get("/status/")
    html = one.content.decode()
    assert one.content == two.content and one["ETag"] == two["ETag"]
    assert "csrfmiddlewaretoken" not in html and "X-CSRFToken" not in html
    assert 'hx-trigger="every 5s"' in html and "[" not in html.split('hx-trigger="')[1][:20]


def test_status_page__signed_in__private_no_cache_with_the_token(stakeholder_client, seeded):
    response = stakeholder_client.get("/status/")
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-cache"
    assert "X-CSRFToken" in response.content.decode()  # htmx posts from a signed-in page work


def test_subscribe__no_csrf_token_on_the_public_page__still_accepted(seeded):
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    response = csrf_client.post("/status/subscribe", {"email": "fan@example.com"})
    assert response.status_code == 302
