"""The upgrade page and every form on it.

A GET renders the whole page. A write calls one service and answers:
- with HTMX: the region the form came from, and out of band (hx-swap-oob) only the other
  regions that changed: the step and its phase header, the overall progress, the actions, the
  runs, the timeline, the message in the live region. Never the whole page body.
- without JavaScript: a redirect back to where the form was (`#step-<id>`, `#lifecycle`, ...).
- refused: the service's sentence with its status (409, 400): in the live region for HTMX, on
  the page (with that status) without JavaScript.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from mycelia_ops.roles import release_manager_required, viewer_required
from upgrades import outcome, page, selectors, services
from upgrades.forms import FollowUpForm, StepUpdateForm
from upgrades.models import (
    Action,
    ChecklistStep,
    CheckRun,
    PostUpgradeReview,
    Risk,
    Upgrade,
    UpgradePhase,
)

TIMELINE_ON_PAGE = 30
PAGE = "upgrades/detail.html"


def _get_upgrade(upgrade_id: int) -> Upgrade:
    # Every signed-in release manager and stakeholder sees every upgrade; the role decorators
    # have already turned everyone else away.
    return get_object_or_404(
        Upgrade.objects.select_related("environment", "owner", "template", "cloned_from"),
        pk=upgrade_id,
    )


def _edit_url(upgrade: Upgrade) -> str:
    # The edit page is another engineer's; link to it once it exists.
    try:
        return reverse("upgrades:edit", args=[upgrade.pk])
    except NoReverseMatch:
        return ""


def _context(request: HttpRequest, upgrade: Upgrade, **extra: Any) -> dict[str, Any]:
    """Everything the page shows, read once; each region renders from it."""
    checklist = page.checklist(upgrade)
    actions = page.actions(upgrade, actor=request.user)
    runs = list(selectors.upgrade_runs(upgrade))
    active = [r.pk for r in runs if r.is_active]
    timeline = selectors.upgrade_timeline(upgrade)
    events = list(timeline[: TIMELINE_ON_PAGE + 1])
    locks = page.locks_key(upgrade)
    return {
        "upgrade": upgrade,
        "stepper": page.stepper(upgrade),
        "actions": actions,
        "checklist": checklist,
        "runs": runs,
        "runs_active": bool(active),
        "runs_query": f"active={','.join(map(str, active))}&state={actions.key}&locks={locks}",
        # The monitoring poll's fingerprint of what the page shows (upgrade_monitoring).
        "monitoring_query": f"state={actions.key}&locks={locks}",
        "artifacts": upgrade.artifacts.all()[:50],
        "timeline": events[:TIMELINE_ON_PAGE],
        "timeline_more": len(events) > TIMELINE_ON_PAGE,
        "decisions": upgrade.decisions.select_related("decided_by")[:5],
        "monitoring": selectors.monitoring_chart(upgrade),
        "reviews": selectors.upgrade_reviews(upgrade),
        "follow_up_form": FollowUpForm(),
        # A fresh list each time: the form class's queryset must not cache users across requests.
        "assignees": list(StepUpdateForm.base_fields["assignee"].queryset.all()),
        "risks": Risk.choices,
        "freeze": None if upgrade.is_finished else selectors.active_freeze(upgrade),
        "clones": list(upgrade.clones.all()[:10]),
        "edit_url": _edit_url(upgrade),
        # Runs whose outcome nobody knows, each with the decisions open to this person.
        "unknown": outcome.pending_decisions(
            upgrade, actor=request.user, facts=actions.facts, runs=runs
        ),
        **extra,
    }


def _page(
    request: HttpRequest, upgrade: Upgrade, *, error: str = "", error_step: int | None = None,
    status: int = 200,
) -> HttpResponse:  # fmt: skip
    context = _context(request, upgrade, error=error, error_step=error_step)
    return render(request, PAGE, context, status=status)


@require_GET
@viewer_required
def upgrade_detail(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    return _page(request, _get_upgrade(upgrade_id))


# --- answering a write ---------------------------------------------------------------------------


@dataclass
class _Before:
    """What the page showed before a write, to tell which regions the write changed."""

    actions_key: str
    locks: str
    state: str

    @classmethod
    def of(cls, request: HttpRequest, upgrade: Upgrade) -> _Before:
        actions_key = page.actions(upgrade, actor=request.user).key
        return cls(actions_key, page.locks_key(upgrade), _state(upgrade))


def _state(upgrade: Upgrade) -> str:
    """What the header shows of the upgrade's state."""
    return "|".join(
        (upgrade.status, upgrade.deploy_state, upgrade.rollback_state, upgrade.approval,
         upgrade.risk, upgrade.deployed_version)
    )  # fmt: skip


@dataclass
class _Regions:
    """The regions an answer carries: `main` is swapped where the form pointed (hx-target), the
    rest out of band by their ids."""

    main: tuple[str, int | None]
    oob: list[tuple[str, int | None]] = field(default_factory=list)

    def add(self, name: str, ref: int | None = None) -> None:
        if (name, ref) != self.main and (name, ref) not in self.oob:
            self.oob.append((name, ref))


def _render_region(
    request: HttpRequest, context: dict, name: str, ref: int | None, *, oob: bool
) -> str:
    checklist: page.Checklist = context["checklist"]
    extra: dict[str, Any] = {"oob": oob}
    if name == "step":
        extra["sv"] = checklist.step(ref)
        if extra["sv"] is None:
            return ""
    elif name in ("phase", "phase_head", "phase_tools"):
        extra["pv"] = checklist.phase(ref)
        if extra["pv"] is None:
            return ""
    return render_to_string(f"{PAGE}#{name}", {**context, **extra}, request=request)


def _answer(
    request: HttpRequest,
    upgrade_id: int,
    *,
    regions: _Regions,
    notice: str,
    anchor: str,
    before: _Before | None = None,
) -> HttpResponse:
    """A write that went through: the changed regions for HTMX, else back to `anchor`."""
    upgrade = _get_upgrade(upgrade_id)
    if not request.htmx:
        if notice:
            messages.success(request, notice)
        return redirect(f"{upgrade.get_absolute_url()}#{anchor}")
    context = _context(request, upgrade, notice=notice)
    if before is not None:
        _add_changed(regions, before, upgrade, context)
    regions.add("timeline")
    regions.add("message")
    html = [_render_region(request, context, *regions.main, oob=False)]
    html += [_render_region(request, context, name, ref, oob=True) for name, ref in regions.oob]
    return HttpResponse("".join(html))


def _add_changed(regions: _Regions, before: _Before, upgrade: Upgrade, context: dict) -> None:
    """Add the regions whose content the write changed beyond the ones it names."""
    if context["actions"].key != before.actions_key:
        regions.add("lifecycle")
    if _state(upgrade) != before.state:
        for name in ("header", "runs", "unknown", "decisions", "monitoring_slot", "reviews_slot"):
            regions.add(name)
    changed = page.stages_changed(before.locks, page.locks_key(upgrade))
    for pv in context["checklist"].phases:
        if pv.phase.stage in changed:
            regions.add("phase", pv.phase.pk)


def _refused(
    request: HttpRequest,
    upgrade_id: int,
    error: services.UpgradeError,
    *,
    step_id: int | None = None,
) -> HttpResponse:
    """A refusal: the sentence in the live region (HTMX), or the page with it (no JavaScript),
    with the refusal's status either way."""
    if request.htmx:
        response = HttpResponse(
            format_html('<p class="alert" role="alert">{}</p>', error.message), status=error.status
        )
        return reswap(retarget(response, "#page-message"), "innerHTML")
    return _page(
        request, _get_upgrade(upgrade_id), error=error.message, error_step=step_id,
        status=error.status,
    )  # fmt: skip


def _step_regions(step: ChecklistStep) -> _Regions:
    regions = _Regions(main=("step", step.pk))
    regions.add("phase_head", step.phase_id)
    regions.add("phase_tools", step.phase_id)
    regions.add("progress")
    return regions


# --- steps and phases ------------------------------------------------------------------------------


@require_POST
@release_manager_required
def step_action(request: HttpRequest, upgrade_id: int, step_id: int, action: str) -> HttpResponse:
    step = get_object_or_404(ChecklistStep, pk=step_id, upgrade_id=upgrade_id)
    before = _Before.of(request, step.upgrade)
    post = request.POST
    try:
        if action == "complete":
            override = post.get("override_reason", "")
            step, changed = services.step_complete(
                step=step, by=request.user, note=post.get("note", ""), override_reason=override
            )
            if not changed:
                notice = f"“{step.title}” was already done."
            elif step.accepted_despite_failure:
                notice = f"“{step.title}” accepted despite its failed check."
            else:
                notice = f"“{step.title}” done."
        elif action == "reopen":
            services.step_reopen(step=step, by=request.user, reason=post.get("reason", ""))
            notice = f"“{step.title}” reopened."
        elif action == "skip":
            services.step_skip(step=step, by=request.user, reason=post.get("reason", ""))
            notice = f"“{step.title}” marked not doing."
        elif action == "update":
            form = StepUpdateForm(post)
            if not form.is_valid():
                problems = "; ".join(
                    f"{name.replace('_', ' ')}: {' '.join(errs)}"
                    for name, errs in form.errors.items()
                )
                raise services.InvalidInput(f"Step details not saved: {problems}")
            services.step_update(step=step, by=request.user, **form.cleaned_data)
            notice = f"Details of “{step.title}” saved."
        else:
            raise services.InvalidInput(f"Unknown step action “{action}”.", field="action")
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error, step_id=step.pk)
    return _answer(
        request, upgrade_id, regions=_step_regions(step), notice=notice,
        anchor=f"step-{step.pk}", before=before,
    )  # fmt: skip


@require_POST
@release_manager_required
def step_run(request: HttpRequest, upgrade_id: int, step_id: int) -> HttpResponse:
    step = get_object_or_404(ChecklistStep, pk=step_id, upgrade_id=upgrade_id)
    before = _Before.of(request, step.upgrade)
    try:
        run = services.check_run_request(upgrade=step.upgrade, step=step, by=request.user)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error, step_id=step.pk)
    regions = _step_regions(step)
    regions.add("runs")
    return _answer(
        request, upgrade_id, regions=regions, notice=f"“{step.title}”: check #{run.pk} queued.",
        anchor=f"step-{step.pk}", before=before,
    )  # fmt: skip


@require_POST
@release_manager_required
def phase_run(request: HttpRequest, upgrade_id: int, phase_id: int) -> HttpResponse:
    phase = get_object_or_404(UpgradePhase, pk=phase_id, upgrade_id=upgrade_id)
    try:
        runs = services.phase_checks_request(upgrade=phase.upgrade, phase=phase, by=request.user)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    regions = _Regions(main=("phase_tools", phase.pk))
    for run in runs:
        regions.add("step", run.step_id)
    regions.add("phase_head", phase.pk)
    regions.add("runs")
    return _answer(
        request, upgrade_id, regions=regions,
        notice=f"{len(runs)} check{'s' if len(runs) != 1 else ''} of “{phase.title}” queued.",
        anchor=f"phase-{phase.pk}",
    )  # fmt: skip


@require_POST
@release_manager_required
def phase_skip(request: HttpRequest, upgrade_id: int, phase_id: int) -> HttpResponse:
    phase = get_object_or_404(UpgradePhase, pk=phase_id, upgrade_id=upgrade_id)
    before = _Before.of(request, phase.upgrade)
    try:
        count = services.phase_skip(
            phase=phase, by=request.user, reason=request.POST.get("reason", "")
        )
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    regions = _Regions(main=("phase", phase.pk))
    regions.add("progress")
    return _answer(
        request, upgrade_id, regions=regions,
        notice=f"“{phase.title}”: {count} step{'s' if count != 1 else ''} marked not doing.",
        anchor=f"phase-{phase.pk}", before=before,
    )  # fmt: skip


# --- lifecycle actions -----------------------------------------------------------------------------


def _number(value: str, *, field: str, what: str, kind: type = float) -> Any:
    if not value.strip():
        return None
    try:
        number = kind(value)
    except ValueError:
        raise services.InvalidInput(f"Give {what} as a number.", field=field) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise services.InvalidInput(f"Give {what} as a number.", field=field)
    return number


def _act(request: HttpRequest, upgrade_id: int, action: str, **given: Any) -> HttpResponse:
    """Carry out one lifecycle action through `services.upgrade_act`, the one door."""
    upgrade = _get_upgrade(upgrade_id)
    before = _Before.of(request, upgrade)
    post = request.POST
    try:
        arguments = {
            "reason": post.get("reason", ""),
            "override_reason": post.get("override_reason", ""),
            "decision": post.get("decision", ""),
            "hours": _number(post.get("hours", ""), field="hours", what="the hours to add"),
            "backup_id": _number(
                post.get("backup_id", post.get("backup", "")), field="backup_id",
                what="the backup", kind=int,
            ),
            **given,
        }  # fmt: skip
        acted = services.upgrade_act(upgrade=upgrade, action=action, by=request.user, **arguments)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    if action == Action.CLONE:
        messages.success(request, acted.message)
        url = acted.upgrade.get_absolute_url()
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    regions = _Regions(main=("lifecycle", None))
    for name in ("header", "runs", "unknown", "monitoring_slot", "reviews_slot", "decisions"):
        regions.add(name)
    if acted.run is not None and acted.run.step_id:
        regions.add("step", acted.run.step_id)
    return _answer(
        request, upgrade_id, regions=regions, notice=acted.message, anchor="lifecycle",
        before=before,
    )  # fmt: skip


@require_POST
@release_manager_required
def upgrade_action(request: HttpRequest, upgrade_id: int, action: str) -> HttpResponse:
    """POST /upgrades/<id>/act/<action>/: any action of the lifecycle table."""
    return _act(request, upgrade_id, action)


@require_POST
@release_manager_required
def upgrade_transition(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    """The old status-move form (`transition` = schedule, start, fail, ...), kept for links and
    scripts that post it; the same door as every other action."""
    transition = request.POST.get("transition", "")
    return _act(request, upgrade_id, {"fail": Action.MARK_FAILED}.get(transition, transition))


# The worker actions by their old names, as the lifecycle table names them.
_RUN_ACTION_NAMES = {
    "backup": Action.BACK_UP,
    "deploy": Action.DEPLOY,
    "rollback_version": Action.ROLL_BACK,
    "rollback_flag": Action.ROLL_BACK,
    "rollback_database": Action.RESTORE_DATABASE,
}


@require_POST
@release_manager_required
def upgrade_run_action(request: HttpRequest, upgrade_id: int, action: str) -> HttpResponse:
    """The old run-action URL (/actions/<name>/: backup, deploy, rollback_*, log_tail): the
    lifecycle ones go through the same door; a log tail is a plain run."""
    if action in _RUN_ACTION_NAMES:
        return _act(request, upgrade_id, _RUN_ACTION_NAMES[action])
    upgrade = _get_upgrade(upgrade_id)
    try:
        run = services.action_request(
            upgrade=upgrade, action=action, by=request.user, confirmed=True
        )
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    return _answer(
        request, upgrade_id, regions=_Regions(main=("runs", None)), notice=f"{run.title}: queued.",
        anchor="runs",
    )  # fmt: skip


@require_POST
@release_manager_required
def upgrade_decide(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    return _act(request, upgrade_id, Action.APPROVE)


@require_POST
@release_manager_required
def monitoring_extend(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    return _act(request, upgrade_id, Action.EXTEND_MONITORING)


@require_POST
@release_manager_required
def monitoring_end(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    return _act(request, upgrade_id, Action.END_MONITORING)


@require_POST
@release_manager_required
def upgrade_set_risk(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade(upgrade_id)
    try:
        services.upgrade_set_risk(
            upgrade=upgrade, by=request.user, risk=request.POST.get("risk", ""),
            reason=request.POST.get("reason", ""),
        )  # fmt: skip
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    regions = _Regions(main=("lifecycle", None))
    regions.add("header")
    return _answer(request, upgrade_id, regions=regions, notice="Risk saved.", anchor="lifecycle")


# --- runs --------------------------------------------------------------------------------------------


@require_GET
@viewer_required
def upgrade_runs(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    """The runs panel, polled while anything runs. Out of band it brings what finished runs
    changed: their steps (a passed check ticks its step), the phase headers and progress, and,
    when the upgrade's state moved (a deploy passed, a rollback ended it), the actions."""
    upgrade = _get_upgrade(upgrade_id)
    context = _context(request, upgrade)
    regions = _Regions(main=("runs", None))
    was_active = {int(i) for i in request.GET.get("active", "").split(",") if i.isdigit()}
    finished = CheckRun.objects.filter(pk__in=was_active, upgrade=upgrade).exclude(
        status__in=["queued", "running"]
    )
    steps = set(finished.exclude(step=None).values_list("step_id", flat=True))
    checklist: page.Checklist = context["checklist"]
    for step_id in sorted(steps):
        pv = checklist.phase_of(step_id)
        regions.add("step", step_id)
        if pv is not None:
            regions.add("phase_head", pv.phase.pk)
            regions.add("phase_tools", pv.phase.pk)
    if steps:
        regions.add("progress")
    if any(run.outcome_unknown for run in finished):
        regions.add("unknown")  # nobody knows what it did: the decisions appear
    state = request.GET.get("state", "")
    if state and state != context["actions"].key:
        # The poll knows the actions changed, not how: the header and slots come along.
        before = _Before(state, request.GET.get("locks", ""), "")
        _add_changed(regions, before, upgrade, context)
    if steps or state != context["actions"].key:
        regions.add("timeline")
    html = [_render_region(request, context, *regions.main, oob=False)]
    html += [_render_region(request, context, name, ref, oob=True) for name, ref in regions.oob]
    return HttpResponse("".join(html))


@require_POST
@release_manager_required
def run_cancel(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    run = get_object_or_404(CheckRun, pk=run_id, upgrade_id=upgrade_id)
    before = _Before.of(request, run.upgrade)
    try:
        services.check_run_cancel(run=run, by=request.user)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error, step_id=run.step_id)
    # The form sits in the step (its check) or in the runs panel: answer where it came from.
    from_step = request.POST.get("from_step", "")
    if run.step_id and from_step == str(run.step_id):
        regions = _step_regions(run.step)
        regions.add("runs")
        anchor = f"step-{run.step_id}"
    else:
        regions = _Regions(main=("runs", None))
        if run.step_id:
            regions.add("step", run.step_id)
        anchor = "runs"
    return _answer(
        request, upgrade_id, regions=regions, notice=f"Run #{run.pk} cancelled.", anchor=anchor,
        before=before,
    )  # fmt: skip


# --- runs whose outcome nobody knows: the release manager decides ---------------------------------

RUN_PAGE = "upgrades/run.html"


def _get_run(upgrade_id: int, run_id: int) -> CheckRun:
    return get_object_or_404(
        CheckRun.objects.select_related("step", "upgrade__environment", "resolved_by"),
        pk=run_id, upgrade_id=upgrade_id,
    )  # fmt: skip


def _run_context(request: HttpRequest, run: CheckRun, **extra: Any) -> dict[str, Any]:
    upgrade = run.upgrade
    return {
        "upgrade": upgrade,
        "run": run,
        "solutions": selectors.solutions_for(run),
        "decide": outcome.run_decisions(run, actor=request.user, upgrade=upgrade),
        **extra,
    }


@require_GET
@viewer_required
def run_detail(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    """One run: what it was asked to do, its output, what it measured, and, when its outcome is
    unknown, the decisions open on it."""
    run = _get_run(upgrade_id, run_id)
    return render(request, RUN_PAGE, _run_context(request, run))


def _decided(
    request: HttpRequest, run: CheckRun, *, notice: str, anchor: str, before: _Before
) -> HttpResponse:
    """A decision went through: answer where the form was (the upgrade page's panel or the run
    page), in place for HTMX, else back to the panel's place."""
    if request.POST.get("from") == "run":
        if not request.htmx:
            messages.success(request, notice)
            return redirect(f"{reverse('upgrades:run', args=[run.upgrade_id, run.pk])}#decide")
        fresh = _get_run(run.upgrade_id, run.pk)
        context = _run_context(request, fresh, notice=notice, oob=True, chunk="",
                               offset=len(fresh.output), upgrade_id=fresh.upgrade_id)  # fmt: skip
        html = render_to_string(f"{RUN_PAGE}#decide", {**context, "oob": False}, request=request)
        html += render_to_string(f"{RUN_PAGE}#log", context, request=request)
        return HttpResponse(html)
    regions = _Regions(main=("unknown", None))
    for name in ("header", "runs"):
        regions.add(name)
    if run.step_id:
        step_regions = _step_regions(run.step)
        for name, ref in [step_regions.main, *step_regions.oob]:
            regions.add(name, ref)
    return _answer(
        request, run.upgrade_id, regions=regions, notice=notice, anchor=anchor, before=before
    )


def _refused_decision(
    request: HttpRequest, run: CheckRun, error: services.UpgradeError
) -> HttpResponse:
    if request.POST.get("from") == "run" and not request.htmx:
        context = _run_context(request, run, error=error.message)
        return render(request, RUN_PAGE, context, status=error.status)
    return _refused(request, run.upgrade_id, error)


@require_POST
@release_manager_required
def run_check_target(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    """Read-only: ask the target which version it runs now, for a run whose outcome is unknown;
    the answer goes on the timeline and stays in the decision panel."""
    run = _get_run(upgrade_id, run_id)
    before = _Before.of(request, run.upgrade)
    try:
        _version, said = services.check_run_target_read(run=run, by=request.user)
    except services.UpgradeError as error:
        return _refused_decision(request, run, error)
    return _decided(request, run, notice=said, anchor=f"decide-{run.pk}", before=before)


@require_POST
@release_manager_required
def run_resolve(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    """Mark a run whose outcome is unknown passed or failed, saying what was checked."""
    run = _get_run(upgrade_id, run_id)
    before = _Before.of(request, run.upgrade)
    decided = request.POST.get("outcome", "")
    try:
        services.check_run_resolve(
            run=run, by=request.user, outcome=decided, reason=request.POST.get("reason", "")
        )
    except services.UpgradeError as error:
        return _refused_decision(request, run, error)
    notice = f"Run #{run.pk} marked {decided}; the upgrade goes on from there."
    return _decided(request, run, notice=notice, anchor="lifecycle", before=before)


# --- monitoring and reviews ---------------------------------------------------------------------------


@require_GET
@viewer_required
def upgrade_monitoring(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    """The monitoring region, polled while its window is open. The poll carries the actions'
    fingerprint the page was drawn with (`state`): when the upgrade moved meanwhile (the guard
    rolled the flag back, someone ended the window), the header, the actions and the timeline
    come along out of band, so the page never shows "Monitoring" over a rolled-back upgrade."""
    upgrade = _get_upgrade(upgrade_id)
    state = request.GET.get("state", "")
    if state and state != page.actions(upgrade, actor=request.user).key:
        context = _context(request, upgrade)
        if context["monitoring"] is None:
            raise Http404("This upgrade has no monitoring window yet.")
        regions = _Regions(main=("monitoring_slot", None))
        _add_changed(regions, _Before(state, request.GET.get("locks", ""), ""), upgrade, context)
        regions.add("timeline")
        html = [_render_region(request, context, *regions.main, oob=False)]
        html += [_render_region(request, context, name, ref, oob=True) for name, ref in regions.oob]
        return HttpResponse("".join(html))
    chart = selectors.monitoring_chart(upgrade)
    if chart is None:
        raise Http404("This upgrade has no monitoring window yet.")
    # Nothing moved: the next poll carries the same fingerprint.
    query = urlencode({k: request.GET[k] for k in ("state", "locks") if k in request.GET})
    return render(
        request,
        "upgrades/_monitoring.html",
        {"upgrade": upgrade, "monitoring": chart, "monitoring_query": query},
    )


@require_POST
@release_manager_required
def review_save(request: HttpRequest, upgrade_id: int, review_id: int) -> HttpResponse:
    review = get_object_or_404(PostUpgradeReview, pk=review_id, upgrade_id=upgrade_id)
    try:
        done_items = {int(i) for i in request.POST.getlist("done") if i.isdigit()}
        review = services.review_update(
            review=review, by=request.user, done_items=done_items,
            notes=request.POST.get("notes", ""), lessons=request.POST.get("lessons", ""),
        )  # fmt: skip
        if request.POST.get("complete") == "yes":
            services.review_complete(review=review, by=request.user)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    return _answer(
        request, upgrade_id, regions=_Regions(main=("reviews_slot", None)),
        notice="Review saved.", anchor=f"review-{review.pk}",
    )  # fmt: skip


@require_POST
@release_manager_required
def follow_up_create(request: HttpRequest, upgrade_id: int, review_id: int) -> HttpResponse:
    review = get_object_or_404(PostUpgradeReview, pk=review_id, upgrade_id=upgrade_id)
    form = FollowUpForm(request.POST)
    try:
        if not form.is_valid():
            raise services.InvalidInput(
                "Follow-up not added: "
                + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
            )
        services.follow_up_add(review=review, by=request.user, **form.cleaned_data)
    except services.UpgradeError as error:
        return _refused(request, upgrade_id, error)
    return _answer(
        request, upgrade_id, regions=_Regions(main=("reviews_slot", None)),
        notice="Follow-up added.", anchor=f"review-{review.pk}",
    )  # fmt: skip
