"""Setting upgrades up: the new-upgrade form, editing before the deployment starts, trying an
ended upgrade again, and the deployment freezes that say when nothing but an emergency ships.

Thin views like the rest: forms check the input's shape, services decide, and a service's
refusal lands on the field it names (400) or as the table's sentence (409).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flags.selectors import flag_list
from mycelia_ops.roles import is_release_manager, release_manager_required, viewer_required
from upgrades import selectors, services
from upgrades.forms import FreezeForm, UpgradeCreateForm, UpgradeEditForm
from upgrades.models import (
    TYPE_PROFILES,
    Action,
    DeploymentFreeze,
    Environment,
    PlaybookTemplate,
    Risk,
    Upgrade,
    UpgradeType,
)

FLAG_SUGGESTIONS = 500


def _upgrade_or_404(upgrade_id: int) -> Upgrade:
    # Every release manager and stakeholder sees every upgrade; the decorators turned the
    # others away.
    return get_object_or_404(
        Upgrade.objects.select_related("environment", "owner", "cloned_from"), pk=upgrade_id
    )


def _put_on_form(form, error: services.UpgradeError) -> None:
    """A service's refusal on the field it names (the whole form when it names none)."""
    form.add_error(error.field if error.field in form.fields else None, error.message)


def _flag_keys() -> list[str]:
    """The flags an upgrade may name, for the form's suggestions."""
    return list(flag_list().values_list("key", flat=True)[:FLAG_SUGGESTIONS])


def _type_profiles() -> list[dict[str, str]]:
    return [
        {
            "label": UpgradeType(kind).label,
            "purpose": profile["purpose"],
            "risk": Risk(profile["risk"]).label,
            "rollback": profile["rollback"].label,
        }
        for kind, profile in TYPE_PROFILES.items()
    ]


# --- the freeze notices of the new-upgrade form --------------------------------------------


def _window_freezes(form) -> list[selectors.FreezeSpan]:
    """The freezes the chosen environment's window would fall in, from what the form holds
    (valid or not: only the fields that parsed are used)."""
    environment = _parsed(form, "environment")
    start = _parsed(form, "window_start")
    if not isinstance(environment, Environment) or start is None:
        return []
    minutes = _parsed(form, "window_minutes")
    return selectors.freezes_over_window(
        environment=environment,
        starts_at=start,
        minutes=minutes if isinstance(minutes, int) else None,
    )


def _parsed(form, name: str) -> Any:
    field = form.fields[name]
    raw = form[name].data if form.is_bound else form.initial.get(name)
    if raw in (None, ""):
        return None
    try:
        value = field.clean(raw)
    except Exception:  # noqa: BLE001 - a field that does not parse says nothing about freezes
        return None
    if name == "window_start" and value is not None and not 2000 <= value.year <= 2100:
        return None
    return value


def _notice_context(form) -> dict[str, Any]:
    environment = _parsed(form, "environment")
    return {
        "freezes_now": selectors.freezes_in_effect(),
        "window_freezes": _window_freezes(form),
        "chosen_environment": environment if isinstance(environment, Environment) else None,
    }


@require_GET
@viewer_required
def freeze_notices(request: HttpRequest) -> HttpResponse:
    """The notices of the new-upgrade form for what it holds now (HTMX, on change)."""
    form = UpgradeCreateForm(request.GET)
    return render(request, "upgrades/create.html#freeze-notices", _notice_context(form))


# --- a new upgrade -------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@release_manager_required
def upgrade_create(request: HttpRequest) -> HttpResponse:
    form = UpgradeCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                upgrade = services.upgrade_create(
                    upgrade_type=data["upgrade_type"],
                    emergency_kind=data["emergency_kind"],
                    title=data["title"],
                    environment=data["environment"],
                    owner=request.user,
                    by=request.user,
                    version_from=data["version_from"],
                    version_to=data["version_to"],
                    flag_key=data["flag_key"],
                    risk=data["risk"] or None,
                    window_start=data["window_start"],
                    window_minutes=data["window_minutes"],
                )
            except services.UpgradeError as error:
                _put_on_form(form, error)
                status = error.status
            else:
                messages.success(request, f"Upgrade “{upgrade.title}” created.")
                _warn_about_freezes(request, upgrade)
                return redirect(upgrade)
        else:
            status = 400
    context = {
        "form": form,
        "profiles": _type_profiles(),
        "no_environments": not Environment.objects.exists(),
        "no_templates": not PlaybookTemplate.objects.exists(),
        "flag_keys": _flag_keys(),
        **_notice_context(form),
    }
    return render(request, "upgrades/create.html", context, status=status)


def _warn_about_freezes(request: HttpRequest, upgrade: Upgrade) -> None:
    if upgrade.window_start is None:
        return
    for span in selectors.freezes_over_window(
        environment=upgrade.environment,
        starts_at=upgrade.window_start,
        minutes=upgrade.window_minutes,
    ):
        messages.warning(
            request,
            f"Its window falls in deployment freeze “{span.freeze.name}”: scheduling, starting "
            "and deploying are refused inside it unless the upgrade is an emergency.",
        )


# --- editing until the deployment starts ---------------------------------------------------


@require_http_methods(["GET", "POST"])
@release_manager_required
def upgrade_edit(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _upgrade_or_404(upgrade_id)
    verdict = selectors.lifecycle_verdicts(upgrade, actor=request.user)[Action.EDIT]
    context: dict[str, Any] = {
        "upgrade": upgrade,
        "refusal": "" if verdict.allowed else verdict.why,
        "freeze_span": selectors.upgrade_freeze(upgrade),
    }
    if not verdict.allowed:
        return render(request, "upgrades/edit.html", context, status=409)
    form = UpgradeEditForm(request.POST or None, upgrade=upgrade)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.upgrade_edit(upgrade=upgrade, by=request.user, changes=form.changes())
            except services.Refused as error:
                context["refusal"] = error.message
                return render(request, "upgrades/edit.html", context, status=error.status)
            except services.UpgradeError as error:
                _put_on_form(form, error)
                status = error.status
            else:
                messages.success(request, "Changes saved: each is on the timeline.")
                return redirect(upgrade)
        else:
            status = 400
    context.update({"form": form, "flag_keys": _flag_keys()})
    return render(request, "upgrades/edit.html", context, status=status)


# --- trying again ----------------------------------------------------------------------------


@require_POST
@release_manager_required
def upgrade_clone(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _upgrade_or_404(upgrade_id)
    try:
        acted = services.upgrade_act(upgrade=upgrade, action=Action.CLONE, by=request.user)
    except services.UpgradeError as error:
        return render(
            request,
            "error.html",
            {"status": error.status, "title": "Not tried again", "detail": error.message},
            status=error.status,
        )
    messages.success(
        request,
        f"New draft #{acted.upgrade.pk}, a new try of #{upgrade.pk}: check its details and "
        "window (Edit), then schedule it.",
    )
    return redirect(acted.upgrade)


# --- deployment freezes ----------------------------------------------------------------------


def _freezes_page(request: HttpRequest, *, form=None, error: str = "", status: int = 200):
    board = selectors.freeze_board()
    past = Paginator(board["past"], settings.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **board,
        "past_page": past,
        "form": form
        if form is not None
        else (
            FreezeForm(initial=_new_freeze_initial()) if is_release_manager(request.user) else None
        ),
        "error": error,
    }
    return render(request, "upgrades/freezes.html", context, status=status)


def _new_freeze_initial() -> dict[str, Any]:
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0)
    start += timedelta(hours=1)
    return {"starts_at": start, "ends_at": start + timedelta(hours=4)}


@require_GET
@viewer_required
def freeze_list(request: HttpRequest) -> HttpResponse:
    return _freezes_page(request)


@require_POST
@release_manager_required
def freeze_create(request: HttpRequest) -> HttpResponse:
    form = FreezeForm(request.POST)
    if not form.is_valid():
        return _freezes_page(request, form=form, status=400)
    data = form.cleaned_data
    try:
        freeze = services.freeze_create(
            name=data["name"],
            reason=data["reason"],
            environments=list(data["environments"]),
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            weekly=data["weekly"],
            by=request.user,
        )
    except services.UpgradeError as error:
        _put_on_form(form, error)
        return _freezes_page(request, form=form, status=error.status)
    messages.success(request, f"Freeze “{freeze.name}” declared.")
    return redirect(reverse("upgrades:freezes") + f"#freeze-{freeze.pk}")


@require_POST
@release_manager_required
def freeze_lift(request: HttpRequest, freeze_id: int) -> HttpResponse:
    freeze = get_object_or_404(DeploymentFreeze, pk=freeze_id)
    if request.POST.get("confirm") != "yes":
        # The button inside the "Lift now" disclosure sends confirm=yes; nothing else lifts.
        return _freezes_page(
            request,
            error=f"“{freeze.name}” was not lifted: open “Lift now” and confirm with its button.",
            status=400,
        )
    try:
        services.freeze_end(freeze=freeze, by=request.user)
    except services.UpgradeError as error:
        return _freezes_page(request, error=error.message, status=error.status)
    messages.success(request, f"Freeze “{freeze.name}” lifted: deployments may go ahead.")
    return redirect(reverse("upgrades:freezes") + f"#freeze-{freeze.pk}")
