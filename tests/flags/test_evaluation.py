"""Pure evaluation: rule order, sticky and monotonic rollout, OFREP reasons and errors."""

from __future__ import annotations

import pytest

from flags.evaluation import (
    ErrorCode,
    FlagDefinition,
    Reason,
    RuleError,
    bucket,
    evaluate,
    rules_validate,
)

KEYS = [f"user-{i}" for i in range(2000)]


def _on(percentage: int = 100, rules=()) -> FlagDefinition:
    return FlagDefinition(key="f", enabled=True, rollout_percentage=percentage, rules=tuple(rules))


def test_evaluate__disabled__false_with_reason_disabled():
    result = evaluate(FlagDefinition(key="f", enabled=False), {"targetingKey": "u"})
    assert (result.value, result.reason, result.variant) == (False, Reason.DISABLED, "off")


def test_evaluate__on_without_rules__static_true():
    result = evaluate(_on(), {})
    assert (result.value, result.reason, result.variant) == (True, Reason.STATIC, "on")


def test_evaluate__unknown_flag__flag_not_found():
    result = evaluate(None, {}, key="ghost")
    assert result.error_code == ErrorCode.FLAG_NOT_FOUND and result.key == "ghost"


@pytest.mark.parametrize("context", [[], "x", {"targetingKey": 5}])
def test_evaluate__bad_context__invalid_context(context):
    assert evaluate(_on(), context).error_code == ErrorCode.INVALID_CONTEXT


def test_evaluate__partial_rollout_without_targeting_key__targeting_key_missing():
    assert evaluate(_on(30), {}).error_code == ErrorCode.TARGETING_KEY_MISSING


def test_evaluate__rules__first_matching_rule_wins():
    rules = [
        {"attribute": "country", "operator": "equals", "value": "nl", "variant": False},
        {"attribute": "plan", "operator": "in", "values": ["pro", "team"], "variant": True},
        {"attribute": "country", "operator": "not_in", "values": ["de"], "variant": False},
    ]
    definition = _on(0, rules)
    first = evaluate(definition, {"country": "nl", "plan": "pro"})
    assert (first.value, first.reason, first.metadata) == (
        False,
        Reason.TARGETING_MATCH,
        {"rule": 0},
    )
    second = evaluate(definition, {"country": "be", "plan": "team"})
    assert (second.value, second.metadata) == (True, {"rule": 1})
    third = evaluate(definition, {"country": "fr"})
    assert (third.value, third.metadata) == (False, {"rule": 2})
    # No rule matches: the 0% rollout decides.
    assert evaluate(definition, {"country": "de"}).reason == Reason.DEFAULT


def test_evaluate__rollout__same_key_always_same_answer():
    definition = _on(50)
    first = [evaluate(definition, {"targetingKey": k}).value for k in KEYS[:200]]
    again = [evaluate(definition, {"targetingKey": k}).value for k in KEYS[:200]]
    assert first == again
    assert {evaluate(definition, {"targetingKey": "u"}).reason} == {Reason.SPLIT}


def test_evaluate__rollout_raised__only_adds_keys_and_share_is_close():
    previous: set[str] = set()
    for percentage in (1, 10, 25, 50, 90, 99):
        included = {k for k in KEYS if evaluate(_on(percentage), {"targetingKey": k}).value}
        assert previous <= included
        assert abs(len(included) / len(KEYS) - percentage / 100) < 0.05
        previous = included


def test_bucket__different_flags__independent_buckets():
    same = sum(bucket("a", k) == bucket("b", k) for k in KEYS)
    assert same < 10
    assert all(0 <= bucket("a", k) < 10_000 for k in KEYS)


@pytest.mark.parametrize(
    "rules",
    [
        {"attribute": "x"},
        [{"operator": "equals", "value": 1}],
        [{"attribute": "x", "operator": "in", "values": "nl"}],
        [{"attribute": "x", "operator": "equals", "value": [1]}],
        [{"attribute": "x", "operator": "equals", "value": 1, "variant": "yes"}],
        [{"attribute": "x", "operator": "equals", "value": 1, "colour": "red"}],
    ],
)
def test_rules_validate__malformed__rule_error(rules):
    with pytest.raises(RuleError):
        rules_validate(rules)
