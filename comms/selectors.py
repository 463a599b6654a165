"""Reads the status page, its JSON (Statuspage v2 public API shapes), feed and calendar share.

Every read is a bounded slice, whatever the history: what is active, upcoming (windows from a
few days ago on), recent (ended in the last few days), or the newest N; each walks an index
(see StatusMaintenance.Meta.indexes). Only environments shown on the status page
(StatusEnvironment.is_public) and only published incidents are read for the public.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from comms.models import (
    ACTIVE_MAINTENANCE,
    ComponentDay,
    ComponentHealth,
    ComponentStatus,
    EnvironmentHealth,
    IncidentStatus,
    MaintenanceStatus,
    StatusEnvironment,
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
# How many rows each slice reads at most.
PAGE_ACTIVE = 20
PAGE_UPCOMING = 10
PAGE_RECENT = 10
PAGE_INCIDENTS = 20
API_LIMIT = 50
FEED_LIMIT = 50
HISTORY_PER_PAGE = 50
UPTIME_DAYS = 90
CALENDAR_PAST_DAYS = 30
CALENDAR_LIMIT = 500


def page_public() -> bool:
    return bool(getattr(settings, "STATUS_PAGE_PUBLIC", True))


def recent_days() -> int:
    return int(getattr(settings, "STATUS_PAGE_RECENT_DAYS", 7))


# --- words and figures -----------------------------------------------------------------------


def percent_text(value: Any) -> str:
    """0.082 -> "8.2%", 0.9995 -> "99.95%"; a value above 1 is taken as a percent already."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value in (None, "") else str(value)
    number = value * 100 if -1 <= value <= 1 else value
    text = f"{number:.3f}".rstrip("0").rstrip(".")
    return f"{text}%"


def ms_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value in (None, "") else str(value)
    return f"{value:,.0f} ms" if value >= 10 or float(value).is_integer() else f"{value:.1f} ms"


# --- environments and components -------------------------------------------------------------


def public_environment_keys() -> QuerySet:
    """A subquery: the keys of the environments shown on the status page."""
    return StatusEnvironment.objects.filter(is_public=True).values("environment_key")


def component_status(component: ComponentHealth, under_maintenance: set[str]) -> str:
    """What the page shows: an operational or degraded service of an environment under
    maintenance reads under_maintenance."""
    if component.environment_key in under_maintenance and component.status in (
        ComponentStatus.OPERATIONAL,
        ComponentStatus.DEGRADED_PERFORMANCE,
    ):
        return ComponentStatus.UNDER_MAINTENANCE
    return component.status


def components_public(under: set[str]) -> list[ComponentHealth]:
    components = list(ComponentHealth.objects.filter(environment_key__in=public_environment_keys()))
    for c in components:
        c.shown_status = component_status(c, under)
        c.shown_label = ComponentStatus(c.shown_status).label
        figures = c.figures if isinstance(c.figures, dict) else {}
        c.error_rate_text = percent_text(figures.get("error_rate"))
        c.latency_text = ms_text(figures.get("latency_p95_ms"))
        c.availability_text = percent_text(figures.get("availability"))
    return components


def indicator_for(
    components: list[ComponentHealth], incidents: list[StatusIncident], under: set[str]
) -> tuple[str, str]:
    """As Statuspage blends it: the worst of the components' statuses and the impacts of the
    unresolved published incidents; "Service Under Maintenance" when nothing is wrong but a
    maintenance is in progress."""
    rank = max((_COMPONENT_RANK.get(c.shown_status, 0) for c in components), default=0)
    open_incidents = [i for i in incidents if i.status not in RESOLVED]
    rank = max([rank] + [_IMPACT_RANK.get(i.impact, 0) for i in open_incidents])
    indicator = INDICATORS[rank]
    description = DESCRIPTIONS[indicator]
    if indicator == "none" and under:
        description = MAINTENANCE_DESCRIPTION
    return indicator, description


# --- maintenances and incidents: bounded slices ----------------------------------------------


def _public() -> QuerySet[StatusMaintenance]:
    return StatusMaintenance.objects.filter(is_public=True)


def maintenances_active(limit: int = PAGE_ACTIVE) -> list[StatusMaintenance]:
    return list(
        _public().filter(status__in=ACTIVE_MAINTENANCE).order_by("window_start", "id")[:limit]
    )


def maintenances_upcoming(now: datetime, limit: int = PAGE_UPCOMING) -> list[StatusMaintenance]:
    """Scheduled windows from a few days ago on (an overdue one stays a few days)."""
    since = now - timedelta(days=recent_days())
    return list(
        _public()
        .filter(status=MaintenanceStatus.SCHEDULED, window_start__gte=since)
        .order_by("window_start", "id")[:limit]
    )


def maintenances_recent(now: datetime, limit: int = PAGE_RECENT) -> list[StatusMaintenance]:
    since = now - timedelta(days=recent_days())
    return list(_public().filter(completed_at__gte=since).order_by("-completed_at", "-id")[:limit])


def maintenances_latest(limit: int = API_LIMIT) -> list[StatusMaintenance]:
    return list(_public().order_by("-created_at", "-id")[:limit])


def attach_updates(maintenances: list[StatusMaintenance]) -> None:
    """One query: each maintenance's own updates (not its incident's), newest first, as
    `m.public_updates`."""
    by_id: dict[int, list[StatusUpdate]] = {m.pk: [] for m in maintenances}
    if by_id:
        # By the maintenances' key only (no LIMIT to tempt the planner into walking the
        # created_at index of the whole history); their incidents' updates are left out here.
        rows = StatusUpdate.objects.filter(maintenance_id__in=list(by_id)).order_by(
            "-created_at", "-id"
        )
        for u in rows:
            if u.incident_id is None:
                by_id[u.maintenance_id].append(u)
    for m in maintenances:
        m.public_updates = by_id[m.pk]
        ended = m.public_label == "Ended"
        for u in m.public_updates:
            # An update of a window that ended without completing says so, not "Completed".
            u.shown_label = "Ended" if ended and u.status == "completed" else u.status_label


def _incidents() -> QuerySet[StatusIncident]:
    return StatusIncident.objects.filter(
        published_at__isnull=False, dismissed_at__isnull=True, maintenance__is_public=True
    ).select_related("maintenance")


def incidents_unresolved(limit: int = PAGE_INCIDENTS) -> list[StatusIncident]:
    return list(
        _incidents().filter(resolved_at__isnull=True).order_by("-published_at", "-id")[:limit]
    )


def incidents_page(now: datetime, limit: int = PAGE_INCIDENTS) -> list[StatusIncident]:
    """Unresolved, and resolved in the last few days."""
    since = now - timedelta(days=recent_days())
    return list(
        _incidents()
        .filter(Q(resolved_at__isnull=True) | Q(resolved_at__gte=since))
        .order_by("-published_at", "-id")[:limit]
    )


def incidents_latest(limit: int = API_LIMIT) -> list[StatusIncident]:
    return list(_incidents().order_by("-published_at", "-id")[:limit])


def attach_incident_updates(incidents: list[StatusIncident]) -> None:
    by_id: dict[int, list[StatusUpdate]] = {i.pk: [] for i in incidents}
    if by_id:
        rows = StatusUpdate.objects.filter(incident_id__in=list(by_id)).order_by(
            "-created_at", "-id"
        )
        for u in rows:
            by_id[u.incident_id].append(u)
    for i in incidents:
        i.public_updates = by_id[i.pk]


def _under_maintenance(active: list[StatusMaintenance]) -> set[str]:
    return {m.environment_key for m in active}


def _stamp(*groups: list[Any]) -> datetime | None:
    stamps: list[datetime] = []
    for group in groups:
        for row in group:
            stamps.append(getattr(row, "updated_at", None) or getattr(row, "created_at", None))
            stamps.extend(u.created_at for u in getattr(row, "public_updates", ())[:1])
    stamps = [s for s in stamps if s]
    return max(stamps) if stamps else None


# --- the page --------------------------------------------------------------------------------


@dataclass
class UptimeBar:
    day: date
    level: str  # operational | degraded | partial | major | none
    title: str


@dataclass
class StatusPage:
    indicator: str
    description: str
    current: list[StatusMaintenance]
    scheduled: list[StatusMaintenance]
    recent: list[StatusMaintenance]
    incidents: list[StatusIncident]
    resolved: list[StatusIncident]
    environments: list[dict[str, Any]]
    components: list[ComponentHealth] = field(default_factory=list)
    updated_at: datetime | None = None


def status_page_get(*, now: datetime | None = None) -> StatusPage:
    """The public page: a fixed number of queries, each over a bounded slice."""
    now = now or timezone.now()
    current = maintenances_active()
    under = _under_maintenance(current)
    scheduled = maintenances_upcoming(now)
    recent = maintenances_recent(now)
    attach_updates(current + scheduled + recent)
    components = components_public(under)
    incidents = incidents_page(now)
    attach_incident_updates(incidents)
    indicator, description = indicator_for(components, incidents, under)
    uptime_attach(components, today=now.astimezone(UTC).date())
    keys = sorted({c.environment_key for c in components})
    health = {
        h.environment_key: h for h in EnvironmentHealth.objects.filter(environment_key__in=keys)
    }
    environments = []
    for key in keys:
        env_components = [c for c in components if c.environment_key == key]
        environments.append(
            {
                "key": key,
                "name": env_components[0].environment_name,
                "health": health.get(key),
                "components": env_components,
                "under_maintenance": key in under,
            }
        )
    return StatusPage(
        indicator=indicator,
        description=description,
        current=current,
        scheduled=scheduled,
        recent=recent,
        incidents=[i for i in incidents if i.status not in RESOLVED],
        resolved=[i for i in incidents if i.status in RESOLVED],
        environments=environments,
        components=components,
        updated_at=_stamp(components, current, scheduled, recent, incidents),
    )


def uptime_attach(components: list[ComponentHealth], *, today: date) -> None:
    """Each component gets `uptime_bars` (90 days, oldest first) and `uptime_text` (over the
    days with data), from the scheduler's daily roll-ups: one query, never the samples."""
    first = today - timedelta(days=UPTIME_DAYS - 1)
    keys = {c.environment_key for c in components}
    days: dict[tuple[str, str], dict[date, ComponentDay]] = {}
    if keys:
        for row in ComponentDay.objects.filter(environment_key__in=keys, day__gte=first):
            days.setdefault((row.environment_key, row.name), {})[row.day] = row
    for c in components:
        mine = days.get((c.environment_key, c.name), {})
        bars = []
        for n in range(UPTIME_DAYS):
            day = first + timedelta(days=n)
            row = mine.get(day)
            label = day.strftime("%-d %b %Y")
            if row is None or not row.samples:
                bars.append(UptimeBar(day, "none", f"{label}: no data"))
            else:
                bars.append(UptimeBar(day, row.level, f"{label}: {percent_text(row.uptime)} up"))
        samples = sum(r.samples for r in mine.values())
        down = sum(r.major + 0.3 * r.partial for r in mine.values())
        c.uptime_bars = bars
        c.uptime_text = percent_text(1 - down / samples) if samples else "no data yet"


# --- Statuspage v2 shapes --------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def page_id() -> str:
    return str(getattr(settings, "STATUS_PAGE_ID", "mycelia"))


def page_json(updated_at: datetime | None) -> dict[str, Any]:
    return {
        "id": page_id(),
        "name": str(getattr(settings, "STATUS_PAGE_NAME", "Mycelia")),
        "url": site_url("/status/"),
        "time_zone": "Etc/UTC",
        "updated_at": iso(updated_at or datetime(2000, 1, 1, tzinfo=UTC)),
    }


def component_json(component: ComponentHealth) -> dict[str, Any]:
    return {
        "id": component.public_id,
        "name": f"{component.environment_name} · {component.name}",
        "status": component.shown_status,
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


def _components_of(environment_key: str, components: list[ComponentHealth]) -> list[dict]:
    return [component_json(c) for c in components if c.environment_key == environment_key]


def maintenance_json(m: StatusMaintenance, components: list[ComponentHealth]) -> dict[str, Any]:
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
        "incident_updates": [update_json(u, m.public_id) for u in m.public_updates],
        "components": _components_of(m.environment_key, components),
        "scheduled_for": iso(m.window_start),
        "scheduled_until": iso(m.window_end),
    }


def incident_json(incident: StatusIncident, components: list[ComponentHealth]) -> dict[str, Any]:
    m = incident.maintenance
    return {
        "id": incident.public_id,
        "name": incident.name,
        "status": incident.status,
        "created_at": iso(incident.published_at),
        "updated_at": iso(incident.updated_at),
        "monitoring_at": iso(incident.monitoring_at),
        "resolved_at": iso(incident.resolved_at),
        "impact": incident.impact,
        "shortlink": site_url(f"/status/#incident-{incident.public_id}"),
        "started_at": iso(incident.created_at),
        "page_id": page_id(),
        "incident_updates": [update_json(u, incident.public_id) for u in incident.public_updates],
        "components": _components_of(m.environment_key, components),
    }


def status_json() -> dict[str, Any]:
    active = maintenances_active()
    under = _under_maintenance(active)
    components = components_public(under)
    incidents = incidents_unresolved()
    indicator, description = indicator_for(components, incidents, under)
    return {
        "page": page_json(_stamp(components, active, incidents)),
        "status": {"indicator": indicator, "description": description},
    }


def summary_json() -> dict[str, Any]:
    """As Statuspage's summary: components, unresolved incidents, and upcoming or in-progress
    scheduled maintenances (completed ones are in scheduled_maintenances_json)."""
    now = timezone.now()
    active = maintenances_active()
    under = _under_maintenance(active)
    upcoming = maintenances_upcoming(now, limit=API_LIMIT)
    attach_updates(active + upcoming)
    components = components_public(under)
    incidents = incidents_unresolved()
    attach_incident_updates(incidents)
    indicator, description = indicator_for(components, incidents, under)
    return {
        "page": page_json(_stamp(components, active, upcoming, incidents)),
        "components": [component_json(c) for c in components],
        "incidents": [incident_json(i, components) for i in incidents],
        "scheduled_maintenances": [maintenance_json(m, components) for m in active + upcoming],
        "status": {"indicator": indicator, "description": description},
    }


def components_json() -> dict[str, Any]:
    active = maintenances_active()
    components = components_public(_under_maintenance(active))
    return {
        "page": page_json(_stamp(components, active)),
        "components": [component_json(c) for c in components],
    }


def _incidents_doc(incidents: list[StatusIncident]) -> dict[str, Any]:
    active = maintenances_active()
    components = components_public(_under_maintenance(active))
    attach_incident_updates(incidents)
    return {
        "page": page_json(_stamp(components, active, incidents)),
        "incidents": [incident_json(i, components) for i in incidents],
    }


def incidents_json() -> dict[str, Any]:
    """The 50 most recent published incidents, resolved or not (Statuspage's incidents.json)."""
    return _incidents_doc(incidents_latest())


def incidents_unresolved_json() -> dict[str, Any]:
    return _incidents_doc(incidents_unresolved(limit=API_LIMIT))


def _maintenances_doc(which: str) -> dict[str, Any]:
    now = timezone.now()
    active = maintenances_active(limit=API_LIMIT)
    components = components_public(_under_maintenance(active))
    if which == "active":
        maintenances = active
    elif which == "upcoming":
        maintenances = maintenances_upcoming(now, limit=API_LIMIT)
    else:
        maintenances = maintenances_latest()
    attach_updates(maintenances)
    return {
        "page": page_json(_stamp(components, active, maintenances)),
        "scheduled_maintenances": [maintenance_json(m, components) for m in maintenances],
    }


def scheduled_maintenances_json() -> dict[str, Any]:
    """The 50 most recent public maintenances, newest first (scheduled-maintenances.json)."""
    return _maintenances_doc("latest")


def scheduled_maintenances_upcoming_json() -> dict[str, Any]:
    return _maintenances_doc("upcoming")


def scheduled_maintenances_active_json() -> dict[str, Any]:
    return _maintenances_doc("active")


# --- feed, history, calendar -----------------------------------------------------------------


def updates_recent(limit: int = FEED_LIMIT) -> list[StatusUpdate]:
    """The feed: updates posted on the public page in the last few days, newest first."""
    since = timezone.now() - timedelta(days=recent_days())
    return list(
        StatusUpdate.objects.filter(maintenance__is_public=True, created_at__gte=since)
        .select_related("maintenance")
        .order_by("-created_at", "-id")[:limit]
    )


@dataclass
class HistoryMonth:
    month: date
    maintenances: list[StatusMaintenance]
    incidents: list[StatusIncident]
    page: int
    has_more: bool
    previous_month: date
    next_month: date | None


def _month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def history_month(*, month: date, page: int = 1) -> HistoryMonth:
    """What ended in one month (maintenances by their end, incidents by publication), newest
    first, HISTORY_PER_PAGE at a time: the history page, one month per page."""
    month = date(month.year, month.month, 1)
    start, end = _month_start(month), _month_start(_next_month(month))
    offset = (page - 1) * HISTORY_PER_PAGE
    rows = list(
        _public()
        .filter(completed_at__gte=start, completed_at__lt=end)
        .order_by("-completed_at", "-id")[offset : offset + HISTORY_PER_PAGE + 1]
    )
    incidents = (
        list(
            _incidents()
            .filter(published_at__gte=start, published_at__lt=end)
            .order_by("-published_at", "-id")[:HISTORY_PER_PAGE]
        )
        if page == 1
        else []
    )
    this_month = timezone.now().astimezone(UTC).date().replace(day=1)
    previous = date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)
    following = _next_month(month)
    return HistoryMonth(
        month=month,
        maintenances=rows[:HISTORY_PER_PAGE],
        incidents=incidents,
        page=page,
        has_more=len(rows) > HISTORY_PER_PAGE,
        previous_month=previous,
        next_month=following if following <= this_month else None,
    )


def calendar_maintenances(*, public_only: bool) -> list[StatusMaintenance]:
    """Windows from a month ago on, for an iCalendar feed: shown environments only for the
    public one; every environment (drafts aside) for signed-in people."""
    since = timezone.now() - timedelta(days=CALENDAR_PAST_DAYS)
    # Every status spelled out, so the (is_public, status, window_start) index serves the range.
    rows = StatusMaintenance.objects.filter(
        status__in=MaintenanceStatus.values, window_start__gte=since
    )
    if public_only:
        rows = rows.filter(is_public=True)
    else:
        rows = rows.filter(is_public__in=[True, False]).exclude(lifecycle="draft")
    return list(rows.order_by("window_start", "id")[:CALENDAR_LIMIT])


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
