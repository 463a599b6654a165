"""Pure evaluation of one flag definition for one context, following OFREP's reasons and
error codes. No database access here: callers hand in plain definitions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

OPERATORS = ("equals", "in", "not_in")
BUCKETS = 10_000  # a percentage point is 100 buckets: rollouts move in steps of 0.01%


class Reason:
    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    DEFAULT = "DEFAULT"


class ErrorCode:
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    PARSE_ERROR = "PARSE_ERROR"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    GENERAL = "GENERAL"


# HTTP status per error code for the single-flag endpoint, as the OFREP OpenAPI spec gives it.
ERROR_STATUS = {
    ErrorCode.FLAG_NOT_FOUND: 404,
    ErrorCode.TARGETING_KEY_MISSING: 400,
    ErrorCode.PARSE_ERROR: 400,
    ErrorCode.INVALID_CONTEXT: 400,
    ErrorCode.GENERAL: 500,
}


@dataclass(frozen=True)
class FlagDefinition:
    key: str
    enabled: bool
    rollout_percentage: int = 100
    rules: tuple[dict[str, Any], ...] = ()
    flag_id: int | None = None
    environment_id: int | None = None


@dataclass(frozen=True)
class Resolution:
    key: str
    value: bool | None = None
    reason: str | None = None
    error_code: str | None = None
    error_details: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_error(self) -> bool:
        return self.error_code is not None

    @property
    def variant(self) -> str | None:
        return None if self.value is None else ("on" if self.value else "off")

    def as_ofrep(self) -> dict[str, Any]:
        if self.is_error:
            return {
                "key": self.key,
                "errorCode": self.error_code,
                "errorDetails": self.error_details,
            }
        return {
            "key": self.key,
            "value": self.value,
            "reason": self.reason,
            "variant": self.variant,
            "metadata": self.metadata,
        }


class RuleError(ValueError):
    pass


def rules_validate(rules: Any) -> list[dict[str, Any]]:
    """Check stored/edited rules and return them in canonical form; RuleError names the fault."""
    if not isinstance(rules, list):
        raise RuleError("Rules must be a JSON list.")
    clean: list[dict[str, Any]] = []
    for number, rule in enumerate(rules, start=1):
        where = f"Rule {number}"
        if not isinstance(rule, dict):
            raise RuleError(f"{where} must be an object.")
        unknown = set(rule) - {"attribute", "operator", "value", "values", "variant"}
        if unknown:
            raise RuleError(f"{where} has unknown fields: {', '.join(sorted(unknown))}.")
        attribute = rule.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise RuleError(f"{where} needs an 'attribute' name.")
        operator = rule.get("operator")
        if operator not in OPERATORS:
            raise RuleError(f"{where}: operator must be one of {', '.join(OPERATORS)}.")
        variant = rule.get("variant", True)
        if not isinstance(variant, bool):
            raise RuleError(f"{where}: 'variant' must be true or false.")
        if operator == "equals":
            if "value" not in rule or not _is_scalar(rule["value"]):
                raise RuleError(f"{where}: 'equals' needs a scalar 'value'.")
            clean.append(
                {"attribute": attribute, "operator": operator, "value": rule["value"]}
                | {"variant": variant}
            )
        else:
            values = rule.get("values")
            if not isinstance(values, list) or not all(_is_scalar(v) for v in values):
                raise RuleError(f"{where}: '{operator}' needs a list of scalar 'values'.")
            clean.append(
                {"attribute": attribute, "operator": operator, "values": values, "variant": variant}
            )
    return clean


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def bucket(flag_key: str, targeting_key: str) -> int:
    """Sticky bucket 0..9999 for this flag and this key: the same pair always lands the same."""
    digest = hashlib.sha256(f"{flag_key}\x00{targeting_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def in_rollout(flag_key: str, targeting_key: str, percentage: int) -> bool:
    # A key is in when its bucket is below the threshold, so raising the percentage only adds.
    return bucket(flag_key, targeting_key) < percentage * (BUCKETS // 100)


def _rule_matches(rule: dict[str, Any], context: dict[str, Any]) -> bool:
    attribute = rule["attribute"]
    present = attribute in context
    actual = context.get(attribute)
    if rule["operator"] == "equals":
        return present and actual == rule["value"]
    if rule["operator"] == "in":
        return present and actual in rule["values"]
    # not_in: an absent attribute is not in the list.
    return not present or actual not in rule["values"]


def context_validate(context: Any) -> str | None:
    """None when usable, else the reason it is not (INVALID_CONTEXT)."""
    if not isinstance(context, dict):
        return "'context' must be a JSON object."
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        return "'targetingKey' must be a string."
    return None


# What evaluation decides for a known flag and a valid context, before it is dressed as a
# Resolution. A flag has only these few outcomes, so callers that serve many contexts can
# remember each outcome's serialised answer instead of building it per request.
Outcome = tuple[str, int]
DISABLED: Outcome = ("disabled", 0)
FALLTHROUGH_ON: Outcome = ("on", 0)  # no rule matched; rolled out to everyone
FALLTHROUGH_OFF: Outcome = ("off", 0)  # no rule matched; rolled out to no one
SPLIT_IN: Outcome = ("split", 1)
SPLIT_OUT: Outcome = ("split", 0)
KEY_MISSING: Outcome = ("key-missing", 0)  # a partial rollout without a targetingKey


def rule_matched(index: int) -> Outcome:
    return ("rule", index)


def decide(definition: FlagDefinition, context: dict[str, Any]) -> Outcome:
    """The outcome for a known flag and a context that context_validate accepted."""
    if not definition.enabled:
        return DISABLED
    for index, rule in enumerate(definition.rules):
        if _rule_matches(rule, context):
            return rule_matched(index)
    percentage = definition.rollout_percentage
    if percentage >= 100:
        return FALLTHROUGH_ON
    if percentage <= 0:
        return FALLTHROUGH_OFF
    targeting_key = context.get("targetingKey")
    if not targeting_key:
        return KEY_MISSING
    return SPLIT_IN if in_rollout(definition.key, targeting_key, percentage) else SPLIT_OUT


def context_free_outcome(definition: FlagDefinition) -> Outcome | None:
    """The outcome `decide` gives this definition for every valid context, or None when it
    depends on the context (targeting rules, or a rollout strictly between 0 and 100%)."""
    if not definition.enabled:
        return DISABLED
    if definition.rules or 0 < definition.rollout_percentage < 100:
        return None
    return FALLTHROUGH_ON if definition.rollout_percentage >= 100 else FALLTHROUGH_OFF


def resolution_of(definition: FlagDefinition, outcome: Outcome) -> Resolution:
    key = definition.key
    kind, detail = outcome
    if kind == "disabled":
        return Resolution(key, value=False, reason=Reason.DISABLED)
    if kind == "rule":
        rule = definition.rules[detail]
        return Resolution(
            key,
            value=bool(rule.get("variant", True)),
            reason=Reason.TARGETING_MATCH,
            metadata={"rule": detail},
        )
    if kind == "on":
        return Resolution(
            key, value=True, reason=Reason.DEFAULT if definition.rules else Reason.STATIC
        )
    if kind == "off":
        return Resolution(key, value=False, reason=Reason.DEFAULT)
    if kind == "split":
        return Resolution(key, value=bool(detail), reason=Reason.SPLIT)
    return Resolution(
        key,
        error_code=ErrorCode.TARGETING_KEY_MISSING,
        error_details=(
            f"Flag '{key}' is rolled out to {definition.rollout_percentage}%: "
            "send a 'targetingKey'."
        ),
    )


def evaluation_failed(key: str) -> Resolution:
    """The answer when a stored definition cannot be evaluated (GENERAL)."""
    return Resolution(key, error_code=ErrorCode.GENERAL, error_details="Evaluation failed.")


def context_free_resolution(definition: FlagDefinition) -> Resolution | None:
    """The resolution `evaluate` gives this definition for every valid context, or None."""
    outcome = context_free_outcome(definition)
    return None if outcome is None else resolution_of(definition, outcome)


def evaluate(definition: FlagDefinition | None, context: Any, *, key: str = "") -> Resolution:
    key = definition.key if definition else key
    if definition is None:
        return Resolution(
            key, error_code=ErrorCode.FLAG_NOT_FOUND, error_details=f"Flag '{key}' was not found."
        )
    problem = context_validate(context)
    if problem:
        return Resolution(key, error_code=ErrorCode.INVALID_CONTEXT, error_details=problem)
    return resolution_of(definition, decide(definition, context))
