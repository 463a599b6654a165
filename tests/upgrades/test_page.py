"""The upgrade page, redesigned around what to do next (issue 10): what a new user ran into,
each in the playbook's words, and how the page answers a form with and without JavaScript."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone

from upgrades import services
from upgrades.models import (
    Action,
    CheckRun,
    DeployState,
    EnvironmentOperation,
    HookMode,
    Operation,
    PhaseStage,
    RunKind,
    RunStatus,
    SloThreshold,
    StepKind,
    StepStatus,
    Upgrade,
    UpgradeStatus,
)
from upgrades.selectors import step_runs_here

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


# --- helpers ---------------------------------------------------------------------------------------


class _Region(HTMLParser):
    """The outer HTML of the element with a given id (enough of a parser for our own pages)."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "source", "col", "area", "wbr"}

    def __init__(self, element_id: str) -> None:
        super().__init__(convert_charrefs=False)
        self.element_id = element_id
        self.depth = 0
        self.start: int | None = None
        self.end: int | None = None
        self.lines: list[int] = []

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def handle_starttag(self, tag, attrs):
        if self.end is not None or tag in self.VOID:
            return
        if self.start is None:
            if dict(attrs).get("id") == self.element_id:
                self.start, self.depth = self._offset(), 1
            return
        self.depth += 1

    def handle_endtag(self, tag):
        if self.start is None or self.end is not None or tag in self.VOID:
            return
        self.depth -= 1
        if self.depth == 0:
            self.end = self._offset() + len(f"</{tag}>")


def region(html: str, element_id: str) -> str:
    parser = _Region(element_id)
    parser.lines = [0]
    for line in html.splitlines(keepends=True):
        parser.lines.append(parser.lines[-1] + len(line))
    parser.feed(html)
    assert parser.start is not None, f"no element #{element_id} on the page"
    return html[parser.start : parser.end]


def page(client, upgrade: Upgrade) -> str:
    response = client.get(reverse("upgrades:detail", args=[upgrade.pk]))
    assert response.status_code == 200
    return response.content.decode()


def act(client, upgrade: Upgrade, action: str, data: dict | None = None, **headers):
    return client.post(reverse("upgrades:act", args=[upgrade.pk, action]), data or {}, **headers)


def step_url(upgrade: Upgrade, step, action: str) -> str:
    return reverse("upgrades:step_action", args=[upgrade.pk, step.pk, action])


def started(upgrade: Upgrade, by) -> Upgrade:
    return services.upgrade_act(
        upgrade=upgrade, action=Action.START, by=by, override_reason="staging soaked a week"
    ).upgrade


def failed_check(step, reason: str = "GET /health answered 503") -> CheckRun:
    return CheckRun.objects.create(
        upgrade=step.upgrade, step=step, kind=RunKind.CHECK, action=step.kind, title=step.title,
        status=RunStatus.FAILED, reason=reason, finished_at=timezone.now(),
    )  # fmt: skip


def first_step(upgrade: Upgrade, *, stage: str, kind: str | None = None):
    steps = upgrade.steps.filter(phase__stage=stage).order_by("phase__order", "order")
    if kind:
        steps = steps.filter(kind=kind)
    return steps.first()


# --- finding 1: "Deployed: begin monitoring" with nothing deployed -----------------------------------


def test_begin_monitoring__nothing_deployed__not_offered_and_a_post_refused_409(
    manager_client, make_upgrade, manager
):
    # Given a minor upgrade whose deployment has started but nothing is deployed
    upgrade = started(make_upgrade("minor"), manager)

    # Then the page offers no "begin monitoring" and says why not now
    html = page(manager_client, upgrade)
    assert 'id="act-begin_monitoring"' not in html
    assert "Nothing has been deployed yet" in region(html, "not-now")
    # And Deploy is the next action
    assert 'id="act-deploy"' in region(html, "next")

    # When someone posts it anyway (no JavaScript), the page answers 409 with the sentence
    response = act(manager_client, upgrade, "begin_monitoring")
    assert response.status_code == 409
    assert "Nothing has been deployed yet" in region(response.content.decode(), "page-message")
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS


def test_begin_monitoring__refused_with_htmx__sentence_in_the_live_region_only(
    manager_client, make_upgrade, manager
):
    upgrade = started(make_upgrade("minor"), manager)

    response = act(manager_client, upgrade, "begin_monitoring", **HTMX)

    assert response.status_code == 409
    assert response["HX-Retarget"] == "#page-message"
    assert response["HX-Reswap"] == "innerHTML"
    body = response.content.decode()
    assert "Nothing has been deployed yet" in body and 'id="lifecycle"' not in body


def test_begin_monitoring__deploy_passed__next_action_with_its_reason(
    manager_client, make_upgrade, manager
):
    upgrade = started(make_upgrade("minor"), manager)
    Upgrade.objects.filter(pk=upgrade.pk).update(
        deploy_state=DeployState.PASSED, deployed_version="1.5.0", deployed_at=timezone.now()
    )

    html = page(manager_client, upgrade)

    nxt = region(html, "next")
    assert 'id="act-begin_monitoring"' in nxt and "The deploy succeeded" in nxt
    assert "Deployed 1.5.0 (target reports 1.5.0)" in region(html, "deploy-state")


# --- finding 2: a failed check's step ticked Done with no word ------------------------------------


def test_step_done__latest_check_failed_and_no_reason__refused_409_and_still_failed(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.HTTP_HEALTH) or first_step(
        upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND
    )
    failed_check(step)

    # The step shows Failed, and its Done form asks for the reason
    shown = region(page(manager_client, upgrade), f"step-{step.pk}")
    assert "Failed" in shown and "answered 503" in shown
    assert re.search(r'name="override_reason" id="accept-\d+" required', shown)

    # Done without a reason is refused with the service's sentence
    response = manager_client.post(step_url(upgrade, step, "complete"), {"note": "looks fine"})
    assert response.status_code == 409
    assert "Give a reason to accept it despite the failed check" in response.content.decode()
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN


def test_step_done__latest_check_failed_with_a_reason__done_in_amber_with_the_reason(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND)
    failed_check(step, reason="exit code 1")

    response = manager_client.post(
        step_url(upgrade, step, "complete"),
        {"override_reason": "flaky test runner, passed by hand"},
        **HTMX,
    )

    assert response.status_code == 200
    shown = region(response.content.decode(), f"step-{step.pk}")
    assert 'class="step accepted"' in shown
    assert "Accepted despite a failed check: flaky test runner, passed by hand" in shown
    step.refresh_from_db()
    assert step.accepted_despite_failure


# --- finding 5: deployment and post-deployment steps while a draft -------------------------------


def test_draft__deployment_and_post_steps__no_done_or_run_and_say_why(manager_client, make_upgrade):
    upgrade = make_upgrade("minor")
    html = page(manager_client, upgrade)

    for stage, why in (
        (PhaseStage.DEPLOY, "deployment steps wait until the deployment has started"),
        (PhaseStage.POST, "post-deployment steps wait until the deploy has succeeded"),
    ):
        for step in upgrade.steps.filter(phase__stage=stage):
            shown = region(html, f"step-{step.pk}")
            assert f'id="done-{step.pk}"' not in shown
            assert f'id="run-check-{step.pk}"' not in shown
            assert f'id="skip-{step.pk}"' not in shown
        phase = upgrade.phases.filter(stage=stage).first()
        assert why in region(html, f"phase-{phase.pk}-tools").lower()


def test_draft__posting_a_deployment_step_done_or_run__refused_409(manager_client, make_upgrade):
    upgrade = make_upgrade("minor")
    manual = first_step(upgrade, stage=PhaseStage.DEPLOY)
    check = upgrade.steps.filter(
        phase__stage=PhaseStage.POST, kind__in=[StepKind.HTTP_HEALTH, StepKind.COMMAND]
    ).first()

    done = manager_client.post(step_url(upgrade, manual, "complete"))
    run = manager_client.post(reverse("upgrades:step_run", args=[upgrade.pk, check.pk]), **HTMX)

    assert done.status_code == 409 and "wait until the deployment has started" in (
        done.content.decode()
    )
    assert run.status_code == 409 and "wait until the deploy has succeeded" in run.content.decode()
    assert not CheckRun.objects.filter(step=check).exists()


# --- finding 7: reopening keeps the old note as the current note --------------------------------------


def test_reopen__step_done_with_a_note__the_note_goes_from_the_step_stays_on_the_timeline(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.get(title="Internal: Notify team members")
    manager_client.post(step_url(upgrade, step, "complete"), {"note": "Posted in #releases"})

    response = manager_client.post(
        step_url(upgrade, step, "reopen"), {"reason": "wrong channel"}, **HTMX
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert "Posted in #releases" not in region(body, f"step-{step.pk}")
    assert "Posted in #releases" in region(body, "timeline")
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN and step.note == ""


# --- finding 8: red buttons, bare confirm checkboxes, reasons beside the wrong action -----------------


def _forms(html: str) -> list[str]:
    return re.findall(r"<form\b.*?</form>", html, flags=re.S)


@pytest.mark.parametrize("state", ["draft", "in_progress", "deployed", "monitoring"])
def test_actions__every_state__no_bare_confirm_checkbox_and_each_reason_in_its_own_form(
    manager_client, make_upgrade, manager, state
):
    upgrade = make_upgrade("minor")
    if state != "draft":
        upgrade = started(upgrade, manager)
    if state in ("deployed", "monitoring"):
        Upgrade.objects.filter(pk=upgrade.pk).update(deploy_state=DeployState.PASSED)
    if state == "monitoring":
        services.upgrade_act(upgrade=upgrade, action=Action.BEGIN_MONITORING, by=manager)
    upgrade.refresh_from_db()

    html = page(manager_client, upgrade)
    lifecycle = region(html, "lifecycle")

    assert 'type="checkbox"' not in html
    assert 'name="confirm"' not in html
    for form in _forms(lifecycle):
        # one submit per form, and a reason field only in the form of the action that needs it
        assert form.count('type="submit"') == 1
        action = re.search(r"/act/([a-z_]+)/", form)
        if action and 'name="reason"' in form:
            verdict = services.upgrade_verdicts(upgrade=upgrade, by=manager)[action.group(1)]
            assert verdict.needs_reason or action.group(1) == "approve"
    # Destructive actions sit behind the disclosure, never beside the next action
    for destructive in ("roll_back", "restore_database", "mark_failed", "cancel"):
        assert f'id="act-{destructive}"' not in region(html, "next")
        if f'id="act-{destructive}"' in lifecycle:
            assert f'id="act-{destructive}"' in region(html, "danger-zone")


def test_actions__page_renders_exactly_the_allowed_actions(manager_client, make_upgrade, manager):
    upgrade = started(make_upgrade("minor"), manager)
    verdicts = services.upgrade_verdicts(upgrade=upgrade, by=manager)

    lifecycle = region(page(manager_client, upgrade), "lifecycle")

    shown = set(re.findall(r'id="act-([a-z_]+)"', lifecycle))
    allowed = {a for a, v in verdicts.items() if v.allowed and a != Action.EDIT}
    assert shown == allowed


def test_go_no_go__the_owner__sees_who_can_give_it_and_no_form(
    manager_client, make_upgrade, second_manager
):
    # Given a major upgrade owned by alice, waiting for a go
    upgrade = make_upgrade("major")

    html = page(manager_client, upgrade)

    assert 'id="act-approve"' not in html and 'name="decision"' not in html
    waiting = region(html, "waiting-for-go")
    assert "second release manager" in waiting and second_manager.username in waiting
    assert "A major upgrade needs a go" in region(html, "not-now")


def test_go_no_go__a_second_release_manager__decides_on_the_page(
    client, make_upgrade, second_manager
):
    upgrade = make_upgrade("major")
    client.force_login(second_manager)

    html = page(client, upgrade)
    assert 'id="act-approve"' in html

    response = act(client, upgrade, "approve", {"decision": "go", "reason": "rehearsed twice"})
    assert response.status_code == 302
    upgrade.refresh_from_db()
    assert upgrade.approval == "go"


def test_cancel__reason_missing__400_naming_the_reason_and_not_cancelled(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")

    response = act(manager_client, upgrade, "cancel", {"reason": "  "}, **HTMX)

    assert response.status_code == 400 and "needs a reason" in response.content.decode()
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.DRAFT


def test_extend_monitoring__hours_not_a_number__400_naming_the_hours(
    manager_client, make_upgrade, manager
):
    upgrade = started(make_upgrade("minor"), manager)
    Upgrade.objects.filter(pk=upgrade.pk).update(deploy_state=DeployState.PASSED)
    services.upgrade_act(upgrade=upgrade, action=Action.BEGIN_MONITORING, by=manager)

    response = act(manager_client, upgrade, "extend_monitoring", {"hours": "nan"})

    assert response.status_code == 400
    assert "Give the hours to add as a number" in response.content.decode()


# --- finding 9: the playbook's literal pnpm, localhost:3000 and feature-name ----------------------


@pytest.fixture
def hooked(staging):
    """Staging with real hooks: commands for the checks, a webhook for the deploy."""
    staging.base_url = "https://staging.mycelia.example"
    staging.save()
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DIAGNOSE, argv=["/opt/mycelia/bin/diagnose"]
    )
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DEPLOY, argv=["deploy.sh", "--to", "{version}"]
    )
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.ROLLBACK, mode=HookMode.WEBHOOK,
        webhook_url="https://ci.example/hooks/rollback",
    )  # fmt: skip
    SloThreshold.objects.create(environment=staging, metric="error_rate", limit=0.01)
    return staging


def test_step_runs_here__each_kind__the_real_command_url_or_flag(make_upgrade, hooked):
    upgrade = make_upgrade("minor")
    flag_upgrade = make_upgrade("feature_flag", flag_key="new-checkout")

    def here(title, of=upgrade, **filters):
        step = of.steps.filter(title=title, **filters).first()
        return step_runs_here(step, hooked, of)

    assert here("Run diagnostics", phase__order=1) == "/opt/mycelia/bin/diagnose"
    assert here("Verify system status") == (
        "GET https://staging.mycelia.example/ops/status.json, every component judged"
    )
    assert here("Check SLO status", phase__order=1) == (
        "GET https://staging.mycelia.example/ops/status.json and hold error rate at most 0.01"
    )
    assert "has no “Log tail" in here("Backup logs")
    deploy = upgrade.steps.filter(kind=StepKind.DEPLOY).first()
    assert step_runs_here(deploy, hooked, upgrade) == "deploy.sh --to 1.5.0"
    health = upgrade.steps.filter(kind=StepKind.HTTP_HEALTH).first()
    assert step_runs_here(health, hooked, upgrade).startswith(
        "GET https://staging.mycelia.example/health"
    )
    enable = here("Enable feature flag", of=flag_upgrade)
    assert "new-checkout" in enable and "staging" in enable
    assert "feature-name" not in enable and "pnpm" not in enable
    assert "localhost:3000" not in enable


def test_step_runs_here__manual_step_with_nothing_environment_specific__empty(make_upgrade, hooked):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.get(title="Internal: Notify team members")
    assert step_runs_here(step, hooked, upgrade) == ""


def test_page__flag_upgrade__shows_what_really_runs_beside_the_playbook(
    manager_client, make_upgrade, hooked
):
    upgrade = make_upgrade("feature_flag", flag_key="new-checkout")

    html = page(manager_client, upgrade)

    here = " ".join(re.findall(r'<pre class="runs-here">(.*?)</pre>', html, flags=re.S))
    assert "/opt/mycelia/bin/diagnose" in here and "new-checkout" in here
    assert "https://staging.mycelia.example" in here
    assert "localhost:3000" not in here and "feature-name" not in here
    assert "pnpm run diagnose" not in here
    # The playbook's own text is still there, beside it
    assert "pnpm run diagnose" in html


# --- HTMX swaps the smallest region; no JavaScript returns to the step -------------------------------


def test_step_done__htmx__only_the_step_its_phase_header_progress_and_message(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.get(title="Internal: Notify team members")
    other = upgrade.steps.get(title="External: Update status page")

    response = manager_client.post(step_url(upgrade, step, "complete"), {"note": "sent"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    # The step comes first (the form's own target), the rest out of band
    assert body.lstrip().startswith(f'<li class="step done" id="step-{step.pk}"')
    assert re.search(rf'id="phase-{step.phase_id}-head" hx-swap-oob="true"', body)
    assert re.search(r'id="progress" hx-swap-oob="true"', body)
    assert re.search(r'id="page-message"[^>]*hx-swap-oob="innerHTML"', body)
    assert "“Internal: Notify team members” done." in region(body, "page-message")
    # And not the whole checklist, nor any other step, nor the page body
    assert 'id="checklist"' not in body and f'id="step-{other.pk}"' not in body
    assert 'id="upgrade-header"' not in body and "<main" not in body


def test_step_done__htmx__opens_the_gate_region_only_when_the_actions_change(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    optional = upgrade.steps.filter(required=False, phase__stage=PhaseStage.PRE).first()
    required = upgrade.steps.filter(required=True, phase__stage=PhaseStage.PRE).first()

    # A required pre-upgrade step changes the gate's count: the actions region comes along
    closes_gate_step = manager_client.post(step_url(upgrade, required, "complete"), **HTMX)
    assert 'id="lifecycle"' in closes_gate_step.content.decode()
    # An optional one changes nothing there: the actions region stays as it is
    if optional is not None:
        quiet = manager_client.post(step_url(upgrade, optional, "complete"), **HTMX)
        assert 'id="lifecycle"' not in quiet.content.decode()


def test_step_done__without_javascript__redirects_back_to_the_step(manager_client, make_upgrade):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.get(title="Internal: Notify team members")

    response = manager_client.post(step_url(upgrade, step, "complete"))

    assert response.status_code == 302
    assert response["Location"] == f"{upgrade.get_absolute_url()}#step-{step.pk}"


def test_action__without_javascript__redirects_back_to_the_actions(
    manager_client, make_upgrade, manager
):
    upgrade = make_upgrade("minor")

    response = act(manager_client, upgrade, "start", {"override_reason": "rehearsed"})

    assert response.status_code == 302
    assert response["Location"] == f"{upgrade.get_absolute_url()}#lifecycle"
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS


def test_action__htmx__actions_and_the_phases_it_unlocked_out_of_band(manager_client, make_upgrade):
    upgrade = make_upgrade("minor")
    deploy_phase = upgrade.phases.filter(stage=PhaseStage.DEPLOY).first()
    pre_phase = upgrade.phases.filter(stage=PhaseStage.PRE).first()

    response = act(manager_client, upgrade, "start", {"override_reason": "rehearsed"}, **HTMX)

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card lifecycle" id="lifecycle"')
    assert re.search(r'id="upgrade-header" hx-swap-oob="true"', body)
    # Deployment steps may now be worked on: their phase comes along, the first one does not
    assert re.search(rf'id="phase-{deploy_phase.pk}"[^>]* hx-swap-oob="true"', body)
    assert f'id="phase-{pre_phase.pk}"' not in body
    assert "gate overridden" in region(body, "timeline")


# --- phases fold; a whole phase "not doing" ----------------------------------------------------------


def test_phase_skip__one_reason__every_open_step_not_doing_and_the_phase_folds(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    phase = upgrade.phases.filter(stage=PhaseStage.PRE).order_by("order").last()
    total = phase.steps.count()

    response = manager_client.post(
        reverse("upgrades:phase_skip", args=[upgrade.pk, phase.pk]),
        {"reason": "covered by the release train"},
        **HTMX,
    )

    assert response.status_code == 200
    shown = region(response.content.decode(), f"phase-{phase.pk}")
    assert re.match(rf'<details class="phase finished" id="phase-{phase.pk}">', shown)
    assert f"all {total} closed · {total} not doing" in shown
    assert not phase.steps.filter(status=StepStatus.OPEN).exists()


# --- runs: cancel from the page; the poll brings what a finished run changed ---------------------------


def test_run_cancel__queued_check__cancelled_and_its_step_updated(manager_client, make_upgrade):
    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND)
    run = services.check_run_request(upgrade=upgrade, step=step, by=upgrade.owner)
    assert f'id="cancel-run-{run.pk}"' in region(page(manager_client, upgrade), f"step-{step.pk}")

    response = manager_client.post(
        reverse("upgrades:run_cancel", args=[upgrade.pk, run.pk]), {"from_step": step.pk}, **HTMX
    )

    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    body = response.content.decode()
    assert body.lstrip().startswith(f'<li class="step open" id="step-{step.pk}"')
    assert re.search(r'id="runs"[^>]*hx-swap-oob="true"', body)


def test_run_cancel__running_check__a_cancel_button_and_an_answer_in_words(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND)
    run = services.check_run_request(upgrade=upgrade, step=step, by=upgrade.owner)
    CheckRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=timezone.now())
    assert f'id="cancel-{run.pk}"' in region(page(manager_client, upgrade), "runs")

    response = manager_client.post(
        reverse("upgrades:run_cancel", args=[upgrade.pk, run.pk]), **HTMX
    )

    # Either the worker side stops it, or the service says why not: never a 500
    assert response.status_code in (200, 409)
    if response.status_code == 409:
        assert response["HX-Retarget"] == "#page-message"


def test_runs_poll__check_finished_since__its_step_and_progress_out_of_band(
    manager_client, make_upgrade
):
    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND)
    run = services.check_run_request(upgrade=upgrade, step=step, by=upgrade.owner)
    html = page(manager_client, upgrade)
    poll = re.search(r'hx-get="([^"]*/runs/\?[^"]*)"', region(html, "runs")).group(1)

    # When the check passes on a worker (its step ticked by the run)
    CheckRun.objects.filter(pk=run.pk).update(status=RunStatus.PASSED, finished_at=timezone.now())
    services.step_complete(step=step, by=None, note=f"Run #{run.pk}: ok", run=run)
    response = manager_client.get(poll.replace("&amp;", "&"), **HTMX)

    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card runs" id="runs"')
    assert re.search(rf'<li class="step done" id="step-{step.pk}"[^>]*hx-swap-oob="true"', body)
    assert re.search(r'id="progress" hx-swap-oob="true"', body)
    # The finished panel polls no more
    assert 'hx-trigger="every 2s"' not in region(body, "runs")


# --- who sees what; words, not codes ------------------------------------------------------------------


def test_page__stakeholder__reads_the_next_step_and_has_no_form(stakeholder_client, make_upgrade):
    upgrade = make_upgrade("minor")

    html = page(stakeholder_client, upgrade)

    assert "Next: Start deployment" in region(html, "next")
    assert "<form" not in region(html, "lifecycle") and 'id="done-' not in html


def test_action__stakeholder_posts__403(stakeholder_client, make_upgrade):
    upgrade = make_upgrade("minor")
    assert act(stakeholder_client, upgrade, "cancel", {"reason": "x"}).status_code == 403


@pytest.mark.parametrize(
    ("status", "last"), [("completed", "Completed"), ("cancelled", "Cancelled")]
)
def test_stepper__ended__the_ended_state_is_the_last_step(
    manager_client, make_upgrade, manager, status, last
):
    upgrade = make_upgrade("minor")
    if status == "cancelled":
        services.upgrade_act(upgrade=upgrade, action=Action.CANCEL, by=manager, reason="moved")
    else:
        Upgrade.objects.filter(pk=upgrade.pk).update(status=status)

    stepper = re.search(r'<ol class="stepper".*?</ol>', page(manager_client, upgrade), re.S)
    items = re.findall(r'<span class="label">([^<]+)</span>', stepper.group(0))
    assert items[-1] == last and len(items) == 5


def test_page__in_progress__states_in_words_never_codes(manager_client, make_upgrade, manager):
    upgrade = started(make_upgrade("minor"), manager)

    html = page(manager_client, upgrade)
    text = re.sub(r"<[^>]+>", " ", re.sub(r'<[^>]+="[^"]*"', "<", html))

    assert "in_progress" not in text and "not_required" not in text
    assert "(Draft → In progress)" in region(html, "timeline")


def test_page__nothing_inline_for_the_content_security_policy(manager_client, make_upgrade):
    from tests.platform.test_csp import inline_problems

    upgrade = make_upgrade("minor")
    step = first_step(upgrade, stage=PhaseStage.PRE, kind=StepKind.COMMAND)
    services.check_run_request(upgrade=upgrade, step=step, by=upgrade.owner)

    assert inline_problems(page(manager_client, upgrade)) == []


def test_old_action_url__roll_back__same_door_reason_required(
    manager_client, make_upgrade, manager
):
    # Given a deployed minor upgrade (the run page's "common issues" form posts the old URL)
    upgrade = started(make_upgrade("minor"), manager)
    Upgrade.objects.filter(pk=upgrade.pk).update(
        deploy_state=DeployState.PASSED, rollback_target="1.4.2"
    )
    url = reverse("upgrades:action", args=[upgrade.pk, "rollback_version"])

    without = manager_client.post(url, {"confirm": "yes"})
    with_reason = manager_client.post(url, {"reason": "error rate doubled"})

    assert without.status_code == 400 and "needs a reason" in without.content.decode()
    assert with_reason.status_code == 302
    assert with_reason["Location"].endswith("#lifecycle")
    assert CheckRun.objects.filter(upgrade=upgrade, action="rollback_version").exists()


PAGE_QUERIES = 24  # whatever the checklist's size, runs and history


def test_page__more_steps_closed_and_runs__the_same_number_of_queries(
    manager_client, make_upgrade, django_assert_max_num_queries
):
    upgrade = make_upgrade("major", version_to="2.0.0")
    url = reverse("upgrades:detail", args=[upgrade.pk])
    with django_assert_max_num_queries(PAGE_QUERIES):
        assert manager_client.get(url).status_code == 200
    for step in upgrade.steps.filter(phase__stage=PhaseStage.PRE)[:10]:
        manager_client.post(step_url(upgrade, step, "complete"))
        failed_check(step)

    with django_assert_max_num_queries(PAGE_QUERIES):
        assert manager_client.get(url).status_code == 200
