"""Incidents behind the status page: drafts waiting for a decision, published ones, and the
dismissed. Stakeholders read; release managers publish, edit, post updates, resolve, dismiss."""

from __future__ import annotations

from typing import Any

from django.contrib import messages as flash
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from comms import services
from comms.exceptions import CommsError
from comms.models import ComponentHealth, Impact, IncidentStatus, StatusIncident
from comms.services.incidents import OPEN_STATUSES
from mycelia_ops.roles import release_manager_required, viewer_required

LIST_LIMIT = 50


def _get_incident_for_user(request: HttpRequest, incident_id: int) -> StatusIncident:
    # Every viewer reads every incident; the decorators turned others away.
    incident = (
        StatusIncident.objects.select_related(
            "maintenance", "published_by", "dismissed_by"
        ).filter(pk=incident_id).first()
    )  # fmt: skip
    if incident is None:
        raise Http404(f"There is no incident #{incident_id}.")
    return incident


@require_GET
@viewer_required
def incident_list(request: HttpRequest) -> HttpResponse:
    base = StatusIncident.objects.select_related("maintenance").order_by("-created_at", "-id")
    drafts = list(base.filter(published_at__isnull=True, dismissed_at__isnull=True)[:LIST_LIMIT])
    open_ = list(base.filter(published_at__isnull=False, resolved_at__isnull=True)[:LIST_LIMIT])
    closed = list(
        base.filter(Q(resolved_at__isnull=False) | Q(dismissed_at__isnull=False))[:LIST_LIMIT]
    )
    return render(
        request,
        "comms/status_incidents.html",
        {"drafts": drafts, "open": open_, "closed": closed},
    )


def _detail_context(incident: StatusIncident, **extra: Any) -> dict[str, Any]:
    components = ComponentHealth.objects.filter(
        environment_key=incident.maintenance.environment_key
    )
    return {
        "incident": incident,
        "updates": incident.updates.order_by("-created_at", "-id")[:100],
        "components": list(components),
        "impacts": Impact.choices,
        "open_statuses": [(s, IncidentStatus(s).label) for s in OPEN_STATUSES],
        "post_statuses": [(s, IncidentStatus(s).label) for s in (*OPEN_STATUSES, "resolved")],
        "form": extra.pop("form", None)
        or {
            "name": incident.name,
            "body": incident.body,
            "impact": incident.impact,
            "status": incident.status,
        },
        **extra,
    }


@require_GET
@viewer_required
def incident_detail(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = _get_incident_for_user(request, incident_id)
    return render(request, "comms/status_incident.html", _detail_context(incident))


def _refused(
    request: HttpRequest, incident: StatusIncident, exc: CommsError, **extra: Any
) -> HttpResponse:
    incident.refresh_from_db()
    context = _detail_context(incident, error=str(exc), **extra)
    return render(request, "comms/status_incident.html", context, status=exc.status)


@require_POST
@release_manager_required
def incident_publish(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The draft's form: "Save draft" keeps it a draft; "Publish" puts it on the page."""
    incident = _get_incident_for_user(request, incident_id)
    words = {k: request.POST.get(k, "") for k in ("name", "body", "impact", "status")}
    publish = request.POST.get("action") == "publish"
    service = services.status_incident_publish if publish else services.status_incident_edit
    try:
        service(incident_id=incident.pk, by=request.user, **words)
    except CommsError as exc:
        return _refused(request, incident, exc, form=words)
    flash.success(request, "Published on the status page." if publish else "Draft saved.")
    return redirect(reverse("comms:incident_detail", args=[incident.pk]))


@require_POST
@release_manager_required
def incident_post(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = _get_incident_for_user(request, incident_id)
    status = request.POST.get("status", "")
    try:
        services.status_incident_post(
            incident_id=incident.pk, status=status, body=request.POST.get("body", ""),
            by=request.user,
        )  # fmt: skip
    except CommsError as exc:
        return _refused(request, incident, exc, post_body=request.POST.get("body", ""))
    flash.success(request, "Resolved." if status == "resolved" else "Update posted.")
    return redirect(reverse("comms:incident_detail", args=[incident.pk]))


@require_POST
@release_manager_required
def incident_dismiss(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = _get_incident_for_user(request, incident_id)
    try:
        services.status_incident_dismiss(
            incident_id=incident.pk, reason=request.POST.get("reason", ""), by=request.user
        )
    except CommsError as exc:
        return _refused(request, incident, exc, dismiss_reason=request.POST.get("reason", ""))
    flash.success(request, "Dismissed: nothing was published.")
    return redirect(reverse("comms:incident_detail", args=[incident.pk]))
