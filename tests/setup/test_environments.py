"""Environments, hooks, SLO thresholds, playbook templates and common issues on the set-up pages:
validation that names the problem (400), write-only secrets, and a history of every change."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from flags.models import FlagEnvironment
from upgrades.models import (
    CommonIssue,
    Environment,
    EnvironmentOperation,
    HookTest,
    PlaybookStep,
    PlaybookTemplate,
    SetupEvent,
    SloThreshold,
)
from upgrades.services import hook_tests, setup

pytestmark = pytest.mark.django_db

ENVIRONMENT = {
    "name": "Staging two", "slug": "staging-two", "kind": "staging",
    "base_url": "http://127.0.0.1:9", "health_path": "/health",
    "status_path": "/ops/status.json", "request_timeout_seconds": "5", "public_status": "",
}  # fmt: skip


def _hook(environment, by, **data) -> EnvironmentOperation:
    data = {"operation": "diagnose", "mode": "command", "argv": ["true"], **data}
    return setup.hook_save(environment=environment, hook=None, by=by, data=data)


# --- a bare install, seen by people who are not administrators --------------------------------


@pytest.mark.parametrize("page", ["upgrades:list", "upgrades:dashboard"])
def test_bare_install__stakeholder__empty_state_names_whom_to_ask(
    client, stakeholder, administrator, page
):
    client.force_login(stakeholder)
    response = client.get(reverse(page))
    html = response.content.decode()
    assert response.status_code == 200
    assert "not set up yet" in html and "erin" in html and "erin@example.com" in html


def test_bare_install__administrator__sent_to_the_set_up_start(admin_client):
    assert admin_client.get(reverse("upgrades:list")).url == reverse("setup:start")


# --- environments ------------------------------------------------------------------------------


def test_environment_create__flag_environment_follows__and_history_written(admin_client):
    response = admin_client.post(reverse("setup:environment_create"), ENVIRONMENT)
    environment = Environment.objects.get(slug="staging-two")
    assert response.status_code == 302
    assert FlagEnvironment.objects.get(key="staging-two").name == "Staging two"
    assert environment.public_status is None and not environment.shown_on_status_page

    # When: it is renamed and shown on the status page
    admin_client.post(reverse("setup:environment", args=[environment.pk]),
                      {**ENVIRONMENT, "name": "Staging 2", "public_status": "yes"})  # fmt: skip

    # Then: the flag environment is renamed by the service, and the history says from -> to
    assert FlagEnvironment.objects.get(key="staging-two").name == "Staging 2"
    changes = set(
        SetupEvent.objects.filter(environment=environment, verb="changed")
        .values_list("field", "from_value", "to_value")
    )  # fmt: skip
    assert ("name", "Staging two", "Staging 2") in changes
    assert ("shown on the status page", "by kind", "yes") in changes
    page = admin_client.get(reverse("setup:environment", args=[environment.pk])).content.decode()
    assert "Staging two → Staging 2" in page


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"slug": "Not A Key"}, "slug", "lower-case"),
        ({"slug": "staging"}, "slug", "Another environment has the key"),
        ({"name": "Staging"}, "name", "Another environment has the name"),
        ({"base_url": "ftp://x"}, "base_url", "http(s) address"),
        ({"health_path": "health"}, "health_path", "starts with a slash"),
        ({"request_timeout_seconds": "0"}, "request_timeout_seconds", "greater than or equal"),
        ({"command_env": "no equals sign"}, "command_env", "NAME=value"),
        ({"kind": "moon"}, "kind", "valid choice"),
    ],
)
def test_environment_create__bad_input__400_naming_the_problem(
    admin_client, staging, change, field, words
):
    response = admin_client.post(reverse("setup:environment_create"), {**ENVIRONMENT, **change})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Environment.objects.filter(slug="staging-two").exists()


def test_environment_key__used_by_an_upgrade__cannot_change(admin_client, make_upgrade, staging):
    make_upgrade("minor", environment=staging)
    data = {**ENVIRONMENT, "name": "Staging", "slug": "renamed"}
    response = admin_client.post(reverse("setup:environment", args=[staging.pk]), data)
    assert response.status_code == 400 and "cannot change" in response.content.decode()
    assert Environment.objects.get(pk=staging.pk).slug == "staging"
    # and it cannot be removed either (409), while one no upgrade used can
    removed = admin_client.post(reverse("setup:environment_delete", args=[staging.pk]), follow=True)
    assert "has upgrades" in removed.content.decode() and Environment.objects.filter(pk=staging.pk)


# --- hooks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"mode": "command", "argv": ""}, "needs a command"),
        ({"mode": "command", "argv": "deploy\n{versoin}"}, "names {versoin}"),
        ({"mode": "command", "argv": "deploy\n{version"}, "unbalanced brace"),
        ({"mode": "webhook", "webhook_url": "not a url"}, "address to POST to"),
        ({"mode": "webhook", "webhook_url": "https://ci.example.com/hook",
          "webhook_secret_header": "X-Token"}, "both the secret"),
        ({"mode": "webhook", "webhook_url": "https://ci.example.com/hook",
          "webhook_secret_header": "Bad Header:", "webhook_secret": "x"}, "header name"),
        ({"mode": "command", "argv": "true", "timeout_seconds": "0"}, "greater than or equal"),
    ],
)  # fmt: skip
def test_hook_create__bad_input__400_naming_the_problem(admin_client, staging, data, words):
    post = {"operation": "deploy", "timeout_seconds": "60", **data}
    response = admin_client.post(reverse("setup:hook_create", args=[staging.pk]), post)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not staging.operations.exists()


def test_hook_create__same_operation_twice__400(admin_client, staging, administrator):
    _hook(staging, administrator)
    response = admin_client.post(reverse("setup:hook_create", args=[staging.pk]),
                                 {"operation": "diagnose", "mode": "command", "argv": "true",
                                  "timeout_seconds": "5"})  # fmt: skip
    assert response.status_code == 400 and "already" in response.content.decode()


def test_hook_secret__write_only__kept_when_blank__cleared_on_request__never_in_history(
    admin_client, staging, administrator
):
    hook = _hook(staging, administrator, operation="deploy", mode="webhook",
                 webhook_url="https://ci.example.com/deploy", webhook_secret_header="X-Token",
                 webhook_secret="hunter2-secret")  # fmt: skip
    url = reverse("setup:hook", args=[hook.pk])
    prefix = f"hook-{hook.pk}-"
    base = {prefix + "operation": "deploy", prefix + "mode": "webhook",
            prefix + "webhook_url": "https://ci.example.com/deploy/v2",
            prefix + "webhook_secret_header": "X-Token", prefix + "timeout_seconds": "30"}  # fmt: skip

    # The page never shows the secret
    page = admin_client.get(reverse("setup:environment", args=[staging.pk])).content.decode()
    assert "hunter2-secret" not in page and "X-Token" in page

    # A change with the secret left blank keeps it (htmx: the hook's card comes back)
    response = admin_client.post(url, base, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and f'id="hook-{hook.pk}"' in response.content.decode()
    assert "<html" not in response.content.decode()
    hook.refresh_from_db()
    assert hook.webhook_secret == "hunter2-secret" and hook.webhook_url.endswith("/v2")

    # A new secret is written; the history says "set", never the value
    admin_client.post(url, {**base, prefix + "webhook_secret": "new-secret-value"})
    hook.refresh_from_db()
    assert hook.webhook_secret == "new-secret-value"
    # Clearing needs the header gone too (both or neither)
    refused = admin_client.post(
        url, {**base, prefix + "clear_secret": "on"}, HTTP_HX_REQUEST="true"
    )
    assert refused.status_code == 400 and "both the secret" in refused.content.decode()
    admin_client.post(url, {**base, prefix + "clear_secret": "on",
                            prefix + "webhook_secret_header": ""})  # fmt: skip
    hook.refresh_from_db()
    assert hook.webhook_secret == ""
    values = " ".join(f"{e.from_value} {e.to_value} {e.label}" for e in SetupEvent.objects.all())
    assert "hunter2" not in values and "new-secret-value" not in values
    assert SetupEvent.objects.filter(field="webhook secret", to_value="set").exists()
    assert SetupEvent.objects.filter(field="webhook secret", to_value="cleared").exists()


def test_hook_argv__one_argument_a_line__never_split_by_a_shell(admin_client, staging):
    admin_client.post(reverse("setup:hook_create", args=[staging.pk]), {
        "operation": "deploy", "mode": "command", "timeout_seconds": "60",
        "argv": "deploy-mycelia\n--version\n{version}\nan argument; with $(spaces)",
    })  # fmt: skip
    hook = staging.operations.get()
    assert hook.argv == ["deploy-mycelia", "--version", "{version}", "an argument; with $(spaces)"]


def test_hook_test__changing_hook_unconfirmed__400__running_one__409(
    admin_client, staging, administrator
):
    deploy = _hook(staging, administrator, operation="deploy")
    unconfirmed = admin_client.post(
        reverse("setup:hook_test", args=[deploy.pk]), HTTP_HX_REQUEST="true"
    )
    assert unconfirmed.status_code == 400 and "changes the target" in unconfirmed.content.decode()
    diagnose = _hook(staging, administrator)
    HookTest.objects.create(hook=diagnose, status="running")
    busy = admin_client.post(reverse("setup:hook_test", args=[diagnose.pk]), HTTP_HX_REQUEST="true")
    assert busy.status_code == 409 and "already under way" in busy.content.decode()
    assert HookTest.objects.count() == 1


def test_hook_test_execute__program_missing__error_saying_so(staging, administrator):
    # One task body, run in the test process: the argument list is checked before anything runs
    hook = _hook(staging, administrator, argv=["no-such-program-here", "{version}"])
    test = HookTest.objects.create(hook=hook)
    assert hook_tests.hook_test_execute(test_id=test.pk) == "error"
    test.refresh_from_db()
    assert "“no-such-program-here” is not found" in test.reason
    # A second delivery of the same message does nothing
    assert hook_tests.hook_test_execute(test_id=test.pk) == "already claimed"


def test_hook_test_execute__command__runs_with_the_dry_run_signal_and_sample_values(
    staging, administrator
):
    probe = "import os, sys; print(os.environ['MYCELIA_DRY_RUN'], sys.argv[1]); sys.exit(3)"
    hook = _hook(staging, administrator, argv=[sys.executable, "-c", probe, "{version}"])
    test = HookTest.objects.create(hook=hook)
    assert hook_tests.hook_test_execute(test_id=test.pk) == "failed"
    test.refresh_from_db()
    assert test.output.strip() == "1 0.0.0-dry-run" and test.measured["exit_code"] == 3


# --- SLO thresholds ----------------------------------------------------------------------------


def test_slo__saved_changed_and_removed__with_history(admin_client, staging):
    url = reverse("setup:slo", args=[staging.pk])
    data = {"error_rate_operator": "<=", "error_rate": "0.01",
            "latency_p95_ms_operator": "<=", "latency_p95_ms": "500",
            "availability_operator": ">=", "availability": ""}  # fmt: skip
    assert admin_client.post(url, data).status_code == 302
    assert set(SloThreshold.objects.values_list("metric", "limit")) == {
        ("error_rate", 0.01), ("latency_p95_ms", 500.0),
    }  # fmt: skip
    admin_client.post(url, {**data, "latency_p95_ms": ""})
    assert not SloThreshold.objects.filter(metric="latency_p95_ms").exists()
    assert SetupEvent.objects.filter(subject="slo", from_value="<= 500", to_value="none").exists()


def test_slo__fraction_out_of_range__400(admin_client, staging):
    response = admin_client.post(reverse("setup:slo", args=[staging.pk]), {
        "error_rate_operator": "<=", "error_rate": "5", "latency_p95_ms_operator": "<=",
        "availability_operator": ">=",
    })  # fmt: skip
    assert response.status_code == 400 and "fraction between 0 and 1" in response.content.decode()
    assert not SloThreshold.objects.exists()


# --- playbook templates and common issues ------------------------------------------------------


def test_template__phase_and_step_added_changed_removed(admin_client, playbook):
    template = PlaybookTemplate.objects.get(upgrade_type="minor", emergency_kind="")
    response = admin_client.post(reverse("setup:phase_create", args=[template.pk]),
                                 {"new-phase-title": "Smoke tests", "new-phase-stage": "post"})  # fmt: skip
    assert response.status_code == 302
    phase = template.phases.get(title="Smoke tests")
    assert phase.order == max(template.phases.values_list("order", flat=True))

    prefix = f"new-step-{phase.pk}-"
    admin_client.post(reverse("setup:step_create", args=[phase.pk]), {
        prefix + "title": "Checkout answers", prefix + "kind": "http_health",
        prefix + "check_config": '{"path": "/checkout", "expected_status": 200}',
        prefix + "required": "on",
    })  # fmt: skip
    step = PlaybookStep.objects.get(phase=phase)
    assert step.check_config == {"path": "/checkout", "expected_status": 200} and step.required

    edit = {f"step-{step.pk}-title": "Checkout answers", f"step-{step.pk}-kind": "command",
            f"step-{step.pk}-operation": "", f"step-{step.pk}-order": "1"}  # fmt: skip
    refused = admin_client.post(reverse("setup:step", args=[step.pk]), edit)
    assert refused.status_code == 400 and "choose it" in refused.content.decode()
    bad_json = admin_client.post(reverse("setup:step", args=[step.pk]),
                                 {**edit, f"step-{step.pk}-kind": "http_health",
                                  f"step-{step.pk}-check_config": "{retries: 3}"})  # fmt: skip
    assert bad_json.status_code == 400 and "Not JSON" in bad_json.content.decode()
    unknown = admin_client.post(reverse("setup:step", args=[step.pk]),
                                {**edit, f"step-{step.pk}-kind": "http_health",
                                 f"step-{step.pk}-check_config": '{"retry": 3}'})  # fmt: skip
    assert (
        unknown.status_code == 400 and "Unknown check setting “retry”" in unknown.content.decode()
    )

    admin_client.post(reverse("setup:step", args=[step.pk]), {"remove": "yes"})
    admin_client.post(reverse("setup:phase", args=[phase.pk]), {"remove": "yes"})
    assert not template.phases.filter(title="Smoke tests").exists()
    verbs = list(SetupEvent.objects.filter(subject__in=["phase", "step"])
                 .order_by("id").values_list("subject", "verb"))  # fmt: skip
    assert verbs == [("phase", "created"), ("step", "created"), ("step", "removed"),
                     ("phase", "removed")]  # fmt: skip
    page = admin_client.get(reverse("setup:template", args=[template.pk])).content.decode()
    assert "Smoke tests" in page  # in the history


def test_common_issue__added_with_validation(admin_client, db):
    url = reverse("setup:common_issues")
    data = {"new-title": "Deploy hangs", "new-issue": "The deploy never finishes",
            "new-solution": "Check the runner\nRoll back", "new-applies_to": "deploy, teleport",
            "new-order": "0"}  # fmt: skip
    refused = admin_client.post(url, data)
    assert (
        refused.status_code == 400 and "“teleport” is not a step kind" in refused.content.decode()
    )
    assert admin_client.post(url, {**data, "new-applies_to": "deploy"}).status_code == 302
    issue = CommonIssue.objects.get(title="Deploy hangs")
    assert issue.applies_to == ["deploy"] and issue.solution_steps == [
        "Check the runner",
        "Roll back",
    ]


def test_setup_pages__query_count_bounded(admin_client, staging, administrator, playbook,
                                          django_assert_max_num_queries):  # fmt: skip
    for operation in ("diagnose", "deploy", "rollback", "db_backup"):
        _hook(staging, administrator, operation=operation)
    for n in range(5):
        User.objects.create_user(f"person{n}")
    with django_assert_max_num_queries(20):
        admin_client.get(reverse("setup:environment", args=[staging.pk]))
    with django_assert_max_num_queries(20):
        admin_client.get(reverse("setup:people"))
