"""The REST API when a deploy's worker died mid-run: GET /api/runs/{id} says the outcome is
unknown and which decisions the token's user may take; POST /api/runs/{id}/check-target reads
the target's version; POST /api/runs/{id}/resolve marks it passed or failed with what was
checked. Release managers write; stakeholders get 403; a run whose outcome is known gets 409.

The interrupted deploy is made as in tests/upgrades/test_at_most_once.py: a worker claims the
deploy and dies, and the sweep runs with the clock moved on."""

from __future__ import annotations

import pytest

from tests.upgrades.test_at_most_once import _interrupted_deploy, _started
from upgrades import services
from upgrades.models import CheckRun, DeployState, EventKind, RunStatus

FOUR = {"check_target", "retry", "resolve_passed", "resolve_failed", "mark_failed"}


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


@pytest.fixture
def interrupted(minor, manager) -> CheckRun:
    run = _interrupted_deploy(_started(minor, manager), manager)
    assert run.status == RunStatus.INTERRUPTED
    return run


def _finished_check(upgrade, manager) -> CheckRun:
    step = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_run_detail__interrupted_deploy__outcome_unknown_and_the_managers_decisions(
    manager_api, interrupted
):
    body = manager_api.get(f"/api/runs/{interrupted.pk}").json()

    assert body["status"] == "interrupted" and body["outcome_unknown"] is True
    assert set(body["decisions"]) == FOUR
    assert body["resolved_by"] is None


def test_run_detail__stakeholder__outcome_unknown_and_no_decisions(stakeholder_api, interrupted):
    body = stakeholder_api.get(f"/api/runs/{interrupted.pk}").json()

    assert body["outcome_unknown"] is True and body["decisions"] == []


def test_run_detail__run_that_passed__nothing_to_decide(manager_api, minor, manager):
    run = _finished_check(minor, manager)

    body = manager_api.get(f"/api/runs/{run.pk}").json()

    assert body["outcome_unknown"] is False and body["decisions"] == []


def test_upgrade__interrupted_deploy__allowed_actions_include_retry_and_mark_failed(
    manager_api, interrupted
):
    body = manager_api.get(f"/api/upgrades/{interrupted.upgrade_id}").json()

    assert body["deploy_state"] == DeployState.UNKNOWN
    assert {"retry", "mark_failed"} <= set(body["allowed_actions"])


def test_check_target__manager__version_read_recorded_on_the_timeline(
    manager_api, manager, interrupted
):
    response = manager_api.post(f"/api/runs/{interrupted.pk}/check-target")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] and f"the target reports version {body['version']}" in body["message"]
    assert body["run"]["outcome_unknown"] is True  # reading decides nothing
    event = interrupted.upgrade.events.get(to_value="target checked")
    assert event.actor == manager and event.message == body["message"]


def test_resolve_passed__manager__deployed_begin_monitoring_next_and_on_the_timeline(
    manager_api, manager, interrupted
):
    response = manager_api.post(
        f"/api/runs/{interrupted.pk}/resolve",
        {"outcome": "passed", "reason": "/health reports 1.5.0"},
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["run"]["status"] == "passed" and body["run"]["outcome_unknown"] is False
    assert body["run"]["resolved_by"] == "alice" and body["run"]["decisions"] == []
    assert body["upgrade"]["deploy_state"] == DeployState.PASSED
    assert body["upgrade"]["next_action"]["action"] == "begin_monitoring"
    decided = interrupted.upgrade.events.get(kind=EventKind.RUN_FINISHED, actor=manager)
    assert "marked passed by alice: /health reports 1.5.0" in decided.message


def test_resolve_failed__manager__retry_roll_back_and_mark_failed_allowed(manager_api, interrupted):
    response = manager_api.post(
        f"/api/runs/{interrupted.pk}/resolve", {"outcome": "failed", "reason": "still 1.4.2"}
    )

    assert response.status_code == 200, response.content
    upgrade = response.json()["upgrade"]
    assert upgrade["deploy_state"] == DeployState.FAILED
    assert {"retry", "roll_back", "mark_failed"} <= set(upgrade["allowed_actions"])


@pytest.mark.parametrize("path", ["check-target", "resolve"])
def test_decisions__stakeholder__403_and_nothing_recorded(stakeholder_api, interrupted, path):
    events = interrupted.upgrade.events.count()

    response = stakeholder_api.post(
        f"/api/runs/{interrupted.pk}/{path}", {"outcome": "passed", "reason": "x"}
    )

    assert response.status_code == 403 and "error" in response.json()
    assert interrupted.upgrade.events.count() == events


@pytest.mark.parametrize("path", ["check-target", "resolve"])
def test_decisions__run_not_interrupted__409_with_the_reason(manager_api, minor, manager, path):
    run = _finished_check(minor, manager)

    response = manager_api.post(
        f"/api/runs/{run.pk}/{path}", {"outcome": "failed", "reason": "looked at it"}
    )

    assert response.status_code == 409
    assert "outcome is unknown" in response.json()["error"]
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED


def test_resolve__upgrade_moved_on__409(manager_api, manager, interrupted):
    services.upgrade_act(upgrade=interrupted.upgrade, action="retry", by=manager)

    response = manager_api.post(
        f"/api/runs/{interrupted.pk}/resolve", {"outcome": "passed", "reason": "late"}
    )

    assert response.status_code == 409 and "moved on" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": "passed"}, "reason"),
        ({"outcome": "passed", "reason": "   "}, "reason"),
        ({"outcome": "maybe", "reason": "x"}, "outcome"),
        ({"reason": "x"}, "outcome"),
        ({"outcome": "passed", "reason": "\ud800"}, "reason"),
        ({"outcome": "passed", "reason": "x", "extra": 1}, "extra"),
    ],
)
def test_resolve__bad_input__400_naming_the_field(manager_api, interrupted, body, field):
    response = manager_api.post(f"/api/runs/{interrupted.pk}/resolve", body)

    assert response.status_code == 400, response.content
    assert field in (response.json().get("field") or response.json()["error"])
    interrupted.refresh_from_db()
    assert interrupted.status == RunStatus.INTERRUPTED


def test_decisions__unknown_run__404(manager_api, db):
    assert manager_api.post("/api/runs/999999/check-target").status_code == 404
    response = manager_api.post("/api/runs/999999/resolve", {"outcome": "passed", "reason": "x"})
    assert response.status_code == 404


def test_openapi__new_operations_described(anonymous_api, db):
    document = anonymous_api.get("/api/openapi.json").json()
    paths = document["paths"]
    assert paths["/api/runs/{run_id}/check-target"]["post"]["operationId"] == "runs_check_target"
    assert paths["/api/runs/{run_id}/resolve"]["post"]["operationId"] == "runs_resolve"
    run_out = document["components"]["schemas"]["RunOut"]["properties"]
    assert {"outcome_unknown", "decisions"} <= run_out.keys()
