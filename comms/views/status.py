"""The stakeholders' status page, its Statuspage-shaped JSON, feed, history, calendar and
subscriptions.

Every public answer is made for polling and caches (comms/views/_http.py): a strong ETag, 304
for an unchanged one, `Cache-Control: public, max-age=5, stale-while-revalidate=30` when it is
the same for everyone. The anonymous page carries no CSRF token (subscribing is a double
opt-in: the POST is exempt), so every visitor gets the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from comms import selectors, services
from comms.calendar import calendar_ics
from comms.exceptions import CommsError, InvalidInput
from comms.feeds import StatusUpdatesFeed
from comms.views._http import cached, cached_private
from mycelia_ops.roles import is_viewer, release_manager_required, viewer_required

REFRESH_SECONDS = 5


def status_access(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Open to everyone when STATUS_PAGE_PUBLIC (the default); otherwise viewers only."""
    guarded = viewer_required(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if selectors.page_public():
            return view(request, *args, **kwargs)
        return guarded(request, *args, **kwargs)

    return wrapped


def _api(data: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False})
    if selectors.page_public():
        response["Access-Control-Allow-Origin"] = "*"  # widgets read it from other sites
    return response


def _page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    page = selectors.status_page_get()
    return {
        "page": page,
        "refresh_seconds": REFRESH_SECONDS,
        "calendar_url": calendar_personal_url(request.user) if is_viewer(request.user) else "",
        **extra,
    }


@require_safe
@status_access
@cached
def status_page(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "live":
        return render(request, "comms/status.html#live", _page_context(request))
    return render(request, "comms/status.html", _page_context(request))


def _json_view(build: Callable[[], dict[str, Any]]) -> Callable[[HttpRequest], HttpResponse]:
    @require_safe
    @status_access
    @cached
    def view(request: HttpRequest) -> HttpResponse:
        return _api(build())

    view.__name__ = build.__name__
    return view


status_api_status = _json_view(selectors.status_json)
status_api_summary = _json_view(selectors.summary_json)
status_api_components = _json_view(selectors.components_json)
status_api_incidents = _json_view(selectors.incidents_json)
status_api_incidents_unresolved = _json_view(selectors.incidents_unresolved_json)
status_api_scheduled_maintenances = _json_view(selectors.scheduled_maintenances_json)
status_api_scheduled_maintenances_upcoming = _json_view(
    selectors.scheduled_maintenances_upcoming_json
)
status_api_scheduled_maintenances_active = _json_view(selectors.scheduled_maintenances_active_json)

status_feed = require_safe(status_access(cached(StatusUpdatesFeed())))


def _month(value: str) -> date:
    if not value:
        return timezone.now().date().replace(day=1)
    try:
        year, month = (int(part) for part in value.split("-"))
        if not 2000 <= year <= 9999:
            raise ValueError
        return date(year, month, 1)
    except ValueError:
        raise InvalidInput("month: give a month as YYYY-MM, e.g. 2026-03.") from None


def _page_number(value: str) -> int:
    if not value:
        return 1
    if not value.isdigit() or not 1 <= int(value) <= 10_000:
        raise InvalidInput("page: give a page number from 1.")
    return int(value)


@require_safe
@status_access
@cached
def status_history(request: HttpRequest) -> HttpResponse:
    """Past maintenances and incidents, one month per page (as Statuspage's history)."""
    try:
        month = _month(request.GET.get("month", ""))
        number = _page_number(request.GET.get("page", ""))
    except CommsError as exc:
        return render(request, "error.html",
                      {"status": exc.status, "title": "Bad request", "detail": str(exc)},
                      status=exc.status)  # fmt: skip
    history = selectors.history_month(month=month, page=number)
    return render(request, "comms/status_history.html", {"history": history})


# --- calendar --------------------------------------------------------------------------------


def _calendar_response(request: HttpRequest, *, public: bool, name: str) -> HttpResponse:
    body = calendar_ics(selectors.calendar_maintenances(public_only=public), name=name,
                        public=public)  # fmt: skip
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="maintenance.ics"'
    return response


@require_safe
@status_access
@cached
def status_calendar(request: HttpRequest) -> HttpResponse:
    """Shown environments' windows: what the public page shows, for a calendar app."""
    return _calendar_response(request, public=True, name="Mycelia maintenance")


def _calendar_token(user: Any) -> str:
    # Changes with the password: changing it revokes links handed out before.
    value = f"{user.pk}:{user.password}:{user.is_active}"
    return salted_hmac("comms.calendar", value, algorithm="sha256").hexdigest()[:32]


def calendar_personal_url(user: Any) -> str:
    return reverse("comms:calendar_personal", args=[user.pk, _calendar_token(user)])


@require_safe
@viewer_required
@cached_private
def comms_calendar(request: HttpRequest) -> HttpResponse:
    """Every environment's windows, for signed-in people (the session's own)."""
    return _calendar_response(request, public=False, name="Mycelia maintenance (all environments)")


@require_safe
@cached_private
def comms_calendar_personal(request: HttpRequest, user_id: int, token: str) -> HttpResponse:
    """The same, at a personal link a calendar app can fetch without signing in."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not constant_time_compare(token, _calendar_token(user)):
        raise Http404("No such calendar.")
    if not is_viewer(user):
        raise PermissionDenied
    return _calendar_response(request, public=False, name="Mycelia maintenance (all environments)")


# --- subscriptions ---------------------------------------------------------------------------


@csrf_exempt  # a double opt-in: the POST only asks for a confirmation mail (see the docstring)
@require_POST
@status_access
def status_subscribe(request: HttpRequest) -> HttpResponse:
    try:
        services.subscriber_subscribe(
            email=request.POST.get("email", ""),
            environment_keys=request.POST.getlist("environment"),
            component_keys=request.POST.getlist("component"),
        )
    except CommsError as exc:
        context = _page_context(request, subscribe_error=str(exc),
                                subscribe_email=request.POST.get("email", ""))  # fmt: skip
        template = "comms/status.html#subscribe" if request.htmx else "comms/status.html"
        return render(request, template, context, status=exc.status)
    done = "Check your inbox: we sent a link to confirm the subscription."
    if request.htmx:
        return render(
            request, "comms/status.html#subscribe", _page_context(request, subscribe_done=done)
        )
    messages.success(request, done)
    return redirect(reverse("comms:status") + "#subscribe")


@require_safe
def status_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        subscriber = services.subscriber_confirm(token=token)
    except CommsError as exc:
        return render(request, "comms/subscription.html", {"error": str(exc)}, status=exc.status)
    return render(request, "comms/subscription.html", {"subscriber": subscriber, "confirmed": True})


@csrf_exempt  # RFC 8058 one-click: mail clients POST "List-Unsubscribe=One-Click" without a token
@require_http_methods(["GET", "POST"])
def status_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET only asks (mail scanners follow links); POST unsubscribes, from the page's button or
    a mail client's one-click POST. The token in the link is the authority for both."""
    if request.method == "GET":
        try:
            subscriber = services.subscriber_by_token(token=token)
        except CommsError as exc:
            context = {"error": str(exc)}
            return render(request, "comms/subscription.html", context, status=exc.status)
        already = subscriber.unsubscribed_at is not None
        context = {"subscriber": subscriber, "unsubscribed": already, "ask": not already}
        return render(request, "comms/subscription.html", context)
    try:
        subscriber = services.subscriber_unsubscribe(token=token)
    except CommsError as exc:
        return render(request, "comms/subscription.html", {"error": str(exc)}, status=exc.status)
    return render(
        request, "comms/subscription.html", {"subscriber": subscriber, "unsubscribed": True}
    )


@require_POST
@release_manager_required
def status_incident_resolve(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    """Kept for old links and forms: resolves the upgrade's published incident."""
    try:
        incident = services.status_incident_resolve(
            upgrade_id=upgrade_id, body=request.POST.get("body", ""), by=request.user
        )
    except CommsError as exc:
        return render(request, "error.html",
                      {"status": exc.status, "title": "Not resolved", "detail": str(exc)},
                      status=exc.status)  # fmt: skip
    messages.success(request, "The incident is resolved.")
    return redirect(reverse("comms:incident_detail", args=[incident.pk]))
