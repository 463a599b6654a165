"""The status page's mirror of upgrades, environment health, and the Statuspage v2 JSON."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from comms import selectors, services
from comms.models import (
    CommsEvent,
    ComponentHealth,
    Delivery,
    Message,
    StatusIncident,
    Subscriber,
)
from tests.comms.conftest import sync

pytestmark = pytest.mark.django_db

DOCUMENT = {
    "version": "1.5.0",
    "services": [
        {"name": "api", "status": "healthy", "error_rate": 0.001, "latency_p95_ms": 120,
         "availability": 0.9995},
        {"name": "redemption", "status": "degraded", "error_rate": 0.05, "latency_p95_ms": 900,
         "availability": 0.999},
    ],
}  # fmt: skip

# --- Statuspage v2 public API shapes (field names and value sets as Statuspage has them) ---
PAGE = {"id", "name", "url", "time_zone", "updated_at"}
COMPONENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
}
INCIDENT = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "monitoring_at",
    "resolved_at",
    "impact",
    "shortlink",
    "started_at",
    "page_id",
    "incident_updates",
    "components",
}
MAINTENANCE = INCIDENT | {"scheduled_for", "scheduled_until"}
UPDATE = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
}
INDICATORS = {"none", "minor", "major", "critical"}
COMPONENT_STATUSES = {
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}  # fmt: skip


def assert_timestamp(value, nullable=False):
    if value is None and nullable:
        return
    assert isinstance(value, str) and value.endswith("Z"), value


def assert_update(update, parent_id, statuses):
    assert set(update) == UPDATE
    assert update["incident_id"] == parent_id and update["status"] in statuses
    assert isinstance(update["body"], str)


def assert_summary_shape(data):
    assert set(data) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert set(data["page"]) == PAGE
    assert set(data["status"]) == {"indicator", "description"}
    assert data["status"]["indicator"] in INDICATORS
    for component in data["components"]:
        assert set(component) == COMPONENT and component["status"] in COMPONENT_STATUSES
        assert_timestamp(component["updated_at"])
    for incident in data["incidents"]:
        assert set(incident) == INCIDENT and incident["status"] in INCIDENT_STATUSES
        assert incident["impact"] in INDICATORS
        for update in incident["incident_updates"]:
            assert_update(update, incident["id"], INCIDENT_STATUSES)
    for m in data["scheduled_maintenances"]:
        assert set(m) == MAINTENANCE and m["status"] in MAINTENANCE_STATUSES
        assert_timestamp(m["scheduled_for"])
        assert_timestamp(m["scheduled_until"])
        for update in m["incident_updates"]:
            assert_update(update, m["id"], MAINTENANCE_STATUSES)


@pytest.mark.parametrize(
    ("lifecycle", "status", "public"),
    [("draft", "scheduled", False), ("scheduled", "scheduled", True),
     ("in_progress", "in_progress", True), ("monitoring", "verifying", True),
     ("completed", "completed", True), ("rolled_back", "completed", True),
     ("failed", "completed", True), ("cancelled", "completed", False)],
)  # fmt: skip
def test_status_maintenance_sync__lifecycle__mapped_to_statuspage(
    seeded, lifecycle, status, public
):
    m = sync(status=lifecycle)
    assert (m.status, m.is_public) == (status, public)
    assert CommsEvent.objects.filter(kind="maintenance_created", subject_id=m.pk).exists()


def test_status_maintenance_sync__unknown_status_or_window_backwards__invalid_input(seeded):
    with pytest.raises(services.InvalidInput, match="Unknown upgrade status"):
        sync(status="paused")
    now = timezone.now()
    with pytest.raises(services.InvalidInput, match="ends before it starts"):
        sync(window_start=now, window_end=now - timedelta(hours=1))


def test_status_maintenance_sync__progresses__updates_posted_once_per_status_change(seeded):
    sync(status="scheduled")
    sync(status="in_progress", phase_title="Deploy", progress_percent=40)
    sync(status="in_progress", phase_title="Deploy", progress_percent=40)  # no change
    m = sync(status="monitoring", phase_title="Verify", progress_percent=80)

    assert [u.status for u in m.updates.order_by("created_at", "id")] == [
        "scheduled", "in_progress", "verifying",
    ]  # fmt: skip
    assert m.started_at is not None and m.progress_percent == 80


def test_status_maintenance_sync__rolled_back__nothing_public_until_a_draft_is_published(
    seeded, manager
):
    sync(status="in_progress")
    m = sync(status="rolled_back")

    # The sync alone opens no incident; the rollback's reaction drafts one, unpublished
    assert not StatusIncident.objects.exists() and m.completed_at
    incident = services.status_incident_draft(upgrade_id=1, lifecycle="rolled_back")
    assert incident.is_draft and (incident.status, incident.impact) == ("monitoring", "none")
    assert selectors.incidents_json()["incidents"] == []

    services.status_incident_publish(incident_id=incident.pk, name=incident.name,
                                     body=incident.body, impact="minor", status="monitoring",
                                     by=manager)  # fmt: skip
    assert [i["id"] for i in selectors.incidents_json()["incidents"]] == [incident.public_id]

    services.status_incident_resolve(upgrade_id=1, body="All good again.", by=manager)
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolved_at
    with pytest.raises(services.Conflict):
        services.status_incident_resolve(upgrade_id=1, body="", by=manager)


def test_status_maintenance_sync__window_moves_starts_ends__subscribers_noticed_once_each(seeded):
    Subscriber.objects.create(email="fan@example.com", confirmed_at=timezone.now())
    now = timezone.now()
    sync(status="scheduled")

    sync(status="scheduled", window_start=now + timedelta(days=1),
         window_end=now + timedelta(days=1, hours=1))  # fmt: skip
    sync(status="in_progress", window_start=now + timedelta(days=1),
         window_end=now + timedelta(days=1, hours=1))  # fmt: skip
    sync(status="completed", window_start=now + timedelta(days=1),
         window_end=now + timedelta(days=1, hours=1))  # fmt: skip

    notices = list(Message.objects.order_by("id").values_list("template_key", "subject"))
    assert [k for k, _ in notices] == ["window_moved", "window_started", "window_ended"]
    assert notices[2][1] == "Maintenance ended: Upgrade to 1.5.1 - Completed"
    moved = Message.objects.get(template_key="window_moved")
    assert "Was: " in moved.body and "Now: " in moved.body
    assert Delivery.objects.filter(recipient="fan@example.com").count() == 3


def test_status_windows_check__start_and_end_pass__noticed_once(seeded):
    Subscriber.objects.create(email="fan@example.com", confirmed_at=timezone.now())
    past = timezone.now() - timedelta(minutes=1)
    sync(status="scheduled", window_start=past - timedelta(hours=1), window_end=past)

    assert services.status_windows_check() == {"started": 1, "ended": 1}
    assert services.status_windows_check() == {"started": 0, "ended": 0}
    assert set(Message.objects.values_list("template_key", flat=True)) == {
        "window_started", "window_ended",
    }  # fmt: skip


def test_status_health_record__document_then_unreachable__components_follow(seeded):
    services.status_health_record(environment_key="staging", environment_name="Staging",
                                  document=DOCUMENT, error="")  # fmt: skip
    statuses = dict(ComponentHealth.objects.values_list("name", "status"))
    assert statuses == {"api": "operational", "redemption": "degraded_performance"}
    assert ComponentHealth.objects.get(name="api").figures["latency_p95_ms"] == 120

    env = services.status_health_record(environment_key="staging", environment_name="Staging",
                                        document=None, error="Connection refused")  # fmt: skip

    assert env.error == "Connection refused"
    assert set(ComponentHealth.objects.values_list("status", flat=True)) == {"major_outage"}
    assert CommsEvent.objects.filter(kind="health_changed").count() == 2


def test_status_health_refresh__local_status_url__fetched_and_recorded(seeded, demo_mycelia):
    result = services.status_health_refresh(environments=[
        {"key": "demo", "name": "Demo", "status_url": f"{demo_mycelia.url}/ops/status.json",
         "timeout": 2},
        {"key": "gone", "name": "Gone", "status_url": "http://127.0.0.1:9/ops/status.json",
         "timeout": 1},
    ])  # fmt: skip
    assert result["demo"] == "ok" and result["gone"] != "ok"
    assert ComponentHealth.objects.filter(environment_key="demo", status="operational").exists()


def test_summary_json__upgrade_lifecycle__shape_and_values_as_statuspage(seeded, manager):
    services.status_health_record(environment_key="staging", environment_name="Staging",
                                  document=DOCUMENT, error="")  # fmt: skip
    sync(upgrade_id=1, status="in_progress", phase_title="Deploy", progress_percent=50)
    sync(upgrade_id=2, status="scheduled")
    sync(upgrade_id=3, status="in_progress")
    sync(upgrade_id=3, status="failed")
    sync(upgrade_id=4, status="draft")

    data = selectors.summary_json()

    assert_summary_shape(data)
    assert {m["status"] for m in data["scheduled_maintenances"]} == {"in_progress", "scheduled"}
    assert {m["name"] for m in data["scheduled_maintenances"]} == {
        "Upgrade to 1.5.1",
        "Upgrade to 1.5.2",
    }
    assert data["incidents"] == []  # a failure drafts an incident; it is not published
    assert data["status"]["indicator"] == "none"  # degraded, but under maintenance
    assert {c["status"] for c in data["components"]} == {"under_maintenance"}
    in_progress = next(m for m in data["scheduled_maintenances"] if m["status"] == "in_progress")
    assert in_progress["incident_updates"][0]["status"] == "in_progress"
    assert in_progress["impact"] == "maintenance"


def test_status_json__nothing_wrong__none_and_all_operational(seeded):
    services.status_health_record(environment_key="staging", environment_name="Staging",
                                  document={"services": [DOCUMENT["services"][0]]}, error="")  # fmt: skip
    data = selectors.status_json()
    assert set(data) == {"page", "status"} and set(data["page"]) == PAGE
    assert data["status"] == {"indicator": "none", "description": "All Systems Operational"}
