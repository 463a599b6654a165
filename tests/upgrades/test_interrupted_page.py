"""The upgrade page and the run page when a deploy's worker died mid-run: the page says
"Interrupted — outcome unknown" and offers a release manager the decisions (check the target,
retry, mark it passed or failed with what was checked, mark the upgrade failed); a stakeholder
sees the state and no decision; each decision lands on the timeline with who and why.

The interrupted deploy is made the honest way: the deploy is requested through the lifecycle
door, a worker claims it and dies (its heartbeat goes stale), and the sweep runs with a clock
moved on (tests/upgrades/test_at_most_once.py's helpers)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.upgrades.test_at_most_once import _claimed, _interrupted_deploy, _later, _started
from upgrades import services
from upgrades.models import CheckRun, DeployState, EventKind, RunStatus

BADGE = "Interrupted — outcome unknown"
DECISION_BUTTONS = ("decide-{pk}-check", "decide-{pk}-retry", "decide-{pk}-passed",
                    "decide-{pk}-failed", "decide-{pk}-mark_failed")  # fmt: skip


@pytest.fixture
def minor(make_upgrade, demo_environment):
    # As in test_at_most_once: a minor upgrade against the demo Mycelia (a real target).
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


@pytest.fixture
def interrupted(minor, manager) -> CheckRun:
    upgrade = _started(minor, manager)
    run = _interrupted_deploy(upgrade, manager)
    assert run.status == RunStatus.INTERRUPTED
    return run


def _page(client, run: CheckRun) -> str:
    response = client.get(run.upgrade.get_absolute_url())
    assert response.status_code == 200
    return response.content.decode()


def _url(run: CheckRun, name: str) -> str:
    return reverse(f"upgrades:{name}", args=[run.upgrade_id, run.pk])


def _region(html: str, element_id: str) -> str:
    """The element with `element_id`, up to the end of its tag's closing (by nesting depth)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', html)
    assert match, f"#{element_id} is not on the page"
    tag, start, depth = match.group(1), match.start(), 0
    for token in re.finditer(rf"<(/?){tag}\b[^>]*>", html[start:]):
        depth += -1 if token.group(1) else 1
        if depth == 0:
            return html[start : start + token.end()]
    return html[start:]


# --- what the page says, and to whom --------------------------------------------------------------


def test_page__interrupted_deploy__says_outcome_unknown_and_offers_a_manager_the_decisions(
    manager_client, interrupted
):
    html = _page(manager_client, interrupted)

    panel = _region(html, f"decide-{interrupted.pk}")
    assert BADGE in panel  # words, not only a colour
    assert "Deploy interrupted: outcome unknown" in _region(html, "deploy-state")
    for button in DECISION_BUTTONS:
        assert f'id="{button.format(pk=interrupted.pk)}"' in panel, button
    assert "Check the target" in panel and "Retry the deploy" in panel
    assert "Mark it passed" in panel and "Mark it failed" in panel
    assert "Mark the upgrade failed" in panel
    # Each mark asks what was checked, required
    for outcome in ("passed", "failed"):
        field = re.search(rf'<input name="reason" id="decide-{interrupted.pk}-{outcome}-reason"[^>]*>',
                          panel)  # fmt: skip
        assert field and "required" in field.group(0)
    assert f'href="#decide-{interrupted.pk}"' in _region(html, "lifecycle")
    assert BADGE in _region(html, f"run-{interrupted.pk}")


def test_page__interrupted_deploy__stakeholder_sees_the_state_and_no_decision(
    stakeholder_client, interrupted
):
    html = _page(stakeholder_client, interrupted)

    panel = _region(html, f"decide-{interrupted.pk}")
    assert BADGE in panel
    assert "<form" not in panel
    assert "A release manager checks the target" in panel
    for button in DECISION_BUTTONS:
        assert button.format(pk=interrupted.pk) not in html


def test_page__no_interrupted_run__no_decision_panel(manager_client, minor, manager):
    upgrade = _started(minor, manager)
    html = _page(manager_client, upgrade.runs.first() or CheckRun(upgrade=upgrade))
    assert 'class="card decide"' not in html and BADGE not in html


def test_decisions__stakeholder_posts__403_and_nothing_recorded(stakeholder_client, interrupted):
    events = interrupted.upgrade.events.count()
    for name, data in (("run_check_target", {}),
                       ("run_resolve", {"outcome": "passed", "reason": "x"})):  # fmt: skip
        assert stakeholder_client.post(_url(interrupted, name), data).status_code == 403
    assert interrupted.upgrade.events.count() == events


# --- the decisions ------------------------------------------------------------------------------


def test_check_target__manager__version_read_recorded_and_shown_with_when(
    manager_client, manager, interrupted
):
    # When the manager asks the target (the demo Mycelia answers /health) without JavaScript
    response = manager_client.post(_url(interrupted, "run_check_target"))

    # Then back to the panel, the read on the timeline, and shown in the panel with who and when
    assert response.status_code == 302
    assert response["Location"].endswith(f"#decide-{interrupted.pk}")
    event = interrupted.upgrade.events.get(to_value="target checked")
    assert event.actor == manager and "the target reports version" in event.message
    panel = _region(_page(manager_client, interrupted), f"decide-{interrupted.pk}")
    target_read = _region(panel, f"decide-{interrupted.pk}-target-read")
    assert "Target checked" in target_read and "alice" in target_read
    assert "the target reports version" in target_read and "<time" in target_read


def test_resolve_passed__manager_with_reason__deployed_and_begin_monitoring_is_next(
    manager_client, manager, interrupted
):
    response = manager_client.post(
        _url(interrupted, "run_resolve"), {"outcome": "passed", "reason": "/health says 1.5.0"}
    )

    assert response.status_code == 302 and response["Location"].endswith("#lifecycle")
    interrupted.refresh_from_db()
    upgrade = interrupted.upgrade
    upgrade.refresh_from_db()
    assert interrupted.status == RunStatus.PASSED and interrupted.resolved_by == manager
    assert upgrade.deploy_state == DeployState.PASSED
    html = _page(manager_client, interrupted)
    assert "Next: Begin monitoring" in _region(html, "next")
    assert f'id="decide-{interrupted.pk}"' not in html  # nothing left to decide
    assert "decided by alice" in _region(html, f"run-{interrupted.pk}")


def test_resolve_failed__manager__retry_roll_back_and_mark_failed_offered(
    manager_client, interrupted
):
    response = manager_client.post(
        _url(interrupted, "run_resolve"), {"outcome": "failed", "reason": "/health says 1.4.2"}
    )

    assert response.status_code == 302
    upgrade = interrupted.upgrade
    upgrade.refresh_from_db()
    assert upgrade.deploy_state == DeployState.FAILED
    lifecycle = _region(_page(manager_client, interrupted), "lifecycle")
    assert 'id="act-retry"' in lifecycle and "Retry the deploy" in lifecycle
    assert 'id="act-roll_back"' in lifecycle and "Roll back to 1.4.2" in lifecycle
    assert 'id="act-mark_failed"' in lifecycle


def test_decisions__each_on_the_timeline_with_who_and_why(manager_client, interrupted):
    manager_client.post(_url(interrupted, "run_check_target"))
    manager_client.post(
        _url(interrupted, "run_resolve"), {"outcome": "passed", "reason": "release notes page live"}
    )

    timeline = _region(_page(manager_client, interrupted), "timeline")
    assert "target checked" in timeline.lower()
    assert "marked passed by alice: release notes page live" in timeline
    # States as words on the timeline, never codes
    assert "(Interrupted — outcome unknown → Passed)" in timeline
    assert "in_progress" not in timeline and "(running →" not in timeline
    full = manager_client.get(reverse("upgrades:timeline", args=[interrupted.upgrade_id]))
    text = full.content.decode()
    assert "marked passed by alice: release notes page live" in text
    assert "(Interrupted — outcome unknown → Passed)" in text
    assert "(draft → in_progress)" not in text and "(Draft → In progress)" in text


def test_mark_upgrade_failed__from_the_panel__upgrade_failed_and_panel_gone(
    manager_client, interrupted
):
    response = manager_client.post(
        reverse("upgrades:act", args=[interrupted.upgrade_id, "mark_failed"]),
        {"reason": "cannot tell what the target runs"},
    )

    assert response.status_code == 302 and response["Location"].endswith("#lifecycle")
    html = _page(manager_client, interrupted)
    assert f'id="decide-{interrupted.pk}"' not in html
    assert ">Failed</span>" in _region(html, "upgrade-status")


def test_retry__from_the_panel__a_new_deploy_queued_and_panel_gone(manager_client, interrupted):
    response = manager_client.post(reverse("upgrades:act", args=[interrupted.upgrade_id, "retry"]))

    assert response.status_code == 302
    assert interrupted.upgrade.runs.filter(kind="deploy", status=RunStatus.QUEUED).exists()
    assert f'id="decide-{interrupted.pk}"' not in _page(manager_client, interrupted)


# --- refusals -------------------------------------------------------------------------------------


def test_resolve__run_not_interrupted__409_with_the_reason(manager_client, minor, manager):
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)

    response = manager_client.post(_url(run, "run_resolve"), {"outcome": "failed", "reason": "x"})

    assert response.status_code == 409
    assert "only a run whose outcome is unknown is decided by hand" in response.content.decode()


def test_resolve__no_reason__400_saying_what_to_write(manager_client, interrupted):
    response = manager_client.post(_url(interrupted, "run_resolve"), {"outcome": "passed"})

    assert response.status_code == 400
    assert "what you checked" in response.content.decode()
    interrupted.refresh_from_db()
    assert interrupted.status == RunStatus.INTERRUPTED


def test_check_target__htmx_run_not_interrupted__409_in_the_live_region(
    manager_client, minor, manager
):
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = services.check_run_request(upgrade=minor, step=step, by=manager)

    response = manager_client.post(_url(run, "run_check_target"), HTTP_HX_REQUEST="true")

    assert response.status_code == 409
    assert response["HX-Retarget"] == "#page-message"
    assert "Only a run whose outcome is unknown" in response.content.decode()


# --- HTMX: the smallest swap -----------------------------------------------------------------------


def test_resolve__htmx__the_panel_region_and_changed_regions_out_of_band(
    manager_client, interrupted
):
    response = manager_client.post(
        _url(interrupted, "run_resolve"),
        {"outcome": "passed", "reason": "/health says 1.5.0"},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="outcome-unknown"')  # the region the form was in
    for region in ("upgrade-header", "lifecycle", "runs", "timeline-card", "page-message"):
        assert re.search(rf'id="{region}"[^>]*hx-swap-oob', html), region
    assert 'id="checklist"' not in html  # never the whole page
    assert "Next: Begin monitoring" in html


def test_check_target__htmx__panel_shows_the_read(manager_client, interrupted):
    response = manager_client.post(_url(interrupted, "run_check_target"), HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="outcome-unknown"')
    assert f'id="decide-{interrupted.pk}-target-read"' in html


def test_runs_poll__deploy_swept_while_watched__decisions_arrive(manager_client, minor, manager):
    upgrade = _started(minor, manager)
    run = _claimed(services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run)
    page = manager_client.get(upgrade.get_absolute_url()).content.decode()
    query = re.search(r'hx-get="[^"?]+\?([^"]+)"', _region(page, "runs")).group(1)
    query = query.replace("&amp;", "&")

    services.check_runs_sweep(now=_later())
    polled = manager_client.get(reverse("upgrades:runs", args=[upgrade.pk]) + "?" + query)

    html = polled.content.decode()
    assert re.search(r'id="outcome-unknown"[^>]*hx-swap-oob', html)
    assert f'id="decide-{run.pk}"' in html and BADGE in html


# --- the run page -------------------------------------------------------------------------------------


def test_run_page__interrupted_deploy__badge_decisions_and_parameters_in_words(
    manager_client, interrupted
):
    html = manager_client.get(_url(interrupted, "run")).content.decode()

    assert BADGE in _region(html, "decide") and BADGE in _region(html, "run-status")
    assert f'id="decide-{interrupted.pk}-passed"' in html
    params = _region(html, "run-params")
    assert "<dt>Version</dt>" in params and "1.5.0" in params
    assert "{'" not in html and "{&#x27;" not in html  # never a Python dict


def test_run_page__mark_passed_from_it__back_to_the_run_page_decided(manager_client, interrupted):
    response = manager_client.post(
        _url(interrupted, "run_resolve"),
        {"outcome": "passed", "reason": "/health says 1.5.0", "from": "run"},
    )

    assert response.status_code == 302
    assert response["Location"].endswith(_url(interrupted, "run") + "#decide")
    html = manager_client.get(_url(interrupted, "run")).content.decode()
    assert "Outcome decided" in _region(html, "decide") and "alice" in _region(html, "decide")


def test_run_page__htmx_decision__panel_and_status_swapped(manager_client, interrupted):
    response = manager_client.post(
        _url(interrupted, "run_resolve"),
        {"outcome": "failed", "reason": "still 1.4.2", "from": "run"},
        HTTP_HX_REQUEST="true",
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card decide decided" id="decide"')
    assert re.search(r'id="log-poller"[^>]*hx-swap-oob="true"', html)
    assert ">Failed</span>" in _region(html, "run-status")


def test_run_page__stakeholder__badge_without_decisions(stakeholder_client, interrupted):
    html = stakeholder_client.get(_url(interrupted, "run")).content.decode()
    assert BADGE in html and f"decide-{interrupted.pk}-passed" not in html


def test_run_page__measured_figures__words_and_units_not_a_dict(manager_client, minor, manager):
    step = minor.steps.get(title="Verify system status")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.measured, run.reason

    html = manager_client.get(_url(run, "run")).content.decode()

    measured = _region(html, "run-measured")
    assert "{'" not in html and "{&#x27;" not in html
    assert " ms" in measured or " %" in measured
    assert "_" not in re.sub(r"<[^>]+>", "", measured).split("Service")[0].replace("—", "")


def test_timeline_page__run_finished_event__state_words(manager_client, interrupted):
    text = manager_client.get(
        reverse("upgrades:timeline", args=[interrupted.upgrade_id])
    ).content.decode()
    assert "(Running → Interrupted — outcome unknown)" in text
    assert "(Deploying → Deploy interrupted: outcome unknown)" in text
    assert EventKind.DEPLOYMENT  # the deploy's own line names its state in words


def test_page__interrupted_rollback__retry_resolved_by_hand_and_mark_failed_offered(
    manager_client, manager, interrupted
):
    # Given the deploy marked passed, then a rollback whose worker died
    services.check_run_resolve(run=interrupted, by=manager, outcome="passed", reason="1.5.0 up")
    upgrade = interrupted.upgrade
    upgrade.refresh_from_db()
    rollback = services.upgrade_act(
        upgrade=upgrade, action="roll_back", by=manager, reason="errors after the deploy"
    ).run
    rollback = _claimed(rollback)
    services.check_runs_sweep(now=_later())
    rollback.refresh_from_db()
    assert rollback.status == RunStatus.INTERRUPTED

    panel = _region(_page(manager_client, rollback), f"decide-{rollback.pk}")

    assert "Outcome unknown: the rollback" in panel and BADGE in panel
    assert "Retry the rollback" in panel
    for button in ("check", "passed", "failed", "resolved_by_hand", "mark_failed"):
        assert f'id="decide-{rollback.pk}-{button}"' in panel, button
