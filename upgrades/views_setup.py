"""The set-up pages, for administrators: environments with their hooks and SLO thresholds,
playbook templates, common issues, people and service accounts, and the history of it all.
Plus the one page for people without an account: signing up through an invitation link.

Thin views: a form parses the input's shape, a service in services/setup.py, services/people.py
or services/hook_tests.py decides; a refusal lands on the field it names with its status (400,
409, 410). Forms post to their own URL and come back to their place on the page without
JavaScript; with htmx a hook's card and its test result are swapped in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flags.models import FlagEnvironment
from mycelia_ops.errors import MyceliaError
from mycelia_ops.roles import ADMINISTRATORS, administrator_required, is_administrator
from upgrades.forms_setup import (
    CommonIssueForm,
    EnvironmentForm,
    HookForm,
    HostForm,
    PhaseForm,
    SloForm,
    StepForm,
    TemplateForm,
)
from upgrades.models import (
    CommonIssue,
    Environment,
    EnvironmentHost,
    EnvironmentOperation,
    HookMode,
    HookTest,
    Invitation,
    PlaybookPhase,
    PlaybookStep,
    PlaybookTemplate,
    ServiceAccount,
    SetupEvent,
)
from upgrades.services import hook_tests, hosts, setup

HISTORY_ON_PAGE = 20


def _attempt(form: Any, call: Callable[[], Any]) -> tuple[Any, int]:
    """Run a service; its refusal goes on the form's field (or the whole form) with its status."""
    try:
        return call(), 200
    except MyceliaError as error:
        field = error.field if error.field in form.fields else None
        form.add_error(field, error.message)
        return None, error.status


def _back(request: HttpRequest, url: str, anchor: str = "") -> HttpResponse:
    return redirect(url + (f"#{anchor}" if anchor else ""))


# --- the start page and the history ----------------------------------------------------------


@require_GET
@administrator_required
def setup_start(request: HttpRequest) -> HttpResponse:
    User = get_user_model()
    environments = list(
        Environment.objects.annotate(hook_count=Count("operations", distinct=True),
                                     slo_count=Count("slo_thresholds", distinct=True))
    )  # fmt: skip
    context = {
        "environments": environments,
        "first_time": not environments,
        "template_count": PlaybookTemplate.objects.count(),
        "issue_count": CommonIssue.objects.count(),
        "people_count": User.objects.filter(is_active=True, service_account__isnull=True).count(),
        "pending_invitations": [i for i in Invitation.objects.all()[:50] if i.state() == "pending"],
        "service_account_count": ServiceAccount.objects.count(),
        "events": SetupEvent.objects.select_related("actor")[:10],
    }
    return render(request, "setup/start.html", context)


@require_GET
@administrator_required
def setup_history(request: HttpRequest) -> HttpResponse:
    events = SetupEvent.objects.select_related("actor", "environment")
    subject = request.GET.get("subject", "")
    if subject:
        events = events.filter(subject=subject)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    from upgrades.models import SetupSubject

    return render(request, "setup/history.html",
                  {"page": page, "subject": subject, "subjects": SetupSubject.choices})  # fmt: skip


# --- environments ----------------------------------------------------------------------------


@require_GET
@administrator_required
def environment_list(request: HttpRequest) -> HttpResponse:
    return redirect(reverse("setup:start") + "#environments")


@require_http_methods(["GET", "POST"])
@administrator_required
def environment_create(request: HttpRequest) -> HttpResponse:
    form = EnvironmentForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            environment, status = _attempt(form, lambda: setup.environment_save(
                environment=None, by=request.user, data=form.cleaned_data))  # fmt: skip
            if environment:
                messages.success(
                    request, f"{environment.name} created. Now add its hooks and SLO thresholds."
                )
                return _back(request, reverse("setup:environment", args=[environment.pk]), "hooks")
        else:
            status = 400
    return render(request, "setup/environment_new.html", {"form": form}, status=status)


def _environment_context(environment: Environment, **forms: Any) -> dict[str, Any]:
    hooks = list(environment.operations.select_related("host"))
    latest: dict[int, HookTest] = {}
    for test in HookTest.objects.filter(hook__in=hooks).select_related("requested_by"):
        latest.setdefault(test.hook_id, test)
    cards = [
        {"hook": hook, "form": forms.pop(f"hook_form_{hook.pk}", None) or _hook_form(hook),
         "test": latest.get(hook.pk), "changes_target": hook_tests.hook_changes_target(hook)}
        for hook in hooks
    ]  # fmt: skip
    host_cards = [
        {"host": host, "fingerprint": hosts.host_fingerprint(host),
         "form": forms.pop(f"host_form_{host.pk}", None) or _host_form(host)}
        for host in environment.hosts.all()
    ]  # fmt: skip
    thresholds = {t.metric: t for t in environment.slo_thresholds.all()}
    flag_environment = FlagEnvironment.objects.filter(key=environment.slug).first()
    return {
        "environment": environment,
        "form": forms.get("form")
        or EnvironmentForm(initial=EnvironmentForm.initial_from(environment)),
        "hook_cards": cards,
        "new_hook_form": forms.get("new_hook_form")
        or HookForm(initial={"mode": HookMode.COMMAND}, environment=environment),
        "host_cards": host_cards,
        "new_host_form": forms.get("new_host_form") or HostForm(prefix="new-host"),
        "slo_form": forms.get("slo_form") or SloForm(thresholds=thresholds),
        "flag_environment": flag_environment,
        "events": environment.setup_events.select_related("actor")[:HISTORY_ON_PAGE],
        "dry_run_variable": hook_tests.DRY_RUN_VARIABLE,
        "dry_run_header": hook_tests.DRY_RUN_HEADER,
    }


def _hook_form(hook: EnvironmentOperation, data: Any = None) -> HookForm:
    initial = {
        "operation": hook.operation,
        "mode": hook.mode,
        "argv": "\n".join(hook.argv),
        "host": hook.host_id,
        "webhook_url": hook.webhook_url,
        "webhook_secret_header": hook.webhook_secret_header,
        "timeout_seconds": hook.timeout_seconds,
    }
    return HookForm(data, initial=initial, prefix=f"hook-{hook.pk}", environment=hook.environment)


def _host_form(host: EnvironmentHost, data: Any = None) -> HostForm:
    return HostForm(data, initial=HostForm.initial_from(host), prefix=f"host-{host.pk}")


@require_http_methods(["GET", "POST"])
@administrator_required
def environment_detail(request: HttpRequest, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id)
    status = 200
    form = None
    if request.method == "POST":
        form = EnvironmentForm(request.POST)
        if form.is_valid():
            saved, status = _attempt(form, lambda: setup.environment_save(
                environment=environment, by=request.user, data=form.cleaned_data))  # fmt: skip
            if saved:
                messages.success(request, f"{saved.name} saved.")
                return _back(request, reverse("setup:environment", args=[saved.pk]), "settings")
        else:
            status = 400
        environment.refresh_from_db()
    context = _environment_context(environment, form=form)
    return render(request, "setup/environment.html", context, status=status)


@require_POST
@administrator_required
def environment_delete(request: HttpRequest, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id)
    try:
        setup.environment_delete(environment=environment, by=request.user)
    except MyceliaError as error:
        messages.error(request, error.message)
        return _back(request, reverse("setup:environment", args=[environment.pk]), "remove")
    messages.success(request, f"{environment.name} removed.")
    return _back(request, reverse("setup:start"), "environments")


@require_POST
@administrator_required
def hook_create(request: HttpRequest, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id)
    form = HookForm(request.POST, environment=environment)
    status = 400
    if form.is_valid():
        hook, status = _attempt(form, lambda: setup.hook_save(
            environment=environment, hook=None, by=request.user, data=form.service_data()))  # fmt: skip
        if hook:
            messages.success(request, f"{setup.hook_label(hook)} added.")
            return _back(request, reverse("setup:environment", args=[environment.pk]),
                         f"hook-{hook.pk}")  # fmt: skip
    context = _environment_context(environment, new_hook_form=form)
    return render(request, "setup/environment.html", context, status=status)


def _hook_for_admin(hook_id: int) -> EnvironmentOperation:
    return get_object_or_404(EnvironmentOperation.objects.select_related("environment"), pk=hook_id)


def _hook_card(request: HttpRequest, hook: EnvironmentOperation, *, form=None, status=200):
    test = hook.tests.select_related("requested_by").first()
    card = {"hook": hook, "form": form or _hook_form(hook), "test": test,
            "changes_target": hook_tests.hook_changes_target(hook)}  # fmt: skip
    return render(request, "setup/environment.html#hook-card",
                  {"card": card, "environment": hook.environment,
                   "dry_run_variable": hook_tests.DRY_RUN_VARIABLE}, status=status)  # fmt: skip


@require_POST
@administrator_required
def hook_edit(request: HttpRequest, hook_id: int) -> HttpResponse:
    hook = _hook_for_admin(hook_id)
    form = _hook_form(hook, request.POST)
    status = 400
    if form.is_valid():
        saved, status = _attempt(form, lambda: setup.hook_save(
            environment=hook.environment, hook=hook, by=request.user, data=form.service_data()))  # fmt: skip
        if saved:
            if request.htmx:
                return _hook_card(request, saved)
            messages.success(request, f"{setup.hook_label(saved)} saved.")
            return _back(request, reverse("setup:environment", args=[hook.environment_id]),
                         f"hook-{hook.pk}")  # fmt: skip
    hook.refresh_from_db()
    if request.htmx:
        return _hook_card(request, hook, form=form, status=status)
    context = _environment_context(hook.environment, **{f"hook_form_{hook.pk}": form})
    return render(request, "setup/environment.html", context, status=status)


@require_POST
@administrator_required
def hook_delete(request: HttpRequest, hook_id: int) -> HttpResponse:
    hook = _hook_for_admin(hook_id)
    setup.hook_delete(hook=hook, by=request.user)
    messages.success(request, f"{setup.hook_label(hook)} removed.")
    return _back(request, reverse("setup:environment", args=[hook.environment_id]), "hooks")


@require_POST
@administrator_required
def hook_test(request: HttpRequest, hook_id: int) -> HttpResponse:
    hook = _hook_for_admin(hook_id)
    status = 200
    error = ""
    try:
        hook_tests.hook_test_request(
            hook=hook, by=request.user, confirmed=request.POST.get("confirm") == "yes"
        )
    except MyceliaError as refusal:
        status, error = refusal.status, refusal.message
    if request.htmx:
        test = hook.tests.select_related("requested_by").first()
        return render(request, "setup/environment.html#hook-test",
                      {"test": test, "hook": hook, "error": error}, status=status)  # fmt: skip
    if error:
        messages.error(request, error)
    return _back(request, reverse("setup:environment", args=[hook.environment_id]),
                 f"hook-{hook.pk}")  # fmt: skip


@require_GET
@administrator_required
def hook_test_detail(request: HttpRequest, test_id: int) -> HttpResponse:
    test = get_object_or_404(HookTest.objects.select_related("hook", "requested_by"), pk=test_id)
    return render(request, "setup/environment.html#hook-test", {"test": test, "hook": test.hook})


@require_POST
@administrator_required
def host_create(request: HttpRequest, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id)
    form = HostForm(request.POST, prefix="new-host")
    status = 400
    if form.is_valid():
        host, status = _attempt(form, lambda: hosts.host_save(
            environment=environment, host=None, by=request.user, data=form.cleaned_data))  # fmt: skip
        if host:
            messages.success(request, f"Host {host.login} added. A hook can now run on it.")
            return _back(request, reverse("setup:environment", args=[environment.pk]),
                         f"host-{host.pk}")  # fmt: skip
    context = _environment_context(environment, new_host_form=form)
    return render(request, "setup/environment.html", context, status=status)


@require_POST
@administrator_required
def host_edit(request: HttpRequest, host_id: int) -> HttpResponse:
    host = get_object_or_404(EnvironmentHost.objects.select_related("environment"), pk=host_id)
    form = _host_form(host, request.POST)
    status = 400
    if form.is_valid():
        saved, status = _attempt(form, lambda: hosts.host_save(
            environment=host.environment, host=host, by=request.user, data=form.cleaned_data))  # fmt: skip
        if saved:
            messages.success(request, f"Host {saved.login} saved.")
            return _back(request, reverse("setup:environment", args=[host.environment_id]),
                         f"host-{host.pk}")  # fmt: skip
    host.refresh_from_db()
    context = _environment_context(host.environment, **{f"host_form_{host.pk}": form})
    return render(request, "setup/environment.html", context, status=status)


@require_POST
@administrator_required
def host_delete(request: HttpRequest, host_id: int) -> HttpResponse:
    host = get_object_or_404(EnvironmentHost.objects.select_related("environment"), pk=host_id)
    try:
        hosts.host_delete(host=host, by=request.user)
    except MyceliaError as error:
        messages.error(request, error.message)
        return _back(request, reverse("setup:environment", args=[host.environment_id]),
                     f"host-{host.pk}")  # fmt: skip
    messages.success(request, f"Host {host.login} removed.")
    return _back(request, reverse("setup:environment", args=[host.environment_id]), "hosts")


@require_POST
@administrator_required
def slo_save(request: HttpRequest, environment_id: int) -> HttpResponse:
    environment = get_object_or_404(Environment, pk=environment_id)
    form = SloForm(request.POST)
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: setup.slo_save(
            environment=environment, by=request.user, limits=form.limits(),
            queries=form.queries()))  # fmt: skip
        if status == 200:
            messages.success(request, "SLO thresholds saved.")
            return _back(request, reverse("setup:environment", args=[environment.pk]), "slo")
    context = _environment_context(environment, slo_form=form)
    return render(request, "setup/environment.html", context, status=status)


# --- playbook templates ----------------------------------------------------------------------


@require_POST
@administrator_required
def playbook_load(request: HttpRequest) -> HttpResponse:
    written = setup.playbook_load(by=request.user)
    messages.success(
        request,
        f"The playbook's {written} templates are loaded." if written
        else "The playbook's templates were all there already; nothing changed.",
    )  # fmt: skip
    return _back(request, reverse("setup:templates"))


@require_GET
@administrator_required
def template_list(request: HttpRequest) -> HttpResponse:
    templates = PlaybookTemplate.objects.annotate(
        phase_count=Count("phases", distinct=True), step_count=Count("phases__steps")
    )
    return render(request, "setup/templates.html", {"templates": templates})


def _template_context(template: PlaybookTemplate, **forms: Any) -> dict[str, Any]:
    phases = template.phases.prefetch_related(
        Prefetch("steps", PlaybookStep.objects.order_by("order"))
    )
    blocks = []
    for phase in phases:
        steps = [
            {"step": step, "form": forms.get(f"step_form_{step.pk}") or StepForm(
                prefix=f"step-{step.pk}", initial=_step_initial(step))}
            for step in phase.steps.all()
        ]  # fmt: skip
        blocks.append({
            "phase": phase,
            "form": forms.get(f"phase_form_{phase.pk}") or PhaseForm(
                prefix=f"phase-{phase.pk}",
                initial={"title": phase.title, "stage": phase.stage, "order": phase.order}),
            "steps": steps,
            "new_step_form": forms.get(f"new_step_form_{phase.pk}") or StepForm(
                prefix=f"new-step-{phase.pk}", initial={"required": True}),
        })  # fmt: skip
    return {
        "template": template,
        "form": forms.get("form") or TemplateForm(initial={
            "name": template.name, "description": template.description,
            "rollback_procedure": template.rollback_procedure}),
        "phases": blocks,
        "new_phase_form": forms.get("new_phase_form") or PhaseForm(prefix="new-phase"),
        "events": SetupEvent.objects.filter(label__startswith=template.name)
        .select_related("actor")[:HISTORY_ON_PAGE],
    }  # fmt: skip


def _step_initial(step: PlaybookStep) -> dict[str, Any]:
    import json

    return {
        "title": step.title, "section": step.section, "kind": step.kind,
        "operation": step.operation, "description": step.description,
        "commands": step.commands, "required": step.required, "order": step.order,
        "check_config": json.dumps(step.check_config) if step.check_config else "",
    }  # fmt: skip


def _render_template_page(request: HttpRequest, template: PlaybookTemplate, status: int, **forms):
    return render(request, "setup/template.html", _template_context(template, **forms),
                  status=status)  # fmt: skip


@require_http_methods(["GET", "POST"])
@administrator_required
def template_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(PlaybookTemplate, pk=template_id)
    if request.method == "GET":
        return _render_template_page(request, template, 200)
    form = TemplateForm(request.POST)
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: setup.template_save(
            template=template, by=request.user, data=form.cleaned_data))  # fmt: skip
        if status == 200:
            messages.success(request, "Template saved.")
            return _back(request, reverse("setup:template", args=[template.pk]), "template")
    template.refresh_from_db()
    return _render_template_page(request, template, status, form=form)


@require_POST
@administrator_required
def phase_create(request: HttpRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(PlaybookTemplate, pk=template_id)
    form = PhaseForm(request.POST, prefix="new-phase")
    status = 400
    if form.is_valid():
        phase, status = _attempt(form, lambda: setup.phase_save(
            template=template, phase=None, by=request.user, data=form.cleaned_data))  # fmt: skip
        if phase:
            messages.success(request, f"Phase “{phase.title}” added.")
            return _back(
                request, reverse("setup:template", args=[template.pk]), f"phase-{phase.pk}"
            )
    return _render_template_page(request, template, status, new_phase_form=form)


@require_POST
@administrator_required
def phase_edit(request: HttpRequest, phase_id: int) -> HttpResponse:
    phase = get_object_or_404(PlaybookPhase.objects.select_related("template"), pk=phase_id)
    if request.POST.get("remove") == "yes":
        setup.phase_delete(phase=phase, by=request.user)
        messages.success(request, f"Phase “{phase.title}” removed.")
        return _back(request, reverse("setup:template", args=[phase.template_id]), "phases")
    form = PhaseForm(request.POST, prefix=f"phase-{phase.pk}")
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: setup.phase_save(
            template=phase.template, phase=phase, by=request.user, data=form.cleaned_data))  # fmt: skip
        if status == 200:
            messages.success(request, "Phase saved.")
            return _back(
                request, reverse("setup:template", args=[phase.template_id]), f"phase-{phase.pk}"
            )
    return _render_template_page(
        request, phase.template, status, **{f"phase_form_{phase.pk}": form}
    )


@require_POST
@administrator_required
def step_create(request: HttpRequest, phase_id: int) -> HttpResponse:
    phase = get_object_or_404(PlaybookPhase.objects.select_related("template"), pk=phase_id)
    form = StepForm(request.POST, prefix=f"new-step-{phase.pk}")
    status = 400
    if form.is_valid():
        step, status = _attempt(form, lambda: setup.step_save(
            phase=phase, step=None, by=request.user, data=form.cleaned_data))  # fmt: skip
        if step:
            messages.success(request, f"Step “{step.title}” added.")
            return _back(
                request, reverse("setup:template", args=[phase.template_id]), f"step-{step.pk}"
            )
    return _render_template_page(request, phase.template, status,
                                 **{f"new_step_form_{phase.pk}": form})  # fmt: skip


@require_POST
@administrator_required
def step_edit(request: HttpRequest, step_id: int) -> HttpResponse:
    step = get_object_or_404(PlaybookStep.objects.select_related("phase__template"), pk=step_id)
    template = step.phase.template
    if request.POST.get("remove") == "yes":
        setup.step_delete(step=step, by=request.user)
        messages.success(request, f"Step “{step.title}” removed.")
        return _back(
            request, reverse("setup:template", args=[template.pk]), f"phase-{step.phase_id}"
        )
    form = StepForm(request.POST, prefix=f"step-{step.pk}")
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: setup.step_save(
            phase=step.phase, step=step, by=request.user, data=form.cleaned_data))  # fmt: skip
        if status == 200:
            messages.success(request, "Step saved.")
            return _back(request, reverse("setup:template", args=[template.pk]), f"step-{step.pk}")
    return _render_template_page(request, template, status, **{f"step_form_{step.pk}": form})


# --- common issues ---------------------------------------------------------------------------


def _issue_initial(issue: CommonIssue) -> dict[str, Any]:
    return {
        "title": issue.title, "issue": issue.issue, "symptoms": issue.symptoms,
        "solution": issue.solution, "applies_to": ", ".join(issue.applies_to),
        "actions": ", ".join(issue.actions), "order": issue.order,
    }  # fmt: skip


@require_http_methods(["GET", "POST"])
@administrator_required
def common_issues(request: HttpRequest) -> HttpResponse:
    form = CommonIssueForm(request.POST or None, prefix="new")
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            issue, status = _attempt(form, lambda: setup.common_issue_save(
                issue=None, by=request.user, data=form.cleaned_data))  # fmt: skip
            if issue:
                messages.success(request, f"“{issue.title}” added.")
                return _back(request, reverse("setup:common_issues"), f"issue-{issue.pk}")
    issues = [
        {"issue": i, "form": CommonIssueForm(prefix=f"issue-{i.pk}", initial=_issue_initial(i))}
        for i in CommonIssue.objects.all()
    ]
    return render(request, "setup/common_issues.html", {"issues": issues, "form": form},
                  status=status)  # fmt: skip


@require_POST
@administrator_required
def common_issue_edit(request: HttpRequest, issue_id: int) -> HttpResponse:
    issue = get_object_or_404(CommonIssue, pk=issue_id)
    if request.POST.get("remove") == "yes":
        setup.common_issue_delete(issue=issue, by=request.user)
        messages.success(request, f"“{issue.title}” removed.")
        return _back(request, reverse("setup:common_issues"))
    form = CommonIssueForm(request.POST, prefix=f"issue-{issue.pk}")
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: setup.common_issue_save(
            issue=issue, by=request.user, data=form.cleaned_data))  # fmt: skip
        if status == 200:
            messages.success(request, f"“{issue.title}” saved.")
            return _back(request, reverse("setup:common_issues"), f"issue-{issue.pk}")
    issue.refresh_from_db()
    issues = [
        {"issue": i, "form": form if i.pk == issue.pk else CommonIssueForm(
            prefix=f"issue-{i.pk}", initial=_issue_initial(i))}
        for i in CommonIssue.objects.all()
    ]  # fmt: skip
    return render(request, "setup/common_issues.html",
                  {"issues": issues, "form": CommonIssueForm(prefix="new"), "open_issue": issue.pk},
                  status=status)  # fmt: skip


# --- a bare install --------------------------------------------------------------------------


def not_set_up(request: HttpRequest) -> HttpResponse | None:
    """On an install with no environment yet: administrators go to the set-up start; everyone
    else sees whom to ask. None once an environment exists."""
    if Environment.objects.exists():
        return None
    if is_administrator(request.user):
        return redirect("setup:start")
    User = get_user_model()
    administrators = (
        User.objects.filter(Q(is_superuser=True) | Q(groups__name=ADMINISTRATORS), is_active=True)
        .distinct()
        .order_by("username")
    )
    return render(request, "setup/not_set_up.html", {"administrators": administrators[:10]})
