"""Incidents on the status page: drafted when an upgrade goes wrong, public only once a release
manager publishes them.

A rollback or failure never announces itself. `status_incident_draft` writes a draft with an
impact proposed from the environment's component health (as Statuspage ranks them) and words
that disclose nothing about the change (the playbook's post-upgrade message: status, issues,
next steps). A release manager publishes it (perhaps after editing), posts updates, resolves it,
or dismisses it with a reason. Only published, shown-environment incidents reach the page.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from comms.exceptions import Conflict, InvalidInput, NotFound
from comms.models import (
    ComponentHealth,
    ComponentStatus,
    Impact,
    IncidentStatus,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
    UpgradeLifecycle,
)
from comms.services._events import event_record
from comms.services._input import text_clean

# Component status -> the incident impact it suggests (Statuspage's own ranking).
IMPACT_FOR_COMPONENT = {
    ComponentStatus.OPERATIONAL: Impact.NONE,
    ComponentStatus.UNDER_MAINTENANCE: Impact.NONE,
    ComponentStatus.DEGRADED_PERFORMANCE: Impact.MINOR,
    ComponentStatus.PARTIAL_OUTAGE: Impact.MAJOR,
    ComponentStatus.MAJOR_OUTAGE: Impact.CRITICAL,
}
_IMPACT_ORDER = [Impact.NONE, Impact.MINOR, Impact.MAJOR, Impact.CRITICAL]
# What a draft proposes to say it is doing: a rollback put things back (we watch); a failure
# is being looked into.
PROPOSED_STATUS = {
    UpgradeLifecycle.ROLLED_BACK: IncidentStatus.MONITORING,
    UpgradeLifecycle.FAILED: IncidentStatus.INVESTIGATING,
}
OPEN_STATUSES = (IncidentStatus.INVESTIGATING, IncidentStatus.IDENTIFIED, IncidentStatus.MONITORING)


def impact_proposed(environment_key: str) -> str:
    """The worst component of the environment, as an incident impact."""
    statuses = ComponentHealth.objects.filter(environment_key=environment_key).values_list(
        "status", flat=True
    )
    impacts = [IMPACT_FOR_COMPONENT.get(s, Impact.MAJOR) for s in statuses]
    return max(impacts, key=_IMPACT_ORDER.index, default=Impact.NONE)


def draft_words(*, environment_name: str, lifecycle: str, impact: str) -> tuple[str, str]:
    """The draft's title and first update: true, and no detail about the change (no title,
    version or reason), in the playbook's post-upgrade words."""
    name = f"{environment_name}: maintenance did not complete as planned"
    status = "The planned maintenance did not complete."
    if lifecycle == UpgradeLifecycle.ROLLED_BACK:
        status += " Services run as they did before it."
    issues = (
        "No service is affected."
        if impact == Impact.NONE
        else "Some services are affected; their status is shown on this page."
    )
    body = (
        f"Status: {status}\n"
        f"Issues: {issues}\n"
        "Next steps: We are looking into it and will post an update here."
    )
    return name, body


def status_incident_draft(*, upgrade_id: int, lifecycle: str) -> StatusIncident | None:
    """Draft the incident for an upgrade that was rolled back or failed (call after its
    status_maintenance_sync). Nothing for an environment not shown on the status page, and
    nothing twice: an existing incident (draft, published or dismissed) is returned as it is."""
    if lifecycle not in PROPOSED_STATUS:
        raise InvalidInput(
            f"An incident is drafted for a rollback or a failure, not '{lifecycle}'."
        )
    with transaction.atomic():
        m = StatusMaintenance.objects.select_for_update().filter(upgrade_id=upgrade_id).first()
        if m is None or not m.is_public:
            return None
        existing = StatusIncident.objects.filter(maintenance=m).first()
        if existing is not None:
            return existing
        impact = impact_proposed(m.environment_key)
        name, body = draft_words(
            environment_name=m.environment_name, lifecycle=lifecycle, impact=impact
        )
        incident = StatusIncident.objects.create(
            maintenance=m, name=name, body=body, status=PROPOSED_STATUS[lifecycle], impact=impact
        )
        event_record(kind="incident_drafted", subject=incident, upgrade_id=upgrade_id,
                     to_state="draft", detail={"impact": impact, "lifecycle": lifecycle})  # fmt: skip
    return incident


def _words(*, name: Any, body: Any, impact: Any, status: Any) -> dict[str, str]:
    name = text_clean(name, field="name", max_length=300).strip()
    body = text_clean(body, field="body", max_length=5000).strip()
    if not name:
        raise InvalidInput("name: give the incident a title.")
    if not body:
        raise InvalidInput("body: write what people should know (status, issues, next steps).")
    if impact not in Impact.values:
        raise InvalidInput(f"impact: choose one of {', '.join(Impact.values)}.")
    if status not in OPEN_STATUSES:
        raise InvalidInput("status: choose investigating, identified or monitoring.")
    return {"name": name, "body": body, "impact": impact, "status": status}


def _locked(incident_id: int) -> StatusIncident:
    incident = (
        StatusIncident.objects.select_for_update()
        .select_related("maintenance")
        .filter(pk=incident_id)
        .first()
    )
    if incident is None:
        raise NotFound(f"There is no incident {incident_id}.")
    return incident


def status_incident_edit(
    *, incident_id: int, name: Any, body: Any, impact: Any, status: Any, by: Any
) -> StatusIncident:
    """Change a draft's words, impact or proposed status without publishing it."""
    words = _words(name=name, body=body, impact=impact, status=status)
    with transaction.atomic():
        incident = _locked(incident_id)
        if not incident.is_draft:
            raise Conflict("Only a draft can be edited; post an update instead.")
        changed = [k for k, v in words.items() if getattr(incident, k) != v]
        for key, value in words.items():
            setattr(incident, key, value)
        incident.updated_at = timezone.now()
        incident.save()
        event_record(kind="incident_edited", subject=incident, by=by,
                     upgrade_id=incident.maintenance.upgrade_id, detail={"fields": changed})  # fmt: skip
    return incident


def status_incident_publish(
    *, incident_id: int, name: Any, body: Any, impact: Any, status: Any, by: Any
) -> StatusIncident:
    """Publish a draft with the words given: from now on the page, its JSON and feed show it,
    and its impact counts in the page's indicator until it is resolved."""
    words = _words(name=name, body=body, impact=impact, status=status)
    with transaction.atomic():
        incident = _locked(incident_id)
        if not incident.is_draft:
            raise Conflict(
                "This incident was dismissed." if incident.is_dismissed
                else "This incident is published already."
            )  # fmt: skip
        now = timezone.now()
        for key, value in words.items():
            setattr(incident, key, value)
        incident.published_at, incident.published_by = now, by if _is_user(by) else None
        incident.updated_at = now
        if incident.status == IncidentStatus.MONITORING:
            incident.monitoring_at = now
        incident.save()
        StatusUpdate.objects.create(
            maintenance=incident.maintenance, incident=incident, status=incident.status,
            body=incident.body, created_at=now,
        )  # fmt: skip
        event_record(kind="incident_published", subject=incident, by=by,
                     upgrade_id=incident.maintenance.upgrade_id, from_state="draft",
                     to_state=incident.status, detail={"impact": incident.impact})  # fmt: skip
    return incident


def status_incident_post(*, incident_id: int, status: Any, body: Any, by: Any) -> StatusIncident:
    """Post an update to a published incident; status "resolved" closes it."""
    body = text_clean(body, field="body", max_length=5000).strip()
    if status not in (*OPEN_STATUSES, IncidentStatus.RESOLVED):
        raise InvalidInput("status: choose investigating, identified, monitoring or resolved.")
    if not body:
        if status != IncidentStatus.RESOLVED:
            raise InvalidInput("body: write what changed.")
        body = "This incident has been resolved."
    with transaction.atomic():
        incident = _locked(incident_id)
        if not incident.is_published:
            raise Conflict("Publish the incident (or dismiss it) before posting updates.")
        if incident.is_resolved:
            raise Conflict("This incident is already resolved.")
        before, now = incident.status, timezone.now()
        incident.status, incident.updated_at = status, now
        if status == IncidentStatus.MONITORING and not incident.monitoring_at:
            incident.monitoring_at = now
        if status == IncidentStatus.RESOLVED:
            incident.resolved_at = now
        incident.save()
        StatusUpdate.objects.create(
            maintenance_id=incident.maintenance_id, incident=incident, status=status,
            body=body, created_at=now,
        )  # fmt: skip
        kind = "incident_resolved" if status == IncidentStatus.RESOLVED else "incident_updated"
        event_record(kind=kind, subject=incident, by=by, upgrade_id=incident.maintenance.upgrade_id,
                     from_state=before, to_state=status)  # fmt: skip
    return incident


def status_incident_resolve(*, upgrade_id: int, body: str, by: Any | None) -> StatusIncident:
    """Close the published incident of an upgrade, with a closing update."""
    body = text_clean(body, field="body", max_length=5000)
    incident = StatusIncident.objects.filter(maintenance__upgrade_id=upgrade_id).first()
    if incident is None:
        raise NotFound(f"Upgrade {upgrade_id} has no incident on the status page.")
    return status_incident_post(
        incident_id=incident.pk, status=IncidentStatus.RESOLVED, body=body, by=by
    )


def status_incident_dismiss(*, incident_id: int, reason: Any, by: Any) -> StatusIncident:
    """Decide a draft is not to be published; it stays in the incidents list with the reason."""
    reason = text_clean(reason, field="reason", max_length=1000).strip()
    if not reason:
        raise InvalidInput("reason: say why this incident is not published.")
    with transaction.atomic():
        incident = _locked(incident_id)
        if not incident.is_draft:
            raise Conflict("Only a draft can be dismissed; resolve a published incident.")
        now = timezone.now()
        incident.dismissed_at, incident.dismiss_reason = now, reason
        incident.dismissed_by = by if _is_user(by) else None
        incident.updated_at = now
        incident.save()
        event_record(kind="incident_dismissed", subject=incident, by=by,
                     upgrade_id=incident.maintenance.upgrade_id, from_state="draft",
                     to_state="dismissed", detail={"reason": reason})  # fmt: skip
    return incident


def _is_user(by: Any) -> bool:
    return by is not None and getattr(by, "is_authenticated", False)
