"""OFREP endpoints: single and bulk evaluation, ETag/304, error codes, token scopes, and the
published OpenFeature Python SDK with its OFREP provider against a live server."""

from __future__ import annotations

import json

import pytest

from flags import services
from flags.models import FlagEvaluationCount, Via
from tests.flags.conftest import auth

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"


def _post(client, url, body, token, **headers):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", **auth(token), **headers)


def _turn_on(flag, env, manager, **kwargs):
    services.flag_set_state(flag=flag, environment=env, on=True, by=manager, via=Via.UI, **kwargs)


def test_single__flag_on__static_true(client, flag, production, manager, manager_token):
    _turn_on(flag, production, manager)
    response = _post(
        client, SINGLE.format(flag.key), {"context": {"targetingKey": "u1"}}, manager_token
    )
    assert response.status_code == 200
    assert response.json() == {
        "key": "new-checkout",
        "value": True,
        "reason": "STATIC",
        "variant": "on",
        "metadata": {},
    }


def test_single__flag_off__disabled(client, flag, stakeholder_token):
    body = _post(client, SINGLE.format(flag.key), {"context": {}}, stakeholder_token).json()
    assert (body["value"], body["reason"], body["variant"]) == (False, "DISABLED", "off")


def test_single__change_made__seen_on_next_request(
    client, flag, production, manager, manager_token
):
    # Given an evaluation that filled the process cache
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).json()["value"] is False
    # When the flag is turned on elsewhere, then the next evaluation sees it
    _turn_on(flag, production, manager)
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).json()["value"] is True


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{oops", 400, "PARSE_ERROR"),
        ({"context": "me"}, 400, "INVALID_CONTEXT"),
        ({"context": {"targetingKey": 42}}, 400, "INVALID_CONTEXT"),
        ({"context": {}}, 400, "TARGETING_KEY_MISSING"),
    ],
)
def test_single__bad_request__error_code_and_status(
    client, flag, production, manager, manager_token, body, status, code
):
    _turn_on(flag, production, manager, rollout_percentage=40)
    response = _post(client, SINGLE.format(flag.key), body, manager_token)
    assert response.status_code == status
    assert response.json()["errorCode"] == code and response.json()["key"] == flag.key


def test_single__unknown_or_archived_flag__404_flag_not_found(client, flag, manager, manager_token):
    response = _post(client, SINGLE.format("ghost"), {}, manager_token)
    assert response.status_code == 404 and response.json()["errorCode"] == "FLAG_NOT_FOUND"
    services.flag_archive(flag=flag, by=manager, via=Via.UI)
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).status_code == 404


def test_single__rules_and_rollout__targeting_match_then_split(
    client, flag, production, manager, manager_token
):
    services.flag_set_targeting(
        flag=flag,
        environment=production,
        rollout_percentage=50,
        rules=[{"attribute": "email", "operator": "equals", "value": "qa@example.com"}],
        by=manager,
        via=Via.UI,
    )
    _turn_on(flag, production, manager)
    url = SINGLE.format(flag.key)
    matched = _post(client, url, {"context": {"email": "qa@example.com"}}, manager_token).json()
    assert (matched["value"], matched["reason"]) == (True, "TARGETING_MATCH")
    split = _post(client, url, {"context": {"targetingKey": "user-1"}}, manager_token).json()
    assert split["reason"] == "SPLIT"


def test_ofrep__no_or_bad_token__401(client, flag):
    assert client.post(BULK, data="{}", content_type="application/json").status_code == 401
    response = _post(client, SINGLE.format(flag.key), {}, "mfo_nope")
    assert response.status_code == 401 and response.json()["errorDetails"]


def test_ofrep__outsider_token__403(client, flag, outsider_token):
    assert _post(client, SINGLE.format(flag.key), {}, outsider_token).status_code == 403
    assert _post(client, BULK, {}, outsider_token).status_code == 403


def test_ofrep__evaluation_token__evaluates_in_its_own_environment(
    client, flag, staging_env, production, manager, evaluation_token
):
    _turn_on(flag, production, manager)
    assert _post(client, SINGLE.format(flag.key), {}, evaluation_token).json()["value"] is False
    _turn_on(flag, staging_env, manager)
    assert _post(client, SINGLE.format(flag.key), {}, evaluation_token).json()["value"] is True


def test_bulk__flags__every_live_flag_with_etag(client, flag, production, manager, manager_token):
    services.flag_create(key="a-second", by=manager, via=Via.UI)
    _turn_on(flag, production, manager, rollout_percentage=10)
    response = _post(client, BULK, {"context": {}}, manager_token)
    assert response.status_code == 200 and response["ETag"].startswith('"')
    flags = response.json()["flags"]
    assert flags[0] == {
        "key": "a-second",
        "value": False,
        "reason": "DISABLED",
        "variant": "off",
        "metadata": {},
    }
    # The 10% rollout needs a targeting key: an error item, not a failed request.
    assert flags[1]["key"] == "new-checkout" and flags[1]["errorCode"] == "TARGETING_KEY_MISSING"


def test_bulk__if_none_match__304_until_something_changes(
    client, flag, production, manager, manager_token
):
    context = {"context": {"targetingKey": "u1"}}
    etag = _post(client, BULK, context, manager_token)["ETag"]
    not_modified = _post(client, BULK, context, manager_token, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304 and not_modified.content == b""
    # Another context is another answer.
    other = _post(
        client, BULK, {"context": {"targetingKey": "u2"}}, manager_token, HTTP_IF_NONE_MATCH=etag
    )
    assert other.status_code == 200
    _turn_on(flag, production, manager)
    changed = _post(client, BULK, context, manager_token, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


@pytest.mark.parametrize(
    ("body", "code"), [("nope", "PARSE_ERROR"), ({"context": 1}, "INVALID_CONTEXT")]
)
def test_bulk__bad_body__400_with_error_code(client, flag, manager_token, body, code):
    response = _post(client, BULK, body, manager_token)
    assert response.status_code == 400 and response.json()["errorCode"] == code


def test_bulk__many_flags__bounded_queries(
    client, environments, manager, manager_token, django_assert_max_num_queries
):
    for i in range(30):
        services.flag_create(key=f"flag-{i:02}", by=manager, via=Via.UI)
    _post(client, BULK, {}, manager_token)  # fills the cache and notes the token's use
    # token, its user's groups, the default environment, the revision: no reload, no writes
    with django_assert_max_num_queries(4):
        response = _post(client, BULK, {}, manager_token)
    assert len(response.json()["flags"]) == 30


def test_evaluations__counted_in_memory_then_flushed(
    client, flag, production, manager, manager_token
):
    for _ in range(3):
        _post(client, SINGLE.format(flag.key), {}, manager_token)
    assert not FlagEvaluationCount.objects.exists()  # no write per request
    from flags.tasks import flag_evaluation_counts_flush_task

    assert flag_evaluation_counts_flush_task() == 1
    row = FlagEvaluationCount.objects.get()
    assert (row.flag, row.environment, row.count) == (flag, production, 3)
    _post(client, SINGLE.format(flag.key), {}, manager_token)
    flag_evaluation_counts_flush_task()
    row.refresh_from_db()
    assert row.count == 4


def test_evaluations__buffer_full__flushed_without_task(
    client, environments, manager, manager_token, settings
):
    settings.FLAGS_COUNTS_FLUSH_ENTRIES = 3
    for i in range(3):
        services.flag_create(key=f"f{i}", by=manager, via=Via.UI)
    _post(client, BULK, {}, manager_token)
    assert sorted(FlagEvaluationCount.objects.values_list("flag__key", "count")) == [
        ("f0", 1),
        ("f1", 1),
        ("f2", 1),
    ]


@pytest.mark.django_db(transaction=True)
def test_openfeature_sdk__ofrep_provider_against_live_server__resolves(live_server, manager):
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode

    production = services.flag_environment_ensure(key="production", name="Production")
    flag = services.flag_create(key="sdk-flag", by=manager, via=Via.UI)
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)
    _token, plaintext = services.api_token_create(user=manager, name="sdk", scope="user")

    provider = OFREPProvider(
        live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {plaintext}"}
    )
    api.set_provider(provider, domain="flags-tests")
    try:
        client = api.get_client(domain="flags-tests")
        on = client.get_boolean_details("sdk-flag", False, EvaluationContext(targeting_key="u1"))
        assert (on.value, on.reason, on.variant) == (True, "STATIC", "on")
        missing = client.get_boolean_details("ghost", True)
        assert missing.value is True and missing.error_code == ErrorCode.FLAG_NOT_FOUND
        services.flag_rollback(
            flag_key="sdk-flag", environment_key="production", by=manager, reason="test"
        )
        off = client.get_boolean_details("sdk-flag", True, EvaluationContext(targeting_key="u1"))
        assert (off.value, off.reason) == (False, "DISABLED")
    finally:
        api.clear_providers()
