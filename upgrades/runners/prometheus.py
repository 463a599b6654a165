"""Prometheus as a metrics source: instant queries held to a condition, and range queries for
the monitoring chart (httpx, the HTTP API at /api/v1/query and /api/v1/query_range).

Like every runner, nothing here raises for an outside failure: each call returns a small frozen
result whose ``outcome`` says what happened and whose ``reason`` names it for people:

- error: Prometheus could not be reached, refused the credentials, or answered something that
  is not its API (the reason says which);
- failed (for a threshold): the value breaks the condition;
- inconclusive: the query ran but returned no data (an empty vector, NaN or ±Inf), which is
  never taken as a pass;
- timed_out: no whole answer within the timeout.

A query Prometheus rejects (a PromQL syntax error, an unknown function) is an error whose
``error_type`` is "bad_data" and whose reason carries Prometheus's own message.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from upgrades.runners._common import BODY_CAP_BYTES, Outcome, _seconds
from upgrades.runners.evaluate import ConditionError, condition_holds

RANGE_BODY_CAP_BYTES = 4 * 1024 * 1024  # a chart's range answer may be larger than a probe's
MAX_RANGE_POINTS = 11_000  # Prometheus's own limit per series


@dataclass(frozen=True)
class PrometheusAuth:
    """Credentials for Prometheus: a bearer token, or a user name and password (basic auth)."""

    bearer_token: str = ""
    username: str = ""
    password: str = ""

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}

    def basic(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and not self.bearer_token else None


class SecretFileError(ValueError):
    """A secret file that cannot be read; the message names the file, never its content."""


def secret_file_read(path: str) -> str:
    """The secret in ``path`` (trailing newline dropped); '' for no path; SecretFileError."""
    if not path:
        return ""
    try:
        return Path(path).expanduser().read_text().strip()
    except OSError as exc:
        raise SecretFileError(f"cannot read the secret file {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class PrometheusQueryResult:
    outcome: Outcome
    reason: str
    value: float | None = None
    latency_ms: int | None = None
    series: int = 0
    error_type: str = ""


@dataclass(frozen=True)
class PrometheusRangeResult:
    outcome: Outcome
    reason: str
    # One list of (unix seconds, value) per series, NaN and ±Inf left out.
    series: list[list[tuple[float, float]]] = field(default_factory=list)
    latency_ms: int | None = None


def _get(
    base_url: str,
    path: str,
    params: dict[str, Any],
    *,
    timeout_s: float,
    auth: PrometheusAuth | None,
    cap: int,
) -> tuple[dict[str, Any] | None, PrometheusQueryResult | None, int]:
    """One GET against the API: the parsed ``data`` or a result saying what went wrong."""
    auth = auth or PrometheusAuth()
    url = base_url.rstrip("/") + path
    label = f"Prometheus at {base_url}"
    started = time.monotonic()
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False) as client,
            client.stream(
                "GET", url, params=params, headers=auth.headers(), auth=auth.basic()
            ) as response,
        ):
            raw = bytearray()
            for chunk in response.iter_bytes():
                raw.extend(chunk)
                if len(raw) > cap:
                    return None, PrometheusQueryResult("error", f"{label} answered too much"), 0
                if time.monotonic() > started + timeout_s:
                    raise httpx.ReadTimeout("the body took too long")
            status = response.status_code
    except httpx.TimeoutException:
        return (
            None,
            PrometheusQueryResult(
                "timed_out", f"{label} did not answer within {_seconds(timeout_s)}"
            ),
            0,
        )
    except httpx.ConnectError as exc:
        return (
            None,
            PrometheusQueryResult(
                "error", f"{label} could not be reached: {exc or 'connection refused'}"
            ),
            0,
        )
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return (
            None,
            PrometheusQueryResult("error", f"{label} failed: {exc or type(exc).__name__}"),
            0,
        )
    latency_ms = round((time.monotonic() - started) * 1000)
    if status in (401, 403):
        return (
            None,
            PrometheusQueryResult(
                "error", f"{label} refused the credentials ({status})", latency_ms=latency_ms
            ),
            latency_ms,
        )
    try:
        document = json.loads(bytes(raw))
    except ValueError:
        return None, PrometheusQueryResult(
            "error", f"{label} answered {status} with something that is not JSON",
            latency_ms=latency_ms,
        ), latency_ms  # fmt: skip
    if not isinstance(document, dict) or document.get("status") not in ("success", "error"):
        return None, PrometheusQueryResult(
            "error", f"{label} answered {status}, not in the Prometheus API's shape",
            latency_ms=latency_ms,
        ), latency_ms  # fmt: skip
    if document["status"] == "error":
        error_type = str(document.get("errorType") or "error")
        message = str(document.get("error") or "no message")
        return None, PrometheusQueryResult(
            "error", f"Prometheus rejected the query ({error_type}): {message}",
            latency_ms=latency_ms, error_type=error_type,
        ), latency_ms  # fmt: skip
    data = document.get("data")
    if not isinstance(data, dict):
        return (
            None,
            PrometheusQueryResult("error", f"{label} answered without data", latency_ms=latency_ms),
            latency_ms,
        )
    return data, None, latency_ms


def _number(raw: Any) -> float | None:
    """A sample value ("0.002", "NaN", "+Inf") as a finite float, else None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def prometheus_query(
    *,
    base_url: str,
    query: str,
    timeout_s: float,
    auth: PrometheusAuth | None = None,
    at: datetime | None = None,
) -> PrometheusQueryResult:
    """An instant query reduced to one number: a scalar, or a vector of exactly one series.

    passed: a finite value (in ``value``); inconclusive: no data; error: more than one series
    (the query must aggregate, e.g. with sum()), or any of the module's errors.
    """
    params: dict[str, Any] = {"query": query, "timeout": f"{max(timeout_s, 0.1):g}s"}
    if at is not None:
        params["time"] = f"{at.timestamp():.3f}"
    data, failed, latency_ms = _get(
        base_url, "/api/v1/query", params, timeout_s=timeout_s, auth=auth, cap=BODY_CAP_BYTES
    )
    if failed:
        return failed
    assert data is not None
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar" and isinstance(result, list) and len(result) == 2:
        raw_values = [result[1]]
    elif kind == "vector" and isinstance(result, list):
        raw_values = [
            item.get("value", [None, None])[1] for item in result if isinstance(item, dict)
        ]
    else:
        return PrometheusQueryResult(
            "error",
            f"The query returned a {kind or 'strange'} result; it must return one number "
            "(a scalar or a single series, e.g. with sum())",
            latency_ms=latency_ms,
        )
    if not raw_values:
        return PrometheusQueryResult(
            "inconclusive", "No data: the query returned no series", latency_ms=latency_ms
        )
    if len(raw_values) > 1:
        return PrometheusQueryResult(
            "error",
            f"The query returned {len(raw_values)} series; it must return one "
            "(aggregate with sum(), max() or avg())",
            latency_ms=latency_ms,
            series=len(raw_values),
        )
    value = _number(raw_values[0])
    if value is None:
        return PrometheusQueryResult(
            "inconclusive",
            f"No data: the query returned {raw_values[0]} (nothing to divide by yet?)",
            latency_ms=latency_ms,
            series=1,
        )
    return PrometheusQueryResult(
        "passed", f"The query returned {value:.6g}", value=value, latency_ms=latency_ms, series=1
    )


def prometheus_threshold_check(
    *,
    base_url: str,
    query: str,
    op: str,
    limit: float,
    name: str,
    timeout_s: float,
    auth: PrometheusAuth | None = None,
) -> PrometheusQueryResult:
    """An instant query held to ``op limit``: passed, failed naming the breach, inconclusive on
    no data, or an error naming the problem."""
    result = prometheus_query(base_url=base_url, query=query, timeout_s=timeout_s, auth=auth)
    if result.outcome != "passed":
        return PrometheusQueryResult(
            result.outcome, f"{name}: {result.reason}", result.value, result.latency_ms,
            result.series, result.error_type,
        )  # fmt: skip
    try:
        held = condition_holds(result.value, {"op": op, "value": limit})
    except ConditionError as exc:
        return PrometheusQueryResult("error", f"Cannot judge {name}: {exc}", result.value)
    return PrometheusQueryResult(
        "passed" if held else "failed",
        f"{name} is {result.value:.6g} in Prometheus, wanted {op} {limit:g}",
        result.value,
        result.latency_ms,
        1,
    )


def prometheus_range(
    *,
    base_url: str,
    query: str,
    start: datetime,
    end: datetime,
    timeout_s: float,
    auth: PrometheusAuth | None = None,
    points: int = 240,
) -> PrometheusRangeResult:
    """A range query from ``start`` to ``end`` in about ``points`` steps (a matrix). The steps
    are counted back from ``end`` (in whole milliseconds, as Prometheus counts), so the last
    point is the value at ``end``, not up to a step before it."""
    span = max((end - start).total_seconds(), 1.0)
    step_ms = max(round(span * 1000 / max(min(points, MAX_RANGE_POINTS), 1)), 1000)
    end_ms = round(end.timestamp() * 1000)
    start_ms = end_ms - int(span * 1000 // step_ms) * step_ms
    params = {
        "query": query,
        "start": f"{start_ms / 1000:.3f}",
        "end": f"{end_ms / 1000:.3f}",
        "step": f"{step_ms / 1000:.3f}",
        "timeout": f"{max(timeout_s, 0.1):g}s",
    }
    data, failed, latency_ms = _get(
        base_url, "/api/v1/query_range", params, timeout_s=timeout_s, auth=auth,
        cap=RANGE_BODY_CAP_BYTES,
    )  # fmt: skip
    if failed:
        return PrometheusRangeResult(failed.outcome, failed.reason, latency_ms=failed.latency_ms)
    assert data is not None
    if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        return PrometheusRangeResult(
            "error", "The range query did not return a matrix", latency_ms=latency_ms
        )
    series: list[list[tuple[float, float]]] = []
    for item in data["result"]:
        points_of: list[tuple[float, float]] = []
        for pair in item.get("values", []) if isinstance(item, dict) else []:
            value = _number(pair[1]) if isinstance(pair, list) and len(pair) == 2 else None
            if value is not None:
                points_of.append((float(pair[0]), value))
        if points_of:
            series.append(points_of)
    if not series:
        return PrometheusRangeResult("inconclusive", "No data in the range", latency_ms=latency_ms)
    return PrometheusRangeResult(
        "passed", f"{len(series)} series over {span:.0f} s", series, latency_ms
    )


@dataclass(frozen=True)
class PrometheusSloEvaluation:
    outcome: Outcome
    reason: str
    figures: dict[str, float | None] = field(default_factory=dict)
    breaches: list[dict[str, Any]] = field(default_factory=list)
    no_data: list[str] = field(default_factory=list)


def prometheus_slo_evaluate(
    *,
    base_url: str,
    thresholds: list[tuple[str, str, float, str]],
    timeout_s: float,
    auth: PrometheusAuth | None = None,
) -> PrometheusSloEvaluation:
    """Hold each ``(metric, op, limit, query)`` to its condition, one instant query each.

    failed when any figure breaks its threshold (a breach is certain whatever the others say);
    else error when a query could not be run (the reasons name it); else inconclusive when a
    query returned no data; passed only when every query returned a figure within its limit.
    """
    if not base_url:
        return PrometheusSloEvaluation(
            "error", "SLO thresholds have PromQL queries but the environment has no Prometheus URL"
        )
    results = [
        (metric, op, limit, prometheus_threshold_check(
            base_url=base_url, query=query, op=op, limit=limit, name=metric,
            timeout_s=timeout_s, auth=auth,
        ))
        for metric, op, limit, query in thresholds
    ]  # fmt: skip
    figures = {metric: result.value for metric, _, _, result in results}
    breaches = [
        {"metric": metric, "op": op, "limit": limit, "value": result.value, "source": "prometheus"}
        for metric, op, limit, result in results
        if result.outcome == "failed"
    ]
    no_data = [metric for metric, _, _, result in results if result.outcome == "inconclusive"]
    outcomes = {result.outcome for *_, result in results}
    if "failed" in outcomes:
        outcome: Outcome = "failed"
    elif "timed_out" in outcomes:
        outcome = "timed_out"
    elif "error" in outcomes:
        outcome = "error"
    elif "inconclusive" in outcomes:
        outcome = "inconclusive"
    else:
        outcome = "passed"
    if outcome == "passed":
        reason = f"Within SLO on {len(results)} Prometheus threshold(s): " + "; ".join(
            result.reason for *_, result in results
        )
    else:
        reason = "; ".join(result.reason for *_, result in results if result.outcome != "passed")
        if outcome == "failed":
            reason = f"Out of SLO: {reason}"
    return PrometheusSloEvaluation(outcome, reason, figures, breaches, no_data)
