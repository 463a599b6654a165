"""The upgrades REST API: who may call what, the upgrade's JSON, creating and editing, actions,
steps and runs, and bad input answered 400 naming the field."""

from __future__ import annotations

import pytest

from tests.api.conftest import ApiClient
from upgrades import services
from upgrades.models import ChecklistStep, CheckRun, RunStatus, Upgrade

pytestmark = pytest.mark.django_db

NEW_MINOR = {
    "type": "minor",
    "title": "Ship 1.5.0",
    "environment": "staging",
    "version_from": "1.4.2",
    "version_to": "1.5.0",
    "window_start": "2026-05-01T14:30:00Z",
    "window_minutes": 45,
}


def _pre_manual(upgrade: Upgrade) -> ChecklistStep:
    return upgrade.steps.filter(phase__stage="pre", kind="manual").order_by("id").first()


def _pre_automated(upgrade: Upgrade) -> ChecklistStep:
    return upgrade.steps.get(phase__stage="pre", title="Verify system status")


def _queued_run(upgrade: Upgrade, by) -> CheckRun:
    return services.check_run_request(upgrade=upgrade, step=_pre_automated(upgrade), by=by)


# ---------------------------------------------------------------------------------------------
# Who may call what: every endpoint, by a manager, a stakeholder, an outsider and no token


def _requests(upgrade: Upgrade, run: CheckRun) -> list[tuple[str, str, str, dict | None, int]]:
    """(name, method, path, body, the manager's status) for every operation."""
    u, manual = upgrade.pk, _pre_manual(upgrade).pk
    automated = upgrade.steps.get(phase__stage="pre", title="Check SLO status").pk
    other = upgrade.steps.filter(phase__stage="pre", kind="manual").order_by("id")[1].pk
    return [
        ("environments", "get", "/api/environments", None, 200),
        ("list", "get", "/api/upgrades", None, 200),
        ("create", "post", "/api/upgrades", NEW_MINOR, 201),
        ("detail", "get", f"/api/upgrades/{u}", None, 200),
        ("edit", "patch", f"/api/upgrades/{u}", {"title": "Renamed"}, 200),
        ("act", "post", f"/api/upgrades/{u}/actions/cancel", {"reason": "Not now"}, 200),
        ("complete", "post", f"/api/upgrades/{u}/steps/{manual}/complete", {"note": "ok"}, 200),
        ("skip", "post", f"/api/upgrades/{u}/steps/{other}/skip", {"reason": "n/a"}, 200),
        ("reopen", "post", f"/api/upgrades/{u}/steps/{manual}/reopen", {"reason": "again"}, 200),
        ("run", "post", f"/api/upgrades/{u}/steps/{automated}/run", None, 202),
        ("run_detail", "get", f"/api/runs/{run.pk}", None, 200),
        ("run_log", "get", f"/api/runs/{run.pk}/log", None, 200),
        ("run_cancel", "post", f"/api/runs/{run.pk}/cancel", None, 200),
    ]


ENDPOINTS = [
    "environments", "list", "create", "detail", "edit", "act", "complete", "skip", "reopen",
    "run", "run_detail", "run_log", "run_cancel",
]  # fmt: skip
READS = {"environments", "list", "detail", "run_detail", "run_log"}


def _call(api: ApiClient, method: str, path: str, body: dict | None):
    if method == "get":
        return api.get(path)
    if method == "patch":
        return api.patch(path, body)
    return api.post(path, body)


@pytest.fixture
def upgrade_and_run(make_upgrade, manager):
    upgrade = make_upgrade("minor", window_start=None)
    return upgrade, _queued_run(upgrade, manager)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_endpoint__manager_token__does_it(endpoint, manager_api, upgrade_and_run):
    name, method, path, body, expected = next(
        r for r in _requests(*upgrade_and_run) if r[0] == endpoint
    )
    response = _call(manager_api, method, path, body)
    assert response.status_code == expected, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_endpoint__stakeholder_token__reads_but_never_writes(
    endpoint, stakeholder_api, upgrade_and_run
):
    upgrade, run = upgrade_and_run
    name, method, path, body, _ = next(r for r in _requests(*upgrade_and_run) if r[0] == endpoint)
    before = (Upgrade.objects.count(), upgrade.events.count(), CheckRun.objects.count())

    response = _call(stakeholder_api, method, path, body)

    if endpoint in READS:
        assert response.status_code == 200, response.content
    else:
        assert response.status_code == 403, response.content
        assert "Only release managers" in response.json()["error"]
        assert (Upgrade.objects.count(), upgrade.events.count(), CheckRun.objects.count()) == (
            before
        )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_endpoint__outsider_token__403(endpoint, outsider_api, upgrade_and_run):
    name, method, path, body, _ = next(r for r in _requests(*upgrade_and_run) if r[0] == endpoint)
    response = _call(outsider_api, method, path, body)
    assert response.status_code == 403, response.content
    assert response.json()["error"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_endpoint__no_token__401(endpoint, anonymous_api, upgrade_and_run):
    name, method, path, body, _ = next(r for r in _requests(*upgrade_and_run) if r[0] == endpoint)
    response = _call(anonymous_api, method, path, body)
    assert response.status_code == 401, response.content
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_endpoint__revoked_token__401(client, manager, make_upgrade):
    from flags.services import api_token_create, api_token_revoke

    token, plaintext = api_token_create(user=manager, name="old", scope="user")
    api_token_revoke(token=token)
    response = ApiClient(client, plaintext).get("/api/upgrades")
    assert response.status_code == 401


def test_endpoint__evaluation_token__403(client, manager):
    from flags.models import FlagEnvironment
    from flags.services import api_token_create

    environment = FlagEnvironment.objects.first() or FlagEnvironment.objects.create(
        key="production", name="Production"
    )
    _, plaintext = api_token_create(
        user=manager, name="ofrep", scope="evaluation", environment=environment
    )
    response = ApiClient(client, plaintext).get("/api/upgrades")
    assert response.status_code == 403


# ---------------------------------------------------------------------------------------------
# The upgrade in JSON


def test_detail__fresh_draft__carries_state_checklist_actions_and_page_url(
    manager_api, make_upgrade, settings
):
    settings.MYCELIA_BASE_URL = "https://ops.example.com"
    upgrade = make_upgrade("minor")

    body = manager_api.get(f"/api/upgrades/{upgrade.pk}").json()

    assert body["id"] == upgrade.pk and body["status"] == "draft" and body["type"] == "minor"
    assert (body["environment"], body["version_from"], body["version_to"]) == (
        "staging",
        "1.4.2",
        "1.5.0",
    )
    assert body["flag"] is None
    assert body["deploy_state"] == "none" and body["rollback_state"] == "none"
    assert body["url"] == f"https://ops.example.com/upgrades/{upgrade.pk}/"
    assert body["allowed_actions"] == ["edit", "start", "back_up", "cancel"]
    assert body["next_action"]["action"] == "start"
    assert [p["stage"] for p in body["phases"]][0] == "pre"
    step = body["phases"][0]["steps"][0]
    assert set(step) >= {"id", "title", "status", "required", "kind", "last_run"}
    assert step["status"] == "open" and step["last_run"] is None
    assert sum(len(p["steps"]) for p in body["phases"]) == upgrade.steps.count()
    assert body["cloned_from"] is None and body["clones"] == []


def test_detail__stakeholder__sees_no_allowed_actions(stakeholder_api, make_upgrade):
    upgrade = make_upgrade("minor")
    body = stakeholder_api.get(f"/api/upgrades/{upgrade.pk}").json()
    assert body["allowed_actions"] == [] and body["next_action"] is None


def test_detail__step_accepted_despite_failed_check__says_so_with_its_last_run(
    manager_api, make_upgrade, manager
):
    # Given a step whose latest check failed, accepted with a written reason
    upgrade = make_upgrade("minor")
    step = _pre_automated(upgrade)
    run = _queued_run(upgrade, manager)
    CheckRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, reason="503 from /ops")

    refused = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/complete", {})
    accepted = manager_api.post(
        f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/complete",
        {"override_reason": "Status page is known flaky; checked by hand"},
    )

    # Then the plain tick is refused, the one with a reason is accepted and shown as such
    assert refused.status_code == 409 and "failed" in refused.json()["error"]
    assert accepted.status_code == 200, accepted.content
    shown = accepted.json()["step"]
    assert shown["status"] == "done" and shown["accepted_despite_failure"] is True
    assert shown["override_reason"] == "Status page is known flaky; checked by hand"
    assert shown["last_run"] == {"id": run.pk, "status": "failed", "reason": "503 from /ops"}
    detail = manager_api.get(f"/api/upgrades/{upgrade.pk}").json()
    (in_detail,) = [s for p in detail["phases"] for s in p["steps"] if s["id"] == step.pk]
    assert in_detail["accepted_despite_failure"] is True


def test_detail__unknown_upgrade__404(manager_api, db):
    response = manager_api.get("/api/upgrades/999999")
    assert response.status_code == 404 and "999999" in response.json()["error"]


@pytest.mark.parametrize("upgrade_id", ["0", "99999999999999999999999999", "abc", "-1"])
def test_detail__impossible_id__400_or_404_never_500(manager_api, db, upgrade_id):
    response = manager_api.get(f"/api/upgrades/{upgrade_id}")
    assert response.status_code in (400, 404)


# ---------------------------------------------------------------------------------------------
# Listing


def test_list__filters_and_pages__count_links_and_results(manager_api, make_upgrade):
    for _ in range(3):
        make_upgrade("minor")
    make_upgrade("major")

    first = manager_api.get("/api/upgrades", type="minor", limit=2).json()
    second = manager_api.get("/api/upgrades", type="minor", limit=2, page=2).json()

    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    assert first["next"].startswith("http://testserver/api/upgrades?")
    assert "type=minor" in first["next"] and "page=2" in first["next"]
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [u["id"] for u in first["results"] + second["results"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert all(u["type"] == "minor" for u in first["results"] + second["results"])


def test_list__status_and_environment_filters__narrow_the_results(
    manager_api, make_upgrade, manager
):
    kept, cancelled = make_upgrade("minor"), make_upgrade("minor")
    services.upgrade_act(upgrade=cancelled, action="cancel", by=manager, reason="Not now")

    by_status = manager_api.get("/api/upgrades", status="cancelled").json()
    elsewhere = manager_api.get("/api/upgrades", environment="production").json()

    assert [u["id"] for u in by_status["results"]] == [cancelled.pk]
    assert elsewhere["count"] == 0 and kept.pk


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"page": 0}, "page"),
        ({"page": 5}, "page"),
        ({"page": "x"}, "page"),
        ({"status": "banana"}, "status"),
        ({"type": "huge"}, "type"),
    ],
)
def test_list__bad_query__400_naming_it(manager_api, make_upgrade, params, field):
    make_upgrade("minor")
    response = manager_api.get("/api/upgrades", **params)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_list__a_full_page__bounded_queries(
    manager_api, make_upgrade, django_assert_max_num_queries
):
    for _ in range(25):
        make_upgrade("minor")
    with django_assert_max_num_queries(8):
        response = manager_api.get("/api/upgrades", limit=20)
    assert len(response.json()["results"]) == 20


def test_detail__bounded_queries(manager_api, make_upgrade, django_assert_max_num_queries):
    upgrade = make_upgrade("minor")
    with django_assert_max_num_queries(20):
        response = manager_api.get(f"/api/upgrades/{upgrade.pk}")
    assert response.status_code == 200


# ---------------------------------------------------------------------------------------------
# Creating


def test_create__minor__201_owned_by_the_token_user_with_its_checklist(
    manager_api, playbook, staging, manager
):
    response = manager_api.post("/api/upgrades", NEW_MINOR)

    assert response.status_code == 201, response.content
    body = response.json()
    upgrade = Upgrade.objects.get(pk=body["id"])
    assert upgrade.owner == manager and upgrade.status == "draft"
    assert body["window_start"].startswith("2026-05-01T14:30") and body["window_minutes"] == 45
    assert "schedule" in body["allowed_actions"]
    assert body["phases"] and body["owner"] == "alice"


def test_create__flag_upgrade__names_the_flag(manager_api, playbook, staging, manager):
    from tests.conftest import _flag_exists

    _flag_exists("new-checkout", staging, manager)
    response = manager_api.post(
        "/api/upgrades",
        {"type": "feature_flag", "title": "New checkout", "environment": "staging",
         "flag": "new-checkout"},
    )  # fmt: skip
    assert response.status_code == 201, response.content
    assert response.json()["flag"] == "new-checkout"


def test_create__with_description__kept_on_the_upgrade(manager_api, playbook, staging):
    response = manager_api.post("/api/upgrades", NEW_MINOR | {"description": "Faster search"})
    assert response.status_code == 201, response.content
    assert response.json()["description"] == "Faster search"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "feature_flag", "flag": "no-such-flag", "version_from": "",
          "version_to": ""}, "flag"),
        ({"type": "emergency", "version_to": "1.4.3"}, "emergency_kind"),
        ({"environment": "mars"}, "environment"),
        ({"version_to": "1.4.0"}, "version_to"),
        ({"version_to": "2.0.0"}, "version_to"),
        ({"version_to": "banana"}, "version_to"),
        ({"type": "major", "version_to": "1.4.3"}, "version_to"),
        ({"flag": "new-checkout"}, "flag"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "tab\u0007bell"}, "title"),
        ({"window_start": "9999-01-01T00:00:00Z"}, "window_start"),
        ({"window_start": "1999-12-31T23:59:00Z"}, "window_start"),
        ({"window_start": "yesterday"}, "window_start"),
        ({"window_start": "2026-02-30T10:00:00Z"}, "window_start"),
        ({"window_minutes": 10**30}, "window_minutes"),
        ({"window_minutes": 0}, "window_minutes"),
        ({"window_minutes": "soon"}, "window_minutes"),
        ({"risk": "low"}, "risk"),
        ({"risk": "apocalyptic"}, "risk"),
        ({"type": "patch"}, "type"),
        ({"colour": "blue"}, "colour"),
    ],
)  # fmt: skip
def test_create__bad_input__400_naming_the_field(manager_api, playbook, staging, change, field):
    response = manager_api.post("/api/upgrades", NEW_MINOR | change)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field, response.json()
    assert not Upgrade.objects.exists()


def test_create__lone_surrogate_in_title__400_naming_it(client, manager_api, playbook, staging):
    raw = '{"type": "minor", "title": "bad \\ud800", "environment": "staging", '
    raw += '"version_from": "1.4.2", "version_to": "1.5.0"}'
    response = client.post(
        "/api/upgrades", raw, content_type="application/json", **manager_api.headers
    )
    assert response.status_code == 400
    assert response.json()["field"] == "title"


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "minor", "title": "x", "environment": "staging", "window_minutes": NaN}',
        '{"type": "minor", "title": "x", "environment": "staging", "window_minutes": 1e400}',
        "[" * 5000 + "]" * 5000,
        "not json",
        '"a string"',
        "",
    ],
)
def test_create__malformed_body__400(client, manager_api, playbook, staging, raw):
    response = client.post(
        "/api/upgrades", raw, content_type="application/json", **manager_api.headers
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Editing


def test_edit__draft__changes_the_sent_fields_and_notes_them_on_the_timeline(
    manager_api, make_upgrade
):
    upgrade = make_upgrade("minor")

    response = manager_api.patch(
        f"/api/upgrades/{upgrade.pk}",
        {"title": "Ship 1.5.1", "version_to": "1.5.1", "window_start": "2026-06-01T08:00:00Z",
         "window_minutes": 30},
    )  # fmt: skip

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["version_to"], body["window_minutes"]) == (
        "Ship 1.5.1",
        "1.5.1",
        30,
    )
    assert "schedule" in body["allowed_actions"]  # the window start is set now
    event = upgrade.events.filter(kind="updated").first()
    assert "1.5.0 → 1.5.1" in event.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version_to": "1.4.0"}, "version_to"),
        ({"environment": "mars"}, "environment"),
        ({"owner": "charlie"}, "owner"),
        ({"owner": "nobody"}, "owner"),
        ({"title": None}, "title"),
        ({"window_minutes": 99999999}, "window_minutes"),
        ({"window_start": "3000-01-01T00:00:00Z"}, "window_start"),
        ({"status": "completed"}, "status"),
    ],
)
def test_edit__bad_input__400_naming_the_field(manager_api, make_upgrade, outsider, change, field):
    upgrade = make_upgrade("minor")
    response = manager_api.patch(f"/api/upgrades/{upgrade.pk}", change)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_edit__after_the_deployment_started__409_with_allowed_actions(
    manager_api, make_upgrade, manager
):
    upgrade = make_upgrade("minor")
    services.upgrade_act(upgrade=upgrade, action="start", by=manager, override_reason="API test")

    response = manager_api.patch(f"/api/upgrades/{upgrade.pk}", {"title": "Too late"})

    assert response.status_code == 409
    body = response.json()
    assert "deployment starts" in body["error"]
    assert "deploy" in body["allowed_actions"] and "edit" not in body["allowed_actions"]


def test_edit__owner_to_another_release_manager__changes_owner(
    manager_api, make_upgrade, second_manager
):
    upgrade = make_upgrade("minor")
    response = manager_api.patch(f"/api/upgrades/{upgrade.pk}", {"owner": "dave"})
    assert response.status_code == 200, response.content
    assert response.json()["owner"] == "dave"


# ---------------------------------------------------------------------------------------------
# Actions


def test_action__refused__409_with_the_reason_and_allowed_actions(
    manager_api, make_upgrade, manager
):
    # Given an upgrade whose deployment started but nothing was deployed
    upgrade = make_upgrade("minor")
    services.upgrade_act(upgrade=upgrade, action="start", by=manager, override_reason="API test")

    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/begin_monitoring")

    assert response.status_code == 409
    body = response.json()
    assert "Nothing has been deployed yet" in body["error"]
    detail = manager_api.get(f"/api/upgrades/{upgrade.pk}").json()
    assert body["allowed_actions"] == detail["allowed_actions"]
    assert "begin_monitoring" not in body["allowed_actions"]
    assert Upgrade.objects.get(pk=upgrade.pk).status == "in_progress"


def test_action__unknown__404_naming_it(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/launch_rockets")
    assert response.status_code == 404
    assert "launch_rockets" in response.json()["error"]


def test_action__needs_a_reason__400_naming_reason(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/cancel", {})
    assert response.status_code == 400 and response.json()["field"] == "reason"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x" * 2001}, "reason"),
        ({"reason": "\u0000"}, "reason"),
        ({"hours": "many"}, "hours"),
        ({"backup_id": 10**40}, "backup_id"),
        ({"decision": "maybe"}, "decision"),
        ({"why": "because"}, "why"),
    ],
)
def test_action__bad_body__400_naming_the_field(manager_api, make_upgrade, body, field):
    upgrade = make_upgrade("minor")
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/cancel", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field


def test_action__start_with_open_gate__409_then_override_moves_it(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    path = f"/api/upgrades/{upgrade.pk}/actions/start"

    blocked = manager_api.post(path)
    started = manager_api.post(path, {"override_reason": "Pipeline smoke test"})

    assert blocked.status_code == 409 and "still open" in blocked.json()["error"]
    assert started.status_code == 200, started.content
    assert started.json()["upgrade"]["status"] == "in_progress"
    assert started.json()["run"] is None


def test_action__deploy__202_with_the_run_to_poll(manager_api, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    services.upgrade_act(upgrade=upgrade, action="start", by=manager, override_reason="API test")

    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/deploy")

    assert response.status_code == 202, response.content
    body = response.json()
    assert body["run"]["kind"] == "deploy" and body["run"]["status"] == "queued"
    assert body["run"]["finished"] is False
    assert body["upgrade"]["deploy_state"] == "running"
    polled = manager_api.get(f"/api/runs/{body['run']['id']}").json()
    assert polled["id"] == body["run"]["id"] and polled["title"] == "Deploy 1.5.0"


def test_action__approve_by_second_manager__records_go(second_manager_api, make_upgrade):
    upgrade = make_upgrade("major")
    response = second_manager_api.post(
        f"/api/upgrades/{upgrade.pk}/actions/approve",
        {"decision": "go", "reason": "Reviewed the migration plan"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["upgrade"]["approval"] == "go"


def test_action__approve_by_owner__409_four_eyes(manager_api, make_upgrade):
    upgrade = make_upgrade("major")
    response = manager_api.post(
        f"/api/upgrades/{upgrade.pk}/actions/approve", {"decision": "go", "reason": "Mine"}
    )
    assert response.status_code == 409 and "Four eyes" in response.json()["error"]


def test_action__clone_of_ended__201_new_draft_linked_both_ways(manager_api, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    services.upgrade_act(upgrade=upgrade, action="cancel", by=manager, reason="Wrong version")

    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/clone")

    assert response.status_code == 201, response.content
    clone = response.json()["upgrade"]
    assert clone["status"] == "draft" and clone["cloned_from"] == upgrade.pk
    original = manager_api.get(f"/api/upgrades/{upgrade.pk}").json()
    assert original["clones"] == [clone["id"]]


def test_action__edit_name__points_to_patch(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/actions/edit")
    assert response.status_code == 400 and "PATCH" in response.json()["error"]


# ---------------------------------------------------------------------------------------------
# Steps and runs


def test_step_skip__without_reason__400_naming_reason(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    step = _pre_manual(upgrade)
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/skip", {})
    assert response.status_code == 400 and response.json()["field"] == "reason"


def test_step_reopen__done_step__open_again_without_the_old_note(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    step = _pre_manual(upgrade)
    base = f"/api/upgrades/{upgrade.pk}/steps/{step.pk}"
    manager_api.post(f"{base}/complete", {"note": "Posted in #releases"})

    response = manager_api.post(f"{base}/reopen", {"reason": "Posted in the wrong channel"})

    assert response.status_code == 200
    assert response.json()["step"]["status"] == "open" and response.json()["step"]["note"] == ""
    assert response.json()["changed"] is True


def test_step__of_a_later_stage__409_with_the_reason(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.filter(phase__stage="post").first()
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/complete", {})
    assert response.status_code == 409
    assert "post-deployment steps wait" in response.json()["error"]


def test_step__of_another_upgrade__404(manager_api, make_upgrade):
    upgrade, other = make_upgrade("minor"), make_upgrade("minor")
    step = _pre_manual(other)
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/complete", {})
    assert response.status_code == 404


def test_step_run__manual_step__400(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    step = _pre_manual(upgrade)
    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/run")
    assert response.status_code == 400 and "manual" in response.json()["error"]


def test_step_run__automated__202_with_a_queued_run(manager_api, make_upgrade):
    upgrade = make_upgrade("minor")
    step = _pre_automated(upgrade)

    response = manager_api.post(f"/api/upgrades/{upgrade.pk}/steps/{step.pk}/run")

    assert response.status_code == 202, response.content
    run = response.json()["run"]
    assert run["status"] == "queued" and run["step_id"] == step.pk
    assert response.json()["step"]["last_run"]["id"] == run["id"]


def test_run_log__offset__returns_the_rest(manager_api, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    run = _queued_run(upgrade, manager)
    CheckRun.objects.filter(pk=run.pk).update(output="line one\nline two\n", status="passed")

    whole = manager_api.get(f"/api/runs/{run.pk}/log").json()
    rest = manager_api.get(f"/api/runs/{run.pk}/log", offset=9).json()
    past = manager_api.get(f"/api/runs/{run.pk}/log", offset=500).json()

    assert whole["text"] == "line one\nline two\n" and whole["next_offset"] == 18
    assert rest["text"] == "line two\n" and rest["finished"] is True
    assert past["text"] == "" and past["next_offset"] == 500
    detail = manager_api.get(f"/api/runs/{run.pk}").json()
    assert detail["output_tail"] == "line one\nline two\n" and detail["finished"] is True


def test_run__unknown__404(manager_api, db):
    assert manager_api.get("/api/runs/424242").status_code == 404


def test_run_cancel__running__asked_to_stop_then_again_409(manager_api, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    run = _queued_run(upgrade, manager)
    CheckRun.objects.filter(pk=run.pk).update(status="running")

    asked = manager_api.post(f"/api/runs/{run.pk}/cancel")
    again = manager_api.post(f"/api/runs/{run.pk}/cancel")

    assert asked.status_code == 200, asked.content
    assert asked.json()["status"] == "running" and asked.json()["cancel_requested"] is True
    assert again.status_code == 409 and "asked to stop" in again.json()["error"]


def test_run_cancel__finished__409(manager_api, make_upgrade, manager):
    upgrade = make_upgrade("minor")
    run = _queued_run(upgrade, manager)
    CheckRun.objects.filter(pk=run.pk).update(status="passed")
    response = manager_api.post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 409 and "finished" in response.json()["error"]
