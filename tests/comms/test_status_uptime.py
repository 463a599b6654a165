"""Issue 12, "uptime history": per service, 90 days of daily bars from the health samples,
kept as daily roll-ups written by the scheduler; a request never reads the samples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from comms import services
from comms.models import ComponentDay, ComponentSample
from tests.comms._status_helpers import health

pytestmark = pytest.mark.django_db


def _sample(at: datetime, status: str, name: str = "api") -> None:
    ComponentSample.objects.create(environment_key="production", name=name, at=at, status=status)


def test_health_record__each_look__one_sample_per_service(seeded):
    health("production", "Production", public=True, api="degraded")
    health("production", "Production", public=True)
    assert ComponentSample.objects.filter(name="api").count() == 2
    services.status_health_record(environment_key="production", environment_name="Production",
                                  document=None, error="Connection refused")  # fmt: skip
    assert set(ComponentSample.objects.order_by("-id").values_list("status", flat=True)[:2]) == {
        "major_outage"
    }


def test_uptime_rollup__samples_of_three_days__daily_rows_then_old_samples_pruned(seeded):
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    for hour in range(24):  # 8 March: one hour of major outage in 24 looks
        _sample(
            datetime(2026, 3, 8, hour, tzinfo=UTC), "major_outage" if hour == 3 else "operational"
        )
    for hour in range(10):  # 9 March: partial outage half the time
        _sample(
            datetime(2026, 3, 9, hour, tzinfo=UTC), "partial_outage" if hour % 2 else "operational"
        )
    _sample(datetime(2026, 3, 10, 1, tzinfo=UTC), "degraded_performance")

    assert services.status_uptime_rollup(now=now) == {"days": 3, "pruned": 24}
    days = {d.day.day: d for d in ComponentDay.objects.all()}
    assert (days[8].samples, days[8].major, days[8].level) == (24, 1, "major")
    assert days[8].uptime == pytest.approx(23 / 24)
    assert days[9].uptime == pytest.approx(1 - 0.3 * 5 / 10) and days[9].level == "partial"
    assert days[10].level == "degraded" and days[10].uptime == 1.0
    # The samples of closed days are gone; rolling up again changes nothing
    assert ComponentSample.objects.count() == 11
    services.status_uptime_rollup(now=now)
    assert ComponentDay.objects.get(day=datetime(2026, 3, 9).date()).samples == 10


def test_status_page__uptime_bars__ninety_days_from_rollups_never_samples(client, seeded):
    health("production", "Production", public=True)
    today = datetime.now(UTC).date()
    ComponentDay.objects.create(environment_key="production", name="api",
                                day=today - timedelta(days=1), samples=100, major=10)  # fmt: skip
    ComponentDay.objects.create(environment_key="production", name="api",
                                day=today - timedelta(days=200), samples=100, major=100)  # fmt: skip

    with CaptureQueriesContext(connection) as captured:
        html = client.get("/status/").content.decode()

    assert not any("comms_componentsample" in q["sql"] for q in captured.captured_queries)
    api = html[html.index(">api<") :]
    bars = api[api.index('class="uptime"') : api.index("uptime-legend")]
    assert bars.count('class="bar ') == 90
    assert bars.count('class="bar major"') == 1 and bars.count('class="bar none"') == 89
    assert "90.0%" not in api and "90% uptime" in api  # 10 of 100 looks down, one day of data
    redemption = html[html.index(">redemption<") :]
    assert "no data yet" in redemption[: redemption.index("</li>")]


def test_uptime_rollup__is_a_beat_task(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"comms.status_uptime_rollup", "comms.status_reminders_send"} <= tasks
