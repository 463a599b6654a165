"""Outside HTTP: probes of /health and /ops/status.json, and webhook hooks (httpx)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from upgrades.runners._common import (
    BODY_CAP_BYTES,
    Outcome,
    _seconds,
)
from upgrades.runners.evaluate import (
    ConditionError,
    condition_holds,
    describe_condition,
    json_path_get,
)

# --- HTTP probes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpProbeResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int | None
    value: Any
    reason: str
    body: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    latency_ms: int
    body: str
    truncated: bool


def _read_capped(response: httpx.Response, cap: int, deadline: float) -> tuple[bytes, bool]:
    """The body, at most ``cap`` bytes; raises httpx.ReadTimeout when the deadline passes."""
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept.extend(chunk[: cap - len(kept)])
        if len(kept) >= cap:
            return bytes(kept), True
        # httpx times each read, not the whole body: a trickling server is stopped here.
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the body took too long")
    return bytes(kept), False


def _request(
    client: httpx.Client | None,
    method: str,
    url: str,
    *,
    label: str,
    timeout_s: float,
    body_cap_bytes: int,
    **kwargs: Any,
) -> _Answer | tuple[Outcome, str]:
    """One request, or the outcome and reason when no whole answer came."""
    started = time.monotonic()
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    try:
        with http.stream(method, url, timeout=timeout_s, **kwargs) as response:
            raw, truncated = _read_capped(response, body_cap_bytes, started + timeout_s)
            encoding = response.encoding or "utf-8"
            status = response.status_code
    except httpx.TimeoutException:
        return "timed_out", f"{label} timed out after {_seconds(timeout_s)}"
    except httpx.ConnectError as exc:
        return "error", f"{label} could not connect: {exc or 'connection refused'}"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return "error", f"{label} failed: {exc or type(exc).__name__}"
    finally:
        if client is None:
            http.close()
    latency_ms = round((time.monotonic() - started) * 1000)
    return _Answer(status, latency_ms, raw.decode(encoding, errors="replace"), truncated)


def _status_ok(status: int, expected: int | Iterable[int] | None) -> bool:
    if expected is None:
        return 200 <= status < 300
    if isinstance(expected, int | str):
        return status == int(expected)
    return status in {int(e) for e in expected}


def _judge_body(
    answer: _Answer,
    label: str,
    json_path: str | None,
    condition: Mapping[str, Any] | None,
    fail_condition: Mapping[str, Any] | None,
) -> tuple[Outcome, str, Any]:
    answered = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    try:
        document = json.loads(answer.body)
    except ValueError:
        cut = " (cut at the size limit)" if answer.truncated else ""
        return "failed", f"{label} answered {answer.status} but the body is not JSON{cut}", None
    try:
        value = json_path_get(document, json_path or "")
    except KeyError as exc:
        return (
            "failed",
            f"{label} answered {answer.status} but the body has no {json_path} (no {exc})",
            None,
        )
    shown = (
        f"{json_path} = {json.dumps(value)}" if json_path else f"the body {json.dumps(value)[:80]}"
    )
    if condition is None:
        return "passed", f"{answered}; {shown}", value
    wanted = f"{answered}; {shown}, wanted {describe_condition(condition)}"
    try:
        if condition_holds(value, condition):
            return "passed", wanted, value
        if fail_condition is not None and not condition_holds(value, fail_condition):
            return (
                "inconclusive",
                f"{answered}; {shown}: not {describe_condition(condition)}, "
                f"yet not {describe_condition(fail_condition)} either",
                value,
            )
    except ConditionError as exc:
        return "error", f"{answered}; cannot judge {shown}: {exc}", value
    return "failed", wanted, value


def http_probe(
    *,
    url: str,
    method: str = "GET",
    timeout_s: float,
    expected_status: int | Iterable[int] | None = None,
    json_path: str | None = None,
    condition: Mapping[str, Any] | None = None,
    fail_condition: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    body_cap_bytes: int = BODY_CAP_BYTES,
) -> HttpProbeResult:
    """Request ``url`` and judge the answer.

    passed: the status is expected (any 2xx by default) and, with a condition, the value at
    ``json_path`` (the whole JSON body without one) meets it. failed: the status is wrong, the
    body is not JSON or lacks the path, or the value misses the condition; with a
    ``fail_condition`` only values meeting it fail, and the ones between are inconclusive.
    timed_out: no whole answer within ``timeout_s``. error: no answer at all (refused, bad URL)
    or a condition that cannot be judged.
    """
    method = method.upper()
    label = f"{method} {urlsplit(url).path or '/'}"
    answer = _request(
        client, method, url, label=label, timeout_s=timeout_s, body_cap_bytes=body_cap_bytes
    )
    if isinstance(answer, tuple):
        return HttpProbeResult(answer[0], None, None, None, answer[1], None)
    answered = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    value = None
    if not _status_ok(answer.status, expected_status):
        wanted = f" (expected {expected_status})" if expected_status is not None else ""
        outcome: Outcome = "failed"
        reason = answered + wanted
    elif json_path is None and condition is None:
        outcome, reason = "passed", answered
    else:
        outcome, reason, value = _judge_body(answer, label, json_path, condition, fail_condition)
    return HttpProbeResult(outcome, answer.status, answer.latency_ms, value, reason, answer.body)


# --- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int | None
    reason: str
    body: str | None


def webhook_post(
    *,
    url: str,
    payload: Mapping[str, Any],
    secret_header_name: str | None = None,
    secret: str | None = None,
    timeout_s: float,
    client: httpx.Client | None = None,
    idempotency_key: str = "",
) -> WebhookResult:
    """POST ``payload`` as JSON; passed on any 2xx. The secret, if both parts are given, goes
    in its header and never into the reason. ``idempotency_key`` (``run-<id>-attempt-<n>``)
    goes in an ``Idempotency-Key`` header, so a deployment system can drop a repeat."""
    headers = {"User-Agent": "mycelia-ops"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if secret_header_name and secret:
        headers[secret_header_name] = secret
    label = f"POST {urlsplit(url).path or '/'}"
    answer = _request(
        client,
        "POST",
        url,
        label=label,
        timeout_s=timeout_s,
        body_cap_bytes=BODY_CAP_BYTES,
        json=dict(payload),
        headers=headers,
    )
    if isinstance(answer, tuple):
        return WebhookResult(answer[0], None, None, answer[1], None)
    reason = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    if 200 <= answer.status < 300:
        return WebhookResult("passed", answer.status, answer.latency_ms, reason, answer.body)
    # The receiver's own words on a failure are usually the most useful part of the reason.
    snippet = " ".join(answer.body.split())[:160]
    reason += f": {snippet}" if snippet else ""
    return WebhookResult("failed", answer.status, answer.latency_ms, reason, answer.body)
