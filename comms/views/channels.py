"""Channels: stakeholders see where messages go; release managers add, edit and switch them."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages as flash
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from comms import services
from comms.exceptions import CommsError
from comms.models import Audience, Channel, ChannelKind, Delivery
from mycelia_ops.roles import release_manager_required, viewer_required


def _channels() -> QuerySet[Channel]:
    """Channels with their last delivery's status and time: one query however many."""
    last = Delivery.objects.filter(channel=OuterRef("pk")).order_by("-id")
    return (
        Channel.objects.select_related("audience")
        .order_by("audience_id", "id")
        .annotate(
            last_status=Subquery(last.values("status")[:1]),
            last_at=Subquery(
                last.annotate(at=Coalesce("sent_at", "claimed_at", "created_at")).values("at")[:1]
            ),
        )
    )


def _channel_or_404(channel_id: int) -> Channel:
    # Every viewer reads every channel; the decorators turned others away.
    channel = _channels().filter(pk=channel_id).first()
    if channel is None:
        raise Http404(f"There is no channel #{channel_id}.")
    return channel


def _row(channel: Channel) -> Channel:
    """What the row shows besides the model's own fields."""
    if channel.is_webhook:
        channel.sends_to = urlsplit(channel.url).hostname or channel.url
    else:
        count = len(channel.recipient_list())
        parts = [f"{count} address{'es' if count != 1 else ''}"] if count else []
        if channel.to_subscribers:
            parts.append("status page subscribers")
        channel.sends_to = " + ".join(parts) or "no addresses yet"
    return channel


def _list_context(**extra: Any) -> dict[str, Any]:
    channels = [_row(c) for c in _channels()]
    audiences = list(Audience.objects.all())
    for audience in audiences:
        audience.rows = [c for c in channels if c.audience_id == audience.pk]
    return {"audiences": audiences, "channel_count": len(channels), **extra}


@require_GET
@viewer_required
def channel_list(request: HttpRequest) -> HttpResponse:
    return render(request, "comms/channels.html", _list_context())


# --- the form --------------------------------------------------------------------------------


def _split_keys(text: str) -> list[str]:
    return [k for k in re.split(r"[\s,]+", text or "") if k]


def _form_data(request: HttpRequest, channel: Channel | None) -> dict[str, Any]:
    """The POSTed form as channel_save's data. A blank secret value on an edit keeps the
    stored one (the page never shows it); clearing the header's name clears both."""
    post = request.POST
    data: dict[str, Any] = {
        "audience": post.get("audience", ""),
        "name": post.get("name", ""),
        "kind": post.get("kind", ""),
        "recipients": post.get("recipients", ""),
        "to_subscribers": post.get("to_subscribers") == "yes",
        "url": post.get("url", ""),
        "secret_header_name": post.get("secret_header_name", ""),
        "secret_header_value": post.get("secret_header_value", ""),
        "environment_keys": _split_keys(post.get("environment_keys", "")),
    }
    if channel is None:
        data["enabled"] = post.get("enabled") == "yes"
    elif not data["secret_header_value"].strip() and data["secret_header_name"].strip():
        del data["secret_header_value"]
    return data


def _form_values(
    channel: Channel | None, data: dict[str, Any] | None, audience: str = ""
) -> dict[str, Any]:
    """What the form's fields show: the POSTed values after an error, else the channel's.
    Never the secret's value."""
    if data is not None:
        values = {k: v for k, v in data.items() if k != "secret_header_value"}
        values["environment_keys"] = ", ".join(data["environment_keys"])
        return values
    if channel is None:
        return {"audience": audience, "kind": ChannelKind.EMAIL, "enabled": True}
    return {
        "audience": channel.audience.key,
        "name": channel.name,
        "kind": channel.kind,
        "recipients": "\n".join(channel.recipient_list())
        if channel.kind == ChannelKind.EMAIL
        else "",
        "to_subscribers": channel.to_subscribers,
        "url": channel.url,
        "secret_header_name": channel.secret_header_name,
        "environment_keys": ", ".join(channel.environment_keys),
    }


def _form(request: HttpRequest, channel: Channel | None) -> HttpResponse:
    data, error, status = None, "", 200
    if request.method == "POST":
        data = _form_data(request, channel)
        try:
            saved = services.channel_save(channel=channel, data=data, by=request.user)
        except CommsError as exc:
            error, status = str(exc), exc.status
        else:
            flash.success(request, f"Channel “{saved.name}” saved.")
            return redirect(reverse("comms:channel_list") + f"#channel-{saved.pk}")
    context = {
        "channel": channel,
        "form": _form_values(channel, data, audience=request.GET.get("audience", "")),
        "error": error,
        "audiences": Audience.objects.all(),
        "kinds": ChannelKind.choices,
        "has_secret": bool(channel and channel.secret_header_value),
    }
    return render(request, "comms/channel_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@release_manager_required
def channel_new(request: HttpRequest) -> HttpResponse:
    return _form(request, None)


@require_http_methods(["GET", "POST"])
@release_manager_required
def channel_edit(request: HttpRequest, channel_id: int) -> HttpResponse:
    return _form(request, _channel_or_404(channel_id))


# --- on and off ------------------------------------------------------------------------------


@require_POST
@release_manager_required
def channel_enabled(request: HttpRequest, channel_id: int) -> HttpResponse:
    channel = _channel_or_404(channel_id)
    value = request.POST.get("enabled", "")
    error = ""
    if value not in ("true", "false"):
        error = "Say whether to enable or disable the channel (enabled=true or enabled=false)."
    elif value == "false" and not request.htmx and request.POST.get("confirm") != "yes":
        # Without JavaScript there was no hx-confirm dialog: the checkbox stands in for it.
        error = (
            f"“{channel.name}” was not disabled: tick “Sure” next to Disable to confirm. "
            "Messages to its audience stop going through it."
        )
    if error:
        if request.htmx:
            return render(request, "comms/channels.html#row",
                          {"c": _row(channel), "row_error": error}, status=400)  # fmt: skip
        return render(request, "comms/channels.html", _list_context(error=error), status=400)

    changed = services.channel_set_enabled(
        channel=channel, enabled=value == "true", by=request.user
    )
    if request.htmx:
        return render(request, "comms/channels.html#row", {"c": _row(channel)})
    if changed:
        state = (
            "enabled: messages go through it again"
            if channel.enabled
            else ("disabled: messages no longer go through it")
        )
        flash.success(request, f"“{channel.name}” is {state}.")
    return redirect(reverse("comms:channel_list") + f"#channel-{channel.pk}")
