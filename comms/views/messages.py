"""Messages: release managers and stakeholders read, release managers edit and send."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages as flash
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from comms import services
from comms.exceptions import CommsError
from comms.models import (
    Audience,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    MessageTemplate,
)
from mycelia_ops.roles import release_manager_required, viewer_required


def _get_message_for_user(request: HttpRequest, message_id: int) -> Message:
    # Every viewer reads every message; the decorators turned others away.
    message = (
        Message.objects.filter(pk=message_id)
        .select_related("created_by", "edited_by", "sent_by", "discarded_by")
        .first()
    )
    if message is None:
        raise Http404(f"There is no message #{message_id}.")
    return message


@require_GET
@viewer_required
def message_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    rows = (
        Message.objects.select_related("created_by", "discarded_by")
        .order_by("-created_at", "-id")
        .annotate(
            delivery_count=Count("deliveries"),
            failed_count=Count("deliveries", filter=Q(deliveries__status=DeliveryStatus.FAILED)),
        )
    )
    if status in MessageStatus.values:
        rows = rows.filter(status=status)
    page = Paginator(rows, settings.PAGE_SIZE).get_page(request.GET.get("page"))
    if any(m.render_error for m in page.object_list):
        fix = _template_fix_urls()
        for m in page.object_list:
            m.template_fix_url = fix.get(m.template_key, "")
    context = {"page": page, "status": status, "statuses": MessageStatus.choices}
    template = "comms/messages.html#rows" if request.htmx else "comms/messages.html"
    return render(request, template, context)


def _template_fix_urls() -> dict[str, str]:
    """Where staff edit each message template (the admin's change page)."""
    return {
        key: reverse("admin:comms_messagetemplate_change", args=[pk])
        for pk, key in MessageTemplate.objects.values_list("pk", "key")
    }


def _detail_context(message: Message, **extra: Any) -> dict[str, Any]:
    if message.render_error:
        extra.setdefault("template_fix_url", _template_fix_urls().get(message.template_key, ""))
    deliveries = list(message.deliveries.select_related("channel").order_by("id"))
    return {
        "message": message,
        "audiences": Audience.objects.all(),
        "chosen": set(message.audiences.values_list("key", flat=True)),
        "previews": services.message_preview(message=message) if message.is_draft else [],
        "uncovered": services.audiences_without_channel(message=message)
        if message.is_draft or message.is_not_sent
        else [],
        "deliveries": deliveries,
        "counts": {s: sum(d.status == s for d in deliveries) for s in DeliveryStatus.values},
        **extra,
    }


@require_GET
@viewer_required
def message_detail(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _get_message_for_user(request, message_id)
    if request.htmx and request.GET.get("part") == "deliveries":
        return render(request, "comms/message.html#deliveries", _detail_context(message))
    return render(request, "comms/message.html", _detail_context(message))


@require_POST
@release_manager_required
def message_edit(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _get_message_for_user(request, message_id)
    try:
        message = services.message_update(
            message=message,
            subject=request.POST.get("subject", ""),
            body=request.POST.get("body", ""),
            audience_keys=request.POST.getlist("audience"),
            by=request.user,
        )
    except CommsError as exc:
        context = _detail_context(message, edit_error=str(exc),
                                  draft={"subject": request.POST.get("subject", ""),
                                         "body": request.POST.get("body", "")})  # fmt: skip
        return render(request, "comms/message.html", context, status=exc.status)
    flash.success(request, "Draft saved. Check the preview before sending.")
    return redirect(message)


@require_POST
@release_manager_required
def message_discard(request: HttpRequest, message_id: int) -> HttpResponse:
    """Decide not to send a draft, with a reason kept beside it in the history."""
    message = _get_message_for_user(request, message_id)
    reason = request.POST.get("reason", "")
    try:
        services.message_discard(message=message, reason=reason, by=request.user)
    except CommsError as exc:
        message.refresh_from_db()
        context = _detail_context(message, discard_error=str(exc), discard_reason=reason)
        return render(request, "comms/message.html", context, status=exc.status)
    flash.success(request, "Draft discarded: it stays in the history, struck through, unsent.")
    return redirect(message)


@require_POST
@release_manager_required
def message_rerender(request: HttpRequest, message_id: int) -> HttpResponse:
    """Render a draft that did not render again, once its template is fixed."""
    message = _get_message_for_user(request, message_id)
    try:
        services.message_rerender(message=message, by=request.user)
    except CommsError as exc:
        message.refresh_from_db()
        return render(request, "comms/message.html",
                      _detail_context(message, render_again_error=str(exc)),
                      status=exc.status)  # fmt: skip
    flash.success(
        request, "The draft rendered from its template. Check the preview before sending."
    )
    return redirect(message)


@require_POST
@release_manager_required
def message_send(request: HttpRequest, message_id: int) -> HttpResponse:
    message = _get_message_for_user(request, message_id)
    if not request.htmx and request.POST.get("confirm") != "yes":
        # Without JavaScript there was no hx-confirm: ask on a page of its own.
        return render(request, "comms/message_confirm.html", _detail_context(message))
    try:
        services.message_send(message=message, by=request.user)
    except CommsError as exc:
        if request.htmx:
            flash.error(request, str(exc))
            return HttpResponseClientRedirect(message.get_absolute_url())
        return render(request, "comms/message.html",
                      _detail_context(message, send_error=str(exc)), status=exc.status)  # fmt: skip
    flash.success(request, "Sending: the deliveries below update as they go out.")
    if request.htmx:
        return HttpResponseClientRedirect(message.get_absolute_url())
    return redirect(message)


@require_POST
@release_manager_required
def delivery_retry(request: HttpRequest, delivery_id: int) -> HttpResponse:
    delivery = Delivery.objects.select_related("message").filter(pk=delivery_id).first()
    if delivery is None:
        raise Http404(f"There is no delivery #{delivery_id}.")
    error = ""
    try:
        services.delivery_retry(delivery=delivery, by=request.user)
    except CommsError as exc:
        error = str(exc)
    message = Message.objects.get(pk=delivery.message_id)
    if request.htmx:
        return render(request, "comms/message.html#deliveries",
                      _detail_context(message, retry_error=error),
                      status=409 if error else 200)  # fmt: skip
    if error:
        return render(request, "comms/message.html", _detail_context(message, retry_error=error),
                      status=409)  # fmt: skip
    flash.success(request, f"Delivery to {delivery.recipient} queued again.")
    return redirect(message)
