"""Thin views: read with selectors, write with services, answer HTMX with named partials."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import trigger_client_event

from mycelia_ops.roles import release_manager_required, viewer_required
from upgrades import selectors, services
from upgrades.forms import FollowUpForm, StepUpdateForm, UpgradeCreateForm
from upgrades.models import (
    TYPE_PROFILES,
    Artifact,
    ChecklistStep,
    CheckRun,
    Environment,
    PostUpgradeReview,
    Risk,
    Transition,
    Upgrade,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
)

TIMELINE_ON_PAGE = 30


def _get_upgrade_for_user(request: HttpRequest, upgrade_id: int) -> Upgrade:
    # Every signed-in release manager and stakeholder sees every upgrade; the role decorators
    # have already turned everyone else away.
    return get_object_or_404(
        Upgrade.objects.select_related("environment", "owner", "template"), pk=upgrade_id
    )


@require_GET
@viewer_required
def upgrade_list(request: HttpRequest) -> HttpResponse:
    filters = {
        "upgrade_type": request.GET.get("type", ""),
        "status": request.GET.get("status", ""),
        "environment": request.GET.get("environment", ""),
        "query": request.GET.get("q", "").strip(),
    }
    page = Paginator(selectors.upgrade_list(**filters), settings.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    selectors.attach_progress(page.object_list)
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "types": UpgradeType.choices,
        "statuses": UpgradeStatus.choices,
        "environments": Environment.objects.all(),
        "query_string": query_without_page.urlencode(),
    }
    template = "upgrades/list.html#results" if request.htmx else "upgrades/list.html"
    return render(request, template, context)


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
                form.add_error(error.field if error.field in form.fields else None, error.message)
                status = error.status
            else:
                messages.success(request, f"Upgrade “{upgrade.title}” created.")
                return redirect(upgrade)
        else:
            status = 400
    context = {
        "form": form,
        "profiles": _profiles(),
        "no_environments": not Environment.objects.exists(),
    }
    return render(request, "upgrades/create.html", context, status=status)


def _profiles() -> list[dict[str, str]]:
    return [
        {
            "label": UpgradeType(kind).label,
            "purpose": profile["purpose"],
            "risk": Risk(profile["risk"]).label,
            "rollback": profile["rollback"].label,
        }
        for kind, profile in TYPE_PROFILES.items()
    ]


def _detail_context(request: HttpRequest, upgrade: Upgrade, *, error: str = "") -> dict:
    return {
        "upgrade": upgrade,
        "checklist": selectors.upgrade_checklist(upgrade),
        "timeline": selectors.upgrade_timeline(upgrade)[:TIMELINE_ON_PAGE],
        "timeline_more": selectors.upgrade_timeline(upgrade).count() > TIMELINE_ON_PAGE,
        "transitions": [Transition(t) for t in upgrade.allowed_transitions()],
        "decisions": upgrade.decisions.select_related("decided_by")[:5],
        "risks": Risk.choices,
        "error": error,
        "step_form": StepUpdateForm(),
        "last_runs": selectors.last_run_by_step(upgrade),
        "monitoring": selectors.monitoring_chart(upgrade),
        "reviews": selectors.upgrade_reviews(upgrade),
        "follow_up_form": FollowUpForm(),
        **_runs_context(upgrade),
    }


def _render_detail(
    request: HttpRequest, upgrade: Upgrade, *, error: str = "", status: int = 200
) -> HttpResponse:
    template = "upgrades/detail.html#body" if request.htmx else "upgrades/detail.html"
    return render(request, template, _detail_context(request, upgrade, error=error), status=status)


@require_GET
@viewer_required
def upgrade_detail(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    return _render_detail(request, _get_upgrade_for_user(request, upgrade_id))


@require_GET
@viewer_required
def upgrade_timeline(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    page = Paginator(selectors.upgrade_timeline(upgrade), 50).get_page(request.GET.get("page"))
    return render(request, "upgrades/timeline.html", {"upgrade": upgrade, "page": page})


def _after_write(
    request: HttpRequest, upgrade_id: int, *, error: services.UpgradeError | None, done: str
) -> HttpResponse:
    """One answer for every write: the refreshed body for HTMX, a redirect (or the page with
    the refusal) without JavaScript."""
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    if error is not None:
        return _render_detail(request, upgrade, error=error.message, status=error.status)
    if request.htmx:
        return _render_detail(request, upgrade)
    if done:
        messages.success(request, done)
    return redirect(upgrade)


@require_POST
@release_manager_required
def step_action(request: HttpRequest, upgrade_id: int, step_id: int, action: str) -> HttpResponse:
    step = get_object_or_404(ChecklistStep, pk=step_id, upgrade_id=upgrade_id)
    text = request.POST.get("reason", "") or request.POST.get("note", "")
    error = None
    done = ""
    try:
        if action == "complete":
            _, changed = services.step_complete(step=step, by=request.user, note=text)
            done = f"“{step.title}” done." if changed else f"“{step.title}” was already done."
        elif action == "reopen":
            services.step_reopen(step=step, by=request.user, reason=text)
            done = f"“{step.title}” reopened."
        elif action == "skip":
            services.step_skip(step=step, by=request.user, reason=text)
            done = f"“{step.title}” marked not doing."
        elif action == "update":
            form = StepUpdateForm(request.POST)
            if not form.is_valid():
                problems = "; ".join(
                    f"{name.replace('_', ' ')}: {' '.join(errs)}"
                    for name, errs in form.errors.items()
                )
                raise services.InvalidInput(f"Step details not saved: {problems}")
            services.step_update(step=step, by=request.user, **form.cleaned_data)
            done = f"“{step.title}” updated."
        else:
            raise services.InvalidInput(f"Unknown step action {action!r}.")
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done=done)


@require_POST
@release_manager_required
def upgrade_transition(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    error = None
    try:
        upgrade = services.upgrade_transition(
            upgrade=upgrade,
            transition=request.POST.get("transition", ""),
            by=request.user,
            reason=request.POST.get("reason", ""),
            override_reason=request.POST.get("override_reason", ""),
        )
    except services.UpgradeError as exc:
        error = exc
    return _after_write(
        request,
        upgrade_id,
        error=error,
        done=f"Upgrade is now {upgrade.get_status_display().lower()}.",
    )


@require_POST
@release_manager_required
def upgrade_decide(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    error = None
    try:
        services.upgrade_decide(
            upgrade=upgrade,
            by=request.user,
            decision=request.POST.get("decision", ""),
            reason=request.POST.get("reason", ""),
        )
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Go/no-go decision recorded.")


@require_POST
@release_manager_required
def upgrade_set_risk(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    error = None
    try:
        services.upgrade_set_risk(
            upgrade=upgrade,
            by=request.user,
            risk=request.POST.get("risk", ""),
            reason=request.POST.get("reason", ""),
        )
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Risk updated.")


# --- runs: checks, backups, deploys and rollbacks on the workers ------------------------------


def _runs_context(upgrade: Upgrade) -> dict:
    runs = list(selectors.upgrade_runs(upgrade))
    return {
        "upgrade": upgrade,
        "runs": runs,
        "runs_active": any(r.is_active for r in runs),
        "runs_finished": sum(1 for r in runs if not r.is_active),
        "artifacts": upgrade.artifacts.all()[:50],
    }


@require_GET
@viewer_required
def upgrade_runs(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    """The runs panel, polled while anything runs. When a run has finished since the page last
    looked, the checklist is told to refresh (a passed check ticks its step)."""
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    context = _runs_context(upgrade)
    response = render(request, "upgrades/detail.html#runs", context)
    seen = request.GET.get("finished", "")
    if seen.isdigit() and int(seen) != context["runs_finished"]:
        response = trigger_client_event(response, "upgrade-changed")
    return response


def _after_run_write(request: HttpRequest, upgrade_id: int, *, error, done: str) -> HttpResponse:
    response = _after_write(request, upgrade_id, error=error, done=done)
    if request.htmx and error is None:
        response = trigger_client_event(response, "runs-changed")
    return response


@require_POST
@release_manager_required
def step_run(request: HttpRequest, upgrade_id: int, step_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    step = get_object_or_404(ChecklistStep, pk=step_id, upgrade_id=upgrade_id)
    error = None
    try:
        services.check_run_request(upgrade=upgrade, step=step, by=request.user)
    except services.UpgradeError as exc:
        error = exc
    return _after_run_write(request, upgrade_id, error=error, done=f"“{step.title}” queued.")


@require_POST
@release_manager_required
def phase_run(request: HttpRequest, upgrade_id: int, phase_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    phase = get_object_or_404(UpgradePhase, pk=phase_id, upgrade_id=upgrade_id)
    error = None
    runs: list = []
    try:
        runs = services.phase_checks_request(upgrade=upgrade, phase=phase, by=request.user)
    except services.UpgradeError as exc:
        error = exc
    return _after_run_write(
        request, upgrade_id, error=error, done=f"{len(runs)} check(s) of “{phase.title}” queued."
    )


@require_POST
@release_manager_required
def upgrade_action(request: HttpRequest, upgrade_id: int, action: str) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    backup = request.POST.get("backup", "")
    error = None
    try:
        run = services.action_request(
            upgrade=upgrade,
            action=action,
            by=request.user,
            confirmed=request.POST.get("confirm") == "yes",
            backup_id=int(backup) if backup.isdigit() else None,
        )
    except services.UpgradeError as exc:
        error = exc
        run = None
    return _after_run_write(
        request, upgrade_id, error=error, done=f"{run.title} queued." if run else ""
    )


@require_POST
@release_manager_required
def run_cancel(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    run = get_object_or_404(CheckRun, pk=run_id, upgrade_id=upgrade_id)
    error = None
    try:
        services.check_run_cancel(run=run, by=request.user)
    except services.UpgradeError as exc:
        error = exc
    return _after_run_write(request, upgrade_id, error=error, done=f"Run #{run.pk} cancelled.")


@require_GET
@viewer_required
def run_detail(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    run = get_object_or_404(CheckRun.objects.select_related("step"), pk=run_id, upgrade=upgrade)
    solutions = selectors.solutions_for(run)
    return render(
        request, "upgrades/run.html", {"upgrade": upgrade, "run": run, "solutions": solutions}
    )


@require_GET
@viewer_required
def run_log(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    """What the run printed since `offset`: the log tails by fetching only what is new."""
    run = get_object_or_404(CheckRun, pk=run_id, upgrade_id=upgrade_id)
    offset = request.GET.get("offset", "0")
    if not offset.isdigit():
        return render(
            request, "error.html",
            {"status": 400, "title": "Bad request", "detail": "offset must be a whole number"},
            status=400,
        )  # fmt: skip
    chunk, size = services.check_run_log(run=run, offset=int(offset))
    run.refresh_from_db(fields=["status", "reason", "finished_at", "duration_ms"])
    return render(
        request, "upgrades/run.html#log", {"run": run, "chunk": chunk, "offset": size,
                                           "upgrade_id": upgrade_id},
    )  # fmt: skip


@require_GET
@release_manager_required
def artifact_download(request: HttpRequest, upgrade_id: int, artifact_id: int) -> HttpResponse:
    artifact = get_object_or_404(Artifact, pk=artifact_id, upgrade_id=upgrade_id)
    path = Path(artifact.path)
    if not path.is_file():
        raise Http404(f"The file of {artifact.name} is no longer on disk.")
    return FileResponse(path.open("rb"), as_attachment=True, filename=artifact.name)


# --- monitoring ----------------------------------------------------------------------------------


@require_GET
@viewer_required
def upgrade_monitoring(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    chart = selectors.monitoring_chart(upgrade)
    if chart is None:
        raise Http404("This upgrade has no monitoring window yet.")
    return render(request, "upgrades/_monitoring.html", {"upgrade": upgrade, "monitoring": chart})


@require_POST
@release_manager_required
def monitoring_extend(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    error = None
    try:
        try:
            hours = float(request.POST.get("hours", ""))
        except ValueError:
            raise services.InvalidInput("Give the hours to extend by as a number.") from None
        services.monitoring_window_extend(upgrade=upgrade, by=request.user, hours=hours)
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Monitoring window extended.")


@require_POST
@release_manager_required
def monitoring_end(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    error = None
    try:
        services.monitoring_window_end(
            upgrade=upgrade, by=request.user, reason=request.POST.get("reason", "")
        )
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Monitoring window ended.")


# --- post-upgrade reviews and lessons learned ----------------------------------------------------


@require_POST
@release_manager_required
def review_save(request: HttpRequest, upgrade_id: int, review_id: int) -> HttpResponse:
    review = get_object_or_404(PostUpgradeReview, pk=review_id, upgrade_id=upgrade_id)
    error = None
    try:
        done_items = {int(i) for i in request.POST.getlist("done") if i.isdigit()}
        review = services.review_update(
            review=review, by=request.user, done_items=done_items,
            notes=request.POST.get("notes", ""), lessons=request.POST.get("lessons", ""),
        )  # fmt: skip
        if request.POST.get("complete") == "yes":
            services.review_complete(review=review, by=request.user)
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Review saved.")


@require_POST
@release_manager_required
def follow_up_create(request: HttpRequest, upgrade_id: int, review_id: int) -> HttpResponse:
    review = get_object_or_404(PostUpgradeReview, pk=review_id, upgrade_id=upgrade_id)
    form = FollowUpForm(request.POST)
    error = None
    try:
        if not form.is_valid():
            raise services.InvalidInput(
                "Follow-up not added: "
                + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            )
        services.follow_up_add(review=review, by=request.user, **form.cleaned_data)
    except services.UpgradeError as exc:
        error = exc
    return _after_write(request, upgrade_id, error=error, done="Follow-up added.")


@require_GET
@viewer_required
def lessons(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.lessons_learned(query=query), settings.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "upgrades/lessons.html", {"page": page, "query": query})


@require_GET
@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    template = "upgrades/dashboard.html#board" if request.htmx else "upgrades/dashboard.html"
    return render(request, template, selectors.dashboard())


# --- the report ------------------------------------------------------------------------------------


@require_GET
@viewer_required
def upgrade_report(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    return render(request, "upgrades/report.html", selectors.upgrade_report(upgrade))


@require_GET
@viewer_required
def upgrade_report_markdown(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    response = render(
        request,
        "upgrades/report.md",
        selectors.upgrade_report(upgrade),
        content_type="text/markdown; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="upgrade-{upgrade.pk}-report.md"'
    return response
