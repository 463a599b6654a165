"""The OFREP hot path made cheap for the benchmark: answers worked out once per revision, the
token check skipped for a second after it passed, one query per evaluation, and the same bytes
on the wire as JsonResponse would write."""

from __future__ import annotations

import json

import pytest
from django.http import JsonResponse

from flags import runtime, services
from flags.evaluation import FlagDefinition, context_free_resolution, evaluate
from flags.models import FlagEvaluationCount, Via
from mycelia_ops.bench_views import bench_baseline
from tests.flags.conftest import auth

SINGLE = "/ofrep/v1/evaluate/flags/{}"
BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture(autouse=True)
def _fresh_tokens():
    runtime.tokens.clear()
    yield
    runtime.tokens.clear()


def _post(client, url, body, token):
    return client.post(url, data=json.dumps(body), content_type="application/json", **auth(token))


@pytest.mark.parametrize(
    "definition",
    [
        FlagDefinition(key="f", enabled=False),
        FlagDefinition(key="f", enabled=False, rollout_percentage=30, rules=({"x": 1},)),
        FlagDefinition(key="f", enabled=True),
        FlagDefinition(key="f", enabled=True, rollout_percentage=0),
        FlagDefinition(key="f", enabled=True, rollout_percentage=40),
        FlagDefinition(
            key="f",
            enabled=True,
            rules=({"attribute": "plan", "operator": "in", "values": ["pro"], "variant": True},),
        ),
    ],
)
def test_context_free_resolution__any_definition__agrees_with_evaluate(definition):
    # Given a definition, when its answer is context free, then evaluate gives it every time
    known = context_free_resolution(definition)
    contexts = [{}, {"targetingKey": "u1"}, {"targetingKey": "u2", "plan": "pro"}]
    answers = [evaluate(definition, context) for context in contexts]
    if known is None:
        # Only rules or a partial rollout make the answer depend on the context
        assert definition.enabled and (definition.rules or 0 < definition.rollout_percentage < 100)
    else:
        assert all(a == known for a in answers)


def _seed_mix(manager, production):
    specs = [
        ("a-on", True, 100, []),
        ("b-off", False, 40, []),
        ("c-split", True, 40, []),
        ("d-none", True, 0, []),
        ("e-rules", True, 20, [{"attribute": "plan", "operator": "in", "values": ["pro"]}]),
        ("f-default", True, 100, [{"attribute": "country", "operator": "equals", "value": "x"}]),
    ]
    for key, on, percentage, rules in specs:
        flag = services.flag_create(key=key, by=manager, via=Via.UI)
        services.flag_set_targeting(
            flag=flag,
            environment=production,
            rollout_percentage=percentage,
            rules=rules,
            by=manager,
            via=Via.UI,
        )
        if on:
            services.flag_set_state(
                flag=flag, environment=production, on=True, by=manager, via=Via.UI
            )


@pytest.mark.parametrize(
    "context",
    [{}, {"targetingKey": "u1"}, {"targetingKey": "u7", "plan": "pro"}, {"country": "x"}],
)
def test_bulk__mixed_flags__same_bytes_as_evaluating_each_and_json_response(
    client, production, manager, manager_token, context
):
    _seed_mix(manager, production)
    _revision, definitions = runtime.definitions.definitions(production.pk)
    expected = JsonResponse(
        {
            "flags": [
                evaluate(definitions[k], context, key=k).as_ofrep() for k in sorted(definitions)
            ]
        }
    ).content
    # Twice: the second answer comes from the serialised fragments the first one left
    for _ in range(2):
        response = _post(client, BULK, {"context": context}, manager_token)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/json"
        assert response.content == expected


def test_bulk__every_answer_that_is_not_an_error__counted_once(
    client, production, manager, manager_token
):
    _seed_mix(manager, production)
    _post(client, BULK, {"context": {}}, manager_token)  # c-split and e-rules need a key
    _post(client, BULK, {"context": {"targetingKey": "u1"}}, manager_token)
    runtime.counter.flush()
    counts = dict(FlagEvaluationCount.objects.values_list("flag__key", "count"))
    assert counts == {
        "a-on": 2,
        "b-off": 2,
        "c-split": 1,
        "d-none": 2,
        "e-rules": 1,
        "f-default": 2,
    }


def test_bulk__cached_token_and_definitions__one_query(
    client, production, manager, django_assert_num_queries
):
    # Given an evaluation token that has been checked once and definitions that are loaded
    _seed_mix(manager, production)
    _token, plaintext = services.api_token_create(
        user=manager, name="sdk", scope="evaluation", environment=production
    )
    _post(client, BULK, {}, plaintext)
    # When it evaluates again, then only the revision is read
    with django_assert_num_queries(1):
        assert _post(client, BULK, {}, plaintext).status_code == 200
    with django_assert_num_queries(1):
        assert _post(client, SINGLE.format("a-on"), {}, plaintext).status_code == 200


def test_token_cache__revoked_token__refused_once_the_entry_expires(
    client, flag, manager, manager_token, settings, monkeypatch
):
    settings.FLAGS_TOKEN_CACHE_SECONDS = 1
    clock = [1000.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).status_code == 200
    token = manager.flag_api_tokens.get()
    services.api_token_revoke(token=token)
    # Within the second the cached check still stands
    clock[0] += 0.5
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).status_code == 200
    # After it, the token is checked again and refused
    clock[0] += 0.6
    response = _post(client, SINGLE.format(flag.key), {}, manager_token)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="mycelia-ops"'


def test_token_cache__zero_seconds__every_request_checked(
    client, flag, manager, manager_token, settings
):
    settings.FLAGS_TOKEN_CACHE_SECONDS = 0
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).status_code == 200
    services.api_token_revoke(token=manager.flag_api_tokens.get())
    assert _post(client, SINGLE.format(flag.key), {}, manager_token).status_code == 401


def test_token_cache__refused_tokens__not_kept(client, flag, outsider_token):
    # Given an outsider's token (403) and an unknown one (401), neither is remembered
    assert _post(client, SINGLE.format(flag.key), {}, outsider_token).status_code == 403
    assert _post(client, SINGLE.format(flag.key), {}, "mfo_unknown").status_code == 401
    assert runtime.tokens.get(outsider_token) is None
    assert runtime.tokens.get("mfo_unknown") is None
    assert _post(client, SINGLE.format(flag.key), {}, outsider_token).status_code == 403


def test_token_cache__full__expired_entries_dropped_first(manager_token, manager, monkeypatch):
    token = manager.flag_api_tokens.get()
    clock = [0.0]
    monkeypatch.setattr(runtime.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(runtime.TokenCache, "MAX_ENTRIES", 3)
    cache = runtime.TokenCache()
    for name in ("one", "two", "three"):
        cache.put(name, token)
    clock[0] = 5.0
    cache.put("four", token)
    assert [cache.get(n) for n in ("one", "two", "three", "four")] == [None, None, None, token]


def test_bulk__flag_changed__next_request_sees_it(client, production, manager, manager_token):
    _seed_mix(manager, production)
    before = _post(client, BULK, {}, manager_token).json()["flags"][0]
    assert (before["key"], before["value"]) == ("a-on", True)
    services.flag_rollback(flag_key="a-on", environment_key="production", by=manager, reason="x")
    after = _post(client, BULK, {}, manager_token).json()["flags"][0]
    assert (after["value"], after["reason"]) == (False, "DISABLED")


def test_bench_baseline__post_or_get__ok_and_other_methods_refused(rf):
    assert json.loads(bench_baseline(rf.post("/")).content) == {"ok": True}
    assert bench_baseline(rf.get("/")).status_code == 200
    assert bench_baseline(rf.delete("/")).status_code == 405


def test_malformed_stored_rule__single_500_general_logged_and_bulk_entry_general__not_counted(
    client, production, manager, manager_token, caplog
):
    from flags.models import FlagState

    flag = services.flag_create(key="broken", by=manager, via=Via.UI)
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)
    # A rule no form would accept, written past the services
    FlagState.objects.filter(flag=flag).update(rules=[{"operator": "in"}])
    runtime.definitions.clear()

    single = _post(client, SINGLE.format("broken"), {"context": {}}, manager_token)
    bulk = _post(client, BULK, {"context": {}}, manager_token)

    # The single answer is OFREP's GENERAL error (500 as the spec has it), logged for people
    assert single.status_code == 500
    assert single.json() == {
        "key": "broken",
        "errorCode": "GENERAL",
        "errorDetails": "Evaluation failed.",
    }
    assert any(
        r.name == "django.request" and "/ofrep/v1/evaluate/flags/broken" in r.getMessage()
        for r in caplog.records
    )
    assert bulk.status_code == 200
    assert bulk.json()["flags"] == [
        {"key": "broken", "errorCode": "GENERAL", "errorDetails": "Evaluation failed."}
    ]
    runtime.counter.flush()
    assert not FlagEvaluationCount.objects.exists()
