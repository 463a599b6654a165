"""Reads the status page, its JSON (Statuspage v2 public API shapes) and its feed share."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Prefetch, QuerySet
from django.utils import timezone

from comms.models import (
    ACTIVE_MAINTENANCE,
    ComponentHealth,
    ComponentStatus,
    EnvironmentHealth,
    IncidentStatus,
    MaintenanceStatus,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
)
from comms.services._outgoing import site_url

RESOLVED = (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)
_COMPONENT_RANK = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 0,
    ComponentStatus.DEGRADED_PERFORMANCE: 1,
    ComponentStatus.PARTIAL_OUTAGE: 2,
    ComponentStatus.MAJOR_OUTAGE: 3,
}
_IMPACT_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}
INDICATORS = ("none", "minor", "major", "critical")
DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
}
MAINTENANCE_DESCRIPTION = "Service Under Maintenance"


def page_public() -> bool:
    return bool(getattr(settings, "STATUS_PAGE_PUBLIC", True))


def _recent_days() -> int:
    return int(getattr(settings, "STATUS_PAGE_RECENT_DAYS", 7))


def maintenances_public() -> QuerySet[StatusMaintenance]:
    updates = StatusUpdate.objects.order_by("-created_at", "-id")
    return (
        StatusMaintenance.objects.filter(is_public=True)
        .select_related("incident")
        .prefetch_related(Prefetch("updates", queryset=updates))
    )


def _maintenance_environments() -> set[str]:
    return set(
        StatusMaintenance.objects.filter(is_public=True, status__in=ACTIVE_MAINTENANCE).values_list(
            "environment_key", flat=True
        )
    )


def component_status(component: ComponentHealth, under_maintenance: set[str]) -> str:
    """What the page shows: an operational or degraded service of an environment under
    maintenance reads under_maintenance."""
    if component.environment_key in under_maintenance and component.status in (
        ComponentStatus.OPERATIONAL,
        ComponentStatus.DEGRADED_PERFORMANCE,
    ):
        return ComponentStatus.UNDER_MAINTENANCE
    return component.status


@dataclass
class StatusPage:
    indicator: str
    description: str
    current: list[StatusMaintenance]
    scheduled: list[StatusMaintenance]
    recent: list[StatusMaintenance]
    incidents: list[StatusIncident]
    environments: list[dict[str, Any]]
    components: list[ComponentHealth] = field(default_factory=list)
    updated_at: datetime | None = None


def status_page_get() -> StatusPage:
    now = timezone.now()
    maintenances = list(maintenances_public().order_by("window_start", "id"))
    under = {m.environment_key for m in maintenances if m.status in ACTIVE_MAINTENANCE}
    components = list(ComponentHealth.objects.all())
    for component in components:
        component.shown_status = component_status(component, under)
    incidents = [
        m.incident
        for m in maintenances
        if hasattr(m, "incident") and m.incident.status not in RESOLVED
    ]
    indicator = _indicator(components, incidents, under)
    description = DESCRIPTIONS[indicator]
    if indicator == "none" and under:
        description = MAINTENANCE_DESCRIPTION
    recent_since = now - timedelta(days=_recent_days())
    health = {h.environment_key: h for h in EnvironmentHealth.objects.all()}
    environments = []
    for key in sorted({c.environment_key for c in components} | set(health)):
        env_components = [c for c in components if c.environment_key == key]
        row = health.get(key)
        environments.append(
            {
                "key": key,
                "name": row.environment_name if row else env_components[0].environment_name,
                "health": row,
                "components": env_components,
                "under_maintenance": key in under,
            }
        )
    return StatusPage(
        indicator=indicator,
        description=description,
        current=[m for m in maintenances if m.status in ACTIVE_MAINTENANCE],
        scheduled=[m for m in maintenances if m.status == MaintenanceStatus.SCHEDULED],
        recent=sorted(
            (m for m in maintenances if m.completed_at and m.completed_at >= recent_since),
            key=lambda m: m.completed_at,
            reverse=True,
        )[:10],
        incidents=incidents,
        environments=environments,
        components=components,
        updated_at=last_change(),
    )


def _indicator(
    components: list[ComponentHealth], incidents: list[StatusIncident], under: set[str]
) -> str:
    rank = max((_COMPONENT_RANK.get(component_status(c, under), 0) for c in components), default=0)
    rank = max([rank] + [_IMPACT_RANK.get(i.impact, 0) for i in incidents])
    return INDICATORS[rank]


def last_change() -> datetime | None:
    stamps = [
        StatusMaintenance.objects.filter(is_public=True).aggregate(at=Max("updated_at"))["at"],
        StatusUpdate.objects.aggregate(at=Max("created_at"))["at"],
        ComponentHealth.objects.aggregate(at=Max("updated_at"))["at"],
        StatusIncident.objects.aggregate(at=Max("updated_at"))["at"],
    ]
    stamps = [s for s in stamps if s]
    return max(stamps) if stamps else None


# --- Statuspage v2 shapes --------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_id() -> str:
    return str(getattr(settings, "STATUS_PAGE_ID", "mycelia"))


def page_json() -> dict[str, Any]:
    return {
        "id": page_id(),
        "name": str(getattr(settings, "STATUS_PAGE_NAME", "Mycelia")),
        "url": site_url("/status/"),
        "time_zone": "Etc/UTC",
        "updated_at": iso(last_change() or timezone.now()),
    }


def component_json(component: ComponentHealth, under: set[str]) -> dict[str, Any]:
    return {
        "id": component.public_id,
        "name": f"{component.environment_name} · {component.name}",
        "status": component_status(component, under),
        "created_at": iso(component.created_at),
        "updated_at": iso(component.updated_at),
        "position": component.position + 1,
        "description": None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": page_id(),
        "group": False,
        "only_show_if_degraded": False,
    }


def update_json(update: StatusUpdate, parent_id: str) -> dict[str, Any]:
    return {
        "id": update.public_id,
        "status": update.status,
        "body": update.body,
        "incident_id": parent_id,
        "created_at": iso(update.created_at),
        "updated_at": iso(update.created_at),
        "display_at": iso(update.created_at),
        "affected_components": None,
        "deliver_notifications": update.message_id is not None,
        "custom_tweet": None,
        "tweet_id": None,
    }


def maintenance_json(
    m: StatusMaintenance, components: list[ComponentHealth], under: set[str]
) -> dict[str, Any]:
    updates = [u for u in m.updates.all() if u.incident_id is None]
    return {
        "id": m.public_id,
        "name": m.title,
        "status": m.status,
        "created_at": iso(m.created_at),
        "updated_at": iso(m.updated_at),
        "monitoring_at": None,
        "resolved_at": iso(m.completed_at) if m.status == MaintenanceStatus.COMPLETED else None,
        "impact": "maintenance",
        "shortlink": site_url(f"/status/#upgrade-{m.upgrade_id}"),
        "started_at": iso(m.started_at or m.window_start or m.created_at),
        "page_id": page_id(),
        "incident_updates": [update_json(u, m.public_id) for u in updates],
        "components": [
            component_json(c, under) for c in components if c.environment_key == m.environment_key
        ],
        "scheduled_for": iso(m.window_start),
        "scheduled_until": iso(m.window_end),
    }


def incident_json(
    incident: StatusIncident, m: StatusMaintenance, components: list[ComponentHealth],
    under: set[str],
) -> dict[str, Any]:  # fmt: skip
    updates = [u for u in m.updates.all() if u.incident_id == incident.pk]
    return {
        "id": incident.public_id,
        "name": incident.name,
        "status": incident.status,
        "created_at": iso(incident.created_at),
        "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(incident.monitoring_at),
        "resolved_at": iso(incident.resolved_at),
        "impact": incident.impact,
        "shortlink": site_url(f"/status/#upgrade-{m.upgrade_id}"),
        "started_at": iso(incident.created_at),
        "page_id": page_id(),
        "incident_updates": [update_json(u, incident.public_id) for u in updates],
        "components": [
            component_json(c, under) for c in components if c.environment_key == m.environment_key
        ],
    }


def status_json() -> dict[str, Any]:
    page = status_page_get()
    return {
        "page": page_json(),
        "status": {"indicator": page.indicator, "description": page.description},
    }


def summary_json() -> dict[str, Any]:
    """As Statuspage's summary: components, unresolved incidents, and upcoming or in-progress
    scheduled maintenances (completed ones are in scheduled_maintenances_json)."""
    page = status_page_get()
    under = {m.environment_key for m in page.current}
    components = page.components
    maintenances = page.current + page.scheduled
    return {
        "page": page_json(),
        "components": [component_json(c, under) for c in components],
        "incidents": [incident_json(i, i.maintenance, components, under) for i in page.incidents],
        "scheduled_maintenances": [maintenance_json(m, components, under) for m in maintenances],
        "status": {"indicator": page.indicator, "description": page.description},
    }


def scheduled_maintenances_json(limit: int = 50) -> dict[str, Any]:
    """All public maintenances, newest first (Statuspage's scheduled-maintenances.json)."""
    under = _maintenance_environments()
    components = list(ComponentHealth.objects.all())
    maintenances = list(maintenances_public().order_by("-created_at", "-id")[:limit])
    return {
        "page": page_json(),
        "scheduled_maintenances": [maintenance_json(m, components, under) for m in maintenances],
    }


def incidents_json(limit: int = 50) -> dict[str, Any]:
    """The most recent incidents, resolved or not (Statuspage's incidents.json)."""
    under = _maintenance_environments()
    components = list(ComponentHealth.objects.all())
    maintenances = list(
        maintenances_public().filter(incident__isnull=False).order_by("-updated_at")[:limit]
    )
    return {
        "page": page_json(),
        "incidents": [incident_json(m.incident, m, components, under) for m in maintenances],
    }


def updates_recent(limit: int = 50) -> list[StatusUpdate]:
    return list(
        StatusUpdate.objects.filter(maintenance__is_public=True)
        .select_related("maintenance")
        .order_by("-created_at", "-id")[:limit]
    )


def messages_for_upgrade(upgrade_id: int) -> list[dict[str, Any]]:
    """The messages drafted and sent for one upgrade, as plain values (for its report)."""
    from django.db.models import Count, Q

    from comms.models import Message

    rows = (
        Message.objects.filter(upgrade_id=upgrade_id)
        .annotate(
            delivered=Count("deliveries", filter=Q(deliveries__status="sent")),
            failed=Count("deliveries", filter=Q(deliveries__status="failed")),
        )
        .order_by("created_at", "id")
    )
    return [
        {
            "subject": m.subject,
            "template": m.template_key,
            "status": m.status,
            "sent_at": m.sent_at,
            "delivered": m.delivered,
            "failed": m.failed,
        }
        for m in rows
    ]
