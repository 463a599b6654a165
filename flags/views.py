"""Flag pages: thin views that read with selectors, write with services, and answer HTMX with
named partials of the page templates."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flags import runtime, selectors, services
from flags.exceptions import FlagServiceError
from flags.forms import FlagCreateForm, TargetingForm, TokenCreateForm
from flags.models import ApiToken, Flag, FlagEnvironment, FlagState, Via
from mycelia_ops.roles import release_manager_required, viewer_required

HISTORY_ON_PAGE = 20
CHART_HOURS = 24


def _get_flag_for_user(request: HttpRequest, key: str) -> Flag:
    # Every release manager and stakeholder sees every flag; the decorators turned others away.
    try:
        return selectors.flag_get(key=key)
    except FlagServiceError as exc:
        raise Http404(str(exc)) from exc


def _get_environment(key: str) -> FlagEnvironment:
    try:
        return selectors.environment_get(key=key)
    except FlagServiceError as exc:
        raise Http404(str(exc)) from exc


def _cells(flag: Flag, environments: list[FlagEnvironment]) -> list[dict[str, Any]]:
    states = {s.environment_id: s for s in flag.states.all()}
    return [{"environment": env, "state": states.get(env.pk)} for env in environments]


@require_GET
@viewer_required
def flag_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "query": request.GET.get("q", "").strip(),
        "tag": request.GET.get("tag", "").strip(),
        "state": request.GET.get("state", ""),
    }
    page = Paginator(selectors.flag_list(**filters), settings.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    environments = list(FlagEnvironment.objects.all())
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    context = {
        "page": page,
        "rows": [{"flag": f, "cells": _cells(f, environments)} for f in page.object_list],
        "environments": environments,
        "filters": filters,
        "tags": selectors.tags_all(),
        "query_string": query_without_page.urlencode(),
    }
    template = "flags/list.html#results" if request.htmx else "flags/list.html"
    return render(request, template, context)


def _next_url(request: HttpRequest, fallback: str) -> str:
    candidate = request.POST.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


@require_POST
@release_manager_required
def flag_toggle(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    flag = _get_flag_for_user(request, key)
    env = _get_environment(environment)
    wanted = request.POST.get("on", "")
    back = _next_url(request, reverse("flags:list"))
    if wanted not in ("0", "1"):
        return render(
            request,
            "error.html",
            {"status": 400, "title": "Bad request", "detail": "Say on=1 or on=0."},
            status=400,
        )
    on = wanted == "1"
    reason = request.POST.get("reason", "").strip()[:500]
    if env.needs_confirmation and request.POST.get("confirm") != "yes":
        # Without JavaScript there was no hx-confirm: ask on a page of its own.
        context = {"flag": flag, "environment": env, "on": on, "next": back, "reason": reason}
        return render(request, "flags/confirm.html", context)
    error = ""
    try:
        services.flag_set_state(
            flag=flag, environment=env, on=on, by=request.user, via=Via.UI, reason=reason
        )
    except FlagServiceError as exc:
        error = str(exc)
    if request.htmx:
        status = 400 if error else 200
        if request.POST.get("view") == "detail":
            return render(
                request,
                "flags/detail.html#states",
                _detail_states_context(flag) | {"states_error": error},
                status=status,
            )
        flag = selectors.flag_list(state="all").get(pk=flag.pk)
        environments = list(FlagEnvironment.objects.all())
        row = {"flag": flag, "cells": _cells(flag, environments), "error": error}
        return render(request, "flags/list.html#row", {"row": row}, status=status)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"{flag.key} is {'on' if on else 'off'} in {env.name}.")
    return redirect(back)


@require_http_methods(["GET", "POST"])
@release_manager_required
def flag_create(request: HttpRequest) -> HttpResponse:
    form = FlagCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                flag = services.flag_create(
                    key=form.cleaned_data["key"],
                    description=form.cleaned_data["description"],
                    tags=form.cleaned_data["tags"],
                    by=request.user,
                    via=Via.UI,
                )
            except FlagServiceError as exc:
                form.add_error("key", str(exc))
            else:
                messages.success(request, f"Created {flag.key}: it is off everywhere.")
                return redirect(flag)
        status = 400
    return render(request, "flags/create.html", {"form": form}, status=status)


def _detail_states_context(flag: Flag) -> dict[str, Any]:
    states = list(
        FlagState.objects.filter(flag=flag).select_related("environment").order_by("environment_id")
    )
    return {"flag": flag, "states": states}


def _chart(flag: Flag) -> dict[str, Any]:
    series = runtime.counts_for_flag(flag.pk, hours=CHART_HOURS)
    peak = max((c for _h, c in series), default=0)
    width, height, gap = 20, 80, 4
    bars = []
    for index, (hour, count) in enumerate(series):
        bar_height = round(height * count / peak) if peak else 0
        bars.append(
            {
                "x": index * (width + gap),
                "y": height - bar_height,
                "width": width,
                "height": bar_height,
                "hour": hour,
                "count": count,
            }
        )
    return {
        "bars": bars,
        "peak": peak,
        "total": sum(c for _h, c in series),
        "svg_width": CHART_HOURS * (width + gap),
        "svg_height": height,
    }


def _detail_context(
    request: HttpRequest, flag: Flag, *, forms: dict[int, TargetingForm] | None = None
) -> dict[str, Any]:
    context = _detail_states_context(flag)
    forms = forms or {}
    context["editors"] = [
        {
            "state": state,
            "form": forms.get(state.environment_id)
            or TargetingForm(
                initial={
                    "rollout_percentage": state.rollout_percentage,
                    "rules": json.dumps(state.rules, indent=1) if state.rules else "",
                },
                prefix=state.environment.key,
            ),
        }
        for state in context["states"]
    ]
    context["history"] = Paginator(
        flag.events.select_related("environment", "actor"), HISTORY_ON_PAGE
    ).get_page(request.GET.get("page"))
    context["chart"] = _chart(flag)
    context["sources"] = list(
        flag.events.exclude(source_url="")
        .values("source_url", "source_label")
        .distinct()
        .order_by("source_url")[:50]
    )
    return context


@require_GET
@viewer_required
def flag_detail(request: HttpRequest, key: str) -> HttpResponse:
    flag = _get_flag_for_user(request, key)
    context = _detail_context(request, flag)
    if request.htmx and request.GET.get("page"):
        return render(request, "flags/detail.html#history", context)
    return render(request, "flags/detail.html", context)


@require_POST
@release_manager_required
def flag_targeting(request: HttpRequest, key: str, environment: str) -> HttpResponse:
    flag = _get_flag_for_user(request, key)
    env = _get_environment(environment)
    form = TargetingForm(request.POST, prefix=env.key)
    if form.is_valid():
        try:
            change = services.flag_set_targeting(
                flag=flag,
                environment=env,
                rollout_percentage=form.cleaned_data["rollout_percentage"],
                rules=form.cleaned_data["rules"],
                by=request.user,
                via=Via.UI,
                reason=form.cleaned_data["reason"],
            )
        except FlagServiceError as exc:
            form.add_error(None, str(exc))
        else:
            if change.changed:
                messages.success(request, f"Targeting of {flag.key} in {env.name} saved.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect(flag)
    context = _detail_context(request, flag, forms={env.pk: form})
    return render(request, "flags/detail.html", context, status=400)


@require_POST
@release_manager_required
def flag_archive(request: HttpRequest, key: str) -> HttpResponse:
    flag = _get_flag_for_user(request, key)
    reason = request.POST.get("reason", "").strip()[:500]
    if services.flag_archive(flag=flag, by=request.user, via=Via.UI, reason=reason):
        messages.success(request, f"{flag.key} is archived: clients now get FLAG_NOT_FOUND.")
    else:
        messages.info(request, f"{flag.key} was already archived.")
    return redirect(flag)


@require_http_methods(["GET", "POST"])
@viewer_required
def token_list(request: HttpRequest) -> HttpResponse:
    # Each person manages their own tokens only; stakeholders' tokens can only read.
    form = TokenCreateForm(request.POST or None)
    status, plaintext = 200, None
    if request.method == "POST":
        if form.is_valid():
            try:
                _token, plaintext = services.api_token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scope=form.cleaned_data["scope"],
                    environment=form.cleaned_data["environment"],
                )
            except FlagServiceError as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                form = TokenCreateForm()
        else:
            status = 400
    tokens = ApiToken.objects.filter(user=request.user).select_related("environment")
    context = {"form": form, "tokens": tokens, "plaintext": plaintext}
    return render(request, "flags/tokens.html", context, status=status)


@require_POST
@viewer_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if services.api_token_revoke(token=token):
        messages.success(request, f"Revoked {token.name}: it stops working at once.")
    return redirect("flags:tokens")
