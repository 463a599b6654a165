"""Bad input as a class: schemathesis generates requests for every flags and OFREP operation of
the generated OpenAPI document (valid ones and ones that break the schema) and sends them
through the WSGI application that serves production, on a database seeded with the demo flags
and on a bare one. No answer may be a 5xx, and every error is JSON in its API's error shape.

Derandomised, so a run is the same run every time; the examples per operation are few enough to
keep the whole file well under a minute."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from flags import runtime, services
from flags.demo import demo_flags_seed
from flags.models import Via
from mycelia_ops.wsgi import application

EXAMPLES = 15  # per operation and mode: 7 operations x 2 modes x 2 databases
FLAG_TAGS = {"flags", "ofrep"}


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
def api_schema(django_connection_kept):
    return schemathesis.openapi.from_wsgi("/api/openapi.json", application)


@pytest.fixture
def demo_flags(environments, manager, production):
    demo_flags_seed(by=manager)
    flag = services.flag_create(key="rules", by=manager, via=Via.UI)
    services.flag_set_targeting(
        flag=flag,
        environment=production,
        rollout_percentage=30,
        rules=[{"attribute": "plan", "operator": "in", "values": ["pro", 1, None]}],
        by=manager,
        via=Via.UI,
    )
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)


def _flag_operations(schema) -> list:
    operations = [result.ok() for result in schema.get_all_operations()]
    chosen = [op for op in operations if FLAG_TAGS & set(op.definition.raw.get("tags", []))]
    assert len(chosen) >= 7, [op.label for op in chosen]
    return chosen


def _error_shape_kept(operation, response) -> None:
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    key = "errorCode" if operation.path.startswith("/ofrep/") else "error"
    assert key in body, f"{operation.label} {response.status_code}: {body}"


def _fuzz(schema, token: str) -> int:
    sent = 0
    for operation in _flag_operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            sent += _fuzz_one(operation, mode, token)
    return sent


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
        _error_shape_kept(operation, response)
        sent += 1

    run()
    return sent


def test_fuzz__demo_database__no_5xx_on_any_flags_or_ofrep_operation(
    api_schema, demo_flags, manager_token, django_connection_kept
):
    assert _fuzz(api_schema, manager_token) >= 7 * 2 * 5


def test_fuzz__bare_database__no_5xx_on_any_flags_or_ofrep_operation(
    api_schema, manager, django_connection_kept
):
    # Given only what the migrations made, and a release manager's token
    token = services.api_token_create(user=manager, name="fuzz", scope="user")[1]
    assert _fuzz(api_schema, token) >= 7 * 2 * 5
