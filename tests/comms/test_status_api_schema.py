"""Issue 12, "Statuspage v2, complete": every endpoint of Statuspage's public API v2 is served
under /status/api/v2/ and validated against a JSON Schema written from Statuspage's
documentation (https://metastatuspage.com/api/v2, "Status API" reference: page, status,
components, incidents, incident_updates, scheduled_maintenances)."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from comms import services
from tests.comms._status_helpers import health, long_history, psync

pytestmark = pytest.mark.django_db

TIMESTAMP = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$"}
NULLABLE_TIMESTAMP = {"anyOf": [TIMESTAMP, {"type": "null"}]}
NULLABLE_STRING = {"type": ["string", "null"]}


def _object(properties: dict, *, extra: bool = False) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": sorted(properties),
        "additionalProperties": extra,
    }


PAGE = _object({
    "id": {"type": "string", "minLength": 1}, "name": {"type": "string"},
    "url": {"type": "string", "pattern": "^https?://"}, "time_zone": {"type": "string"},
    "updated_at": TIMESTAMP,
})  # fmt: skip
STATUS = _object({
    "indicator": {"enum": ["none", "minor", "major", "critical"]},
    "description": {"type": "string", "minLength": 1},
})  # fmt: skip
COMPONENT = _object({
    "id": {"type": "string"}, "name": {"type": "string"},
    "status": {"enum": ["operational", "degraded_performance", "partial_outage", "major_outage",
                        "under_maintenance"]},
    "created_at": TIMESTAMP, "updated_at": TIMESTAMP, "position": {"type": "integer"},
    "description": NULLABLE_STRING, "showcase": {"type": "boolean"},
    "start_date": NULLABLE_STRING, "group_id": NULLABLE_STRING, "page_id": {"type": "string"},
    "group": {"type": "boolean"}, "only_show_if_degraded": {"type": "boolean"},
})  # fmt: skip


def _update(statuses: list[str]) -> dict:
    return _object({
        "id": {"type": "string"}, "status": {"enum": statuses}, "body": {"type": "string"},
        "incident_id": {"type": "string"}, "created_at": TIMESTAMP, "updated_at": TIMESTAMP,
        "display_at": TIMESTAMP, "affected_components": {"type": ["array", "null"]},
        "deliver_notifications": {"type": "boolean"}, "custom_tweet": NULLABLE_STRING,
        "tweet_id": NULLABLE_STRING,
    })  # fmt: skip


INCIDENT_STATUSES = ["investigating", "identified", "monitoring", "resolved", "postmortem"]
MAINTENANCE_STATUSES = ["scheduled", "in_progress", "verifying", "completed"]
_COMMON = {
    "id": {"type": "string"}, "name": {"type": "string"}, "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP, "monitoring_at": NULLABLE_TIMESTAMP,
    "resolved_at": NULLABLE_TIMESTAMP, "shortlink": {"type": "string"},
    "started_at": TIMESTAMP, "page_id": {"type": "string"},
    "components": {"type": "array", "items": COMPONENT},
}  # fmt: skip
INCIDENT = _object({
    **_COMMON, "status": {"enum": INCIDENT_STATUSES},
    "impact": {"enum": ["none", "minor", "major", "critical"]},
    "incident_updates": {"type": "array", "items": _update(INCIDENT_STATUSES)},
})  # fmt: skip
MAINTENANCE = _object({
    **_COMMON, "status": {"enum": MAINTENANCE_STATUSES},
    "impact": {"enum": ["none", "maintenance", "minor", "major", "critical"]},
    "incident_updates": {"type": "array", "items": _update(MAINTENANCE_STATUSES)},
    "scheduled_for": TIMESTAMP, "scheduled_until": TIMESTAMP,
})  # fmt: skip


def _list(key: str, item: dict) -> dict:
    return {"type": "array", "items": item}


SCHEMAS = {
    "status.json": _object({"page": PAGE, "status": STATUS}),
    "summary.json": _object(
        {
            "page": PAGE,
            "status": STATUS,
            "components": _list("components", COMPONENT),
            "incidents": _list("incidents", INCIDENT),
            "scheduled_maintenances": _list("scheduled_maintenances", MAINTENANCE),
        }
    ),  # fmt: skip
    "components.json": _object({"page": PAGE, "components": _list("c", COMPONENT)}),
    "incidents.json": _object({"page": PAGE, "incidents": _list("i", INCIDENT)}),
    "incidents/unresolved.json": _object({"page": PAGE, "incidents": _list("i", INCIDENT)}),
    "scheduled-maintenances.json": _object(
        {"page": PAGE, "scheduled_maintenances": _list("m", MAINTENANCE)}
    ),
    "scheduled-maintenances/upcoming.json": _object(
        {"page": PAGE, "scheduled_maintenances": _list("m", MAINTENANCE)}
    ),
    "scheduled-maintenances/active.json": _object(
        {"page": PAGE, "scheduled_maintenances": _list("m", MAINTENANCE)}
    ),
}


def _everything(manager) -> None:
    health("production", "Production", public=True, redemption="degraded")
    psync(1, status="in_progress", phase_title="Upgrade Process")
    psync(2, status="monitoring")
    psync(3, status="scheduled")
    psync(4, status="in_progress")
    psync(4, status="rolled_back")
    psync(5, status="in_progress")
    psync(5, status="failed")
    for upgrade_id, resolve in ((4, True), (5, False)):
        incident = services.status_incident_draft(
            upgrade_id=upgrade_id, lifecycle="rolled_back" if upgrade_id == 4 else "failed"
        )
        services.status_incident_publish(incident_id=incident.pk, name="Something was off",
                                         body="Status: looking", impact="minor",
                                         status="identified", by=manager)  # fmt: skip
        if resolve:
            services.status_incident_post(incident_id=incident.pk, status="resolved", body="",
                                          by=manager)  # fmt: skip
    long_history(30, 2)


@pytest.mark.parametrize("endpoint", sorted(SCHEMAS))
def test_statuspage_v2__each_endpoint__valid_against_the_documented_schema(
    client, seeded, manager, endpoint
):
    _everything(manager)
    response = client.get(f"/status/api/v2/{endpoint}")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    data = response.json()
    errors = sorted(Draft202012Validator(SCHEMAS[endpoint]).iter_errors(data), key=str)
    assert errors == [], [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    lists = [v for k, v in data.items() if isinstance(v, list)]
    assert all(lists), f"{endpoint}: every list should hold something in this test"


def test_statuspage_v2__empty_page__valid_too(client, db):
    for endpoint, schema in SCHEMAS.items():
        data = client.get(f"/status/api/v2/{endpoint}").json()
        assert list(Draft202012Validator(schema).iter_errors(data)) == [], endpoint


def test_statuspage_v2__semantics__each_list_holds_what_its_name_says(client, seeded, manager):
    _everything(manager)

    def names(endpoint: str, key: str) -> list[str]:
        return sorted(i["status"] for i in client.get(f"/status/api/v2/{endpoint}").json()[key])

    assert names("incidents/unresolved.json", "incidents") == ["identified"]
    assert names("incidents.json", "incidents")[:2] == ["identified", "resolved"]
    assert names("scheduled-maintenances/upcoming.json", "scheduled_maintenances") == ["scheduled"]
    assert names("scheduled-maintenances/active.json", "scheduled_maintenances") == [
        "in_progress", "verifying",
    ]  # fmt: skip
    assert "completed" in names("scheduled-maintenances.json", "scheduled_maintenances")
