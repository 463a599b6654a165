"""Targeting rules nested 20,000 deep are refused where they are made (400 naming the
problem), and a deep rule that did get stored is evaluated without a failure."""

from __future__ import annotations

import json

from django.urls import reverse

from flags import runtime, services
from flags.models import FlagEvent, FlagState, Via
from tests.flags.conftest import auth


def test_targeting_form__rules_20000_deep__400_naming_the_depth(manager_client, flag):
    deep = '[{"attribute": "plan", "operator": "in", "values": ' + "[" * 20_000
    deep += "]" * 20_000 + "}]"
    response = manager_client.post(
        reverse("flags:targeting", args=[flag.key, "staging"]),
        {"staging-rollout_percentage": "50", "staging-rules": deep},
    )
    assert response.status_code == 400
    assert "nests deeper than 8 levels" in response.content.decode()
    assert not FlagEvent.objects.filter(flag=flag, kind="targeting").exists()


def test_targeting_service__deep_value__refused_as_not_a_scalar(flag, production, manager):
    value: list = []
    for _ in range(20_000):
        value = [value]
    try:
        services.flag_set_targeting(
            flag=flag,
            environment=production,
            rollout_percentage=100,
            rules=[{"attribute": "plan", "operator": "equals", "value": value}],
            by=manager,
            via=Via.API,
        )
    except services.InvalidFlagInput as exc:
        assert "scalar" in str(exc)
    else:  # pragma: no cover - the assertion below says what went wrong
        raise AssertionError("a 20,000-deep rule value was accepted")


def test_ofrep__deep_rule_stored_past_the_services__evaluated_without_failure(
    client, flag, production, manager, manager_token
):
    # Given a rule value nested as deep as the database will store, written past the services
    value: list = []
    for _ in range(500):
        value = [value]
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)
    FlagState.objects.filter(flag=flag, environment=production).update(
        rules=[{"attribute": "plan", "operator": "equals", "value": value, "variant": True}]
    )
    runtime.definitions.clear()
    # When contexts with and without the attribute are evaluated, then no answer is an error
    for context in ({}, {"plan": "pro"}, {"plan": [[[[]]]]}):
        body = json.dumps({"context": context})
        single = client.post("/ofrep/v1/evaluate/flags/new-checkout", data=body,
                             content_type="application/json", **auth(manager_token))  # fmt: skip
        bulk = client.post("/ofrep/v1/evaluate/flags", data=body,
                           content_type="application/json", **auth(manager_token))  # fmt: skip
        assert single.status_code == 200 and single.json()["value"] is True
        assert bulk.status_code == 200 and "errorCode" not in bulk.json()["flags"][0]
