"""Bad input as a class, for the upgrades API: schemathesis generates requests for every
upgrades operation of the generated OpenAPI document (schema-valid ones and schema-breaking
ones) and sends them through the production WSGI application, with a release manager's token.
A second pass aims the generated bodies and queries at upgrades, steps and runs that exist, in
every state, with real action names. No answer may be a 5xx, and every error is
{"error": ...} (as tests/flags/test_api_fuzz.py holds the flags API to).

Derandomised, so a run is the same run every time."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from flags import runtime
from mycelia_ops.wsgi import application
from tests.api.conftest import token_of
from tests.api.test_actions_table import VARIANTS, Build
from upgrades.models import Action, CheckRun, Upgrade

pytestmark = pytest.mark.django_db

EXAMPLES = 12  # per operation and mode
AIMED_EXAMPLES = 25  # per operation, at rows that exist
OPERATIONS = {
    "environments_list", "upgrades_list", "upgrades_create", "upgrades_detail", "upgrades_edit",
    "upgrades_act", "steps_complete", "steps_skip", "steps_reopen", "steps_run", "runs_detail",
    "runs_log", "runs_cancel", "runs_check_target", "runs_resolve",
}  # fmt: skip


@pytest.fixture
def django_connection_kept(db):
    # As Django's test client does: the test's transaction keeps its connection open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    runtime.tokens.clear()
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    runtime.tokens.clear()


@pytest.fixture
def operations(django_connection_kept) -> list:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)
    chosen = [
        op
        for op in (result.ok() for result in schema.get_all_operations())
        if "upgrades" in op.definition.raw.get("tags", [])
    ]
    assert {op.definition.raw["operationId"] for op in chosen} == OPERATIONS
    return chosen


@pytest.fixture
def upgrades_in_every_state(make_upgrade, manager) -> list[Upgrade]:
    build = Build(make_upgrade, manager)
    upgrades = [getattr(build, variant)() for variant in VARIANTS]
    from upgrades import services

    services.check_run_request(
        upgrade=upgrades[0], step=upgrades[0].steps.get(title="Verify system status"), by=manager
    )
    return upgrades


def _checked(operation, response) -> None:
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert "error" in body, f"{operation.label} {response.status_code}: {body}"


def _fuzz_one(operation, mode: GenerationMode, token: str) -> int:
    sent = 0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        nonlocal sent
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=[not_a_server_error])
        _checked(operation, response)
        sent += 1

    run()
    return sent


def _aimed(operation, token: str, upgrades: list[Upgrade]) -> int:
    """Generated bodies and queries, sent to rows that exist (path ids and action names
    replaced by real ones)."""
    steps = {u.pk: list(u.steps.values_list("pk", flat=True)) for u in upgrades}
    runs = list(CheckRun.objects.values_list("pk", flat=True)) or [1]
    sent = 0

    @settings(
        max_examples=AIMED_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        upgrade=st.sampled_from(upgrades),
        step_index=st.integers(min_value=0, max_value=200),
        run_id=st.sampled_from(runs),
        action=st.sampled_from(Action.values),
    )
    def run(case, upgrade, step_index, run_id, action):
        nonlocal sent
        params = dict(case.path_parameters or {})
        if "upgrade_id" in params:
            params["upgrade_id"] = upgrade.pk
        if "step_id" in params:
            params["step_id"] = steps[upgrade.pk][step_index % len(steps[upgrade.pk])]
        if "run_id" in params:
            params["run_id"] = run_id
        if "action" in params:
            params["action"] = action
        case.path_parameters = params
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=[not_a_server_error])
        _checked(operation, response)
        sent += 1

    run()
    return sent


def test_fuzz__every_upgrades_operation__no_5xx(operations, manager, upgrades_in_every_state):
    token = token_of(manager)
    sent = 0
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _fuzz_one(operation, mode, token)
    assert sent >= len(OPERATIONS) * 2 * 5


def test_fuzz__aimed_at_upgrades_in_every_state__no_5xx(
    operations, manager, upgrades_in_every_state
):
    token = token_of(manager)
    aimed = [op for op in operations if "{" in op.path]
    sent = sum(_aimed(op, token, upgrades_in_every_state) for op in aimed)
    assert sent >= len(aimed) * 10


def test_fuzz__every_upgrades_operation_on_a_bare_install__no_5xx(operations, manager):
    # Given a bare install: no playbook seeded, no environment, no upgrade (only the migrations)
    from upgrades.models import Environment, PlaybookTemplate

    assert not Environment.objects.exists() and not PlaybookTemplate.objects.exists()
    token = token_of(manager)
    sent = 0
    for operation in operations:
        sent += _fuzz_one(operation, GenerationMode.POSITIVE, token)
    assert sent >= len(OPERATIONS) * 5
