"""The stakeholders' status page, its Statuspage-shaped JSON, its feed and subscriptions."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from comms import selectors, services
from comms.exceptions import CommsError
from comms.feeds import StatusUpdatesFeed
from mycelia_ops.roles import release_manager_required, viewer_required


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
    response["Cache-Control"] = "no-cache, max-age=0"
    if selectors.page_public():
        response["Access-Control-Allow-Origin"] = "*"  # widgets read it from other sites
    return response


def _page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    page = selectors.status_page_get()
    return {
        "page": page,
        "refresh_seconds": 5,
        "subscribe_environments": [e for e in page.environments],
        **extra,
    }


@require_GET
@status_access
def status_page(request: HttpRequest) -> HttpResponse:
    if request.htmx and request.GET.get("part") == "live":
        return render(request, "comms/status.html#live", _page_context(request))
    return render(request, "comms/status.html", _page_context(request))


@require_GET
@status_access
def status_api_status(request: HttpRequest) -> JsonResponse:
    return _api(selectors.status_json())


@require_GET
@status_access
def status_api_summary(request: HttpRequest) -> JsonResponse:
    return _api(selectors.summary_json())


@require_GET
@status_access
def status_api_scheduled_maintenances(request: HttpRequest) -> JsonResponse:
    return _api(selectors.scheduled_maintenances_json())


@require_GET
@status_access
def status_api_incidents(request: HttpRequest) -> JsonResponse:
    return _api(selectors.incidents_json())


status_feed = require_GET(status_access(StatusUpdatesFeed()))


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


@require_GET
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
    try:
        services.status_incident_resolve(
            upgrade_id=upgrade_id, body=request.POST.get("body", ""), by=request.user
        )
    except CommsError as exc:
        return render(request, "error.html",
                      {"status": exc.status, "title": "Not resolved", "detail": str(exc)},
                      status=exc.status)  # fmt: skip
    messages.success(request, "The incident is resolved.")
    return redirect(reverse("comms:status") + f"#upgrade-{upgrade_id}")
