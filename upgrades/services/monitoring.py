"""The playbook's monitoring after deployment: a window in which the scheduler samples health
and SLO figures, a pre-upgrade baseline to compare against, and the guard of flag upgrades.

Sampling talks to the environment outside any transaction; the window row is claimed with a
conditional update first, so two schedulers (or a retried task) never take the same sample.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from flags import services as flag_services
from upgrades import runners, selectors
from upgrades.models import (
    Action,
    EventKind,
    MonitoringSample,
    MonitoringWindow,
    RollbackState,
    SamplePhase,
    Transition,
    Upgrade,
    UpgradeEvent,
    UpgradeStatus,
    UpgradeType,
    lifecycle,
)
from upgrades.runners import prometheus
from upgrades.services.checklist import Conflict, InvalidInput, status_move

logger = logging.getLogger(__name__)


def _event(upgrade_id: int, *, by: Any, kind: str, message: str, from_value="", to_value=""):
    UpgradeEvent.objects.create(
        upgrade_id=upgrade_id,
        actor=by,
        kind=kind,
        message=message,
        from_value=from_value,
        to_value=to_value,
    )


def monitoring_window_open(
    *,
    upgrade: Upgrade,
    by: Any,
    hours: float | None = None,
    interval_seconds: int | None = None,
    failure_limit: int | None = None,
) -> MonitoringWindow:
    """Open (or reopen) the upgrade's monitoring window; the scheduler samples from now on."""
    hours = hours if hours is not None else settings.MYCELIA_MONITORING_HOURS
    interval = interval_seconds or settings.MYCELIA_MONITORING_INTERVAL_SECONDS
    limit = failure_limit or settings.MYCELIA_GUARD_FAILURE_LIMIT
    now = timezone.now()
    window, _ = MonitoringWindow.objects.update_or_create(
        upgrade=upgrade,
        defaults={
            "started_at": now,
            "ends_at": now + timedelta(hours=hours),
            "interval_seconds": interval,
            "failure_limit": limit,
            "consecutive_failures": 0,
            "next_sample_at": now,
            "ended_at": None,
            "ended_reason": "",
        },
    )
    _event(
        upgrade.pk,
        by=by,
        kind=EventKind.MONITORING,
        message=f"Monitoring window opened for {hours:g} h: health and SLO sampled every "
        f"{interval} s; {limit} failures in a row trip the guard.",
    )
    return window


def monitoring_window_extend(*, upgrade: Upgrade, by: Any, hours: float) -> MonitoringWindow:
    if hours <= 0 or hours > 24 * 28:
        raise InvalidInput("Extend by between a few minutes and four weeks.", field="hours")
    with transaction.atomic():
        window = _open_window_locked(upgrade)
        previous = window.ends_at
        window.ends_at = previous + timedelta(hours=hours)
        window.save(update_fields=["ends_at"])
        _event(
            upgrade.pk, by=by, kind=EventKind.MONITORING,
            message=f"Monitoring window extended by {hours:g} h.",
            from_value=f"{previous:%Y-%m-%d %H:%M}", to_value=f"{window.ends_at:%Y-%m-%d %H:%M}",
        )  # fmt: skip
    return window


def monitoring_window_end(*, upgrade: Upgrade, by: Any, reason: str) -> MonitoringWindow:
    if not reason.strip():
        raise InvalidInput("Say why the monitoring ends early.", field="reason")
    with transaction.atomic():
        window = _open_window_locked(upgrade)
        window.ended_at = timezone.now()
        window.ended_reason = reason.strip()[:300]
        window.save(update_fields=["ended_at", "ended_reason"])
        _event(
            upgrade.pk, by=by, kind=EventKind.MONITORING,
            message=f"Monitoring window ended early: {reason.strip()}",
        )  # fmt: skip
    return window


def _open_window_locked(upgrade: Upgrade) -> MonitoringWindow:
    window = MonitoringWindow.objects.select_for_update().filter(upgrade=upgrade).first()
    if window is None or not window.is_open:
        raise Conflict("This upgrade has no open monitoring window.")
    return window


# --- sampling ----------------------------------------------------------------------------------


def _measure(upgrade: Upgrade) -> dict[str, Any]:
    """One look at the environment: /health, then /ops/status.json held to the SLO thresholds,
    and Prometheus for the thresholds that have a PromQL query."""
    environment = upgrade.environment
    timeout = environment.request_timeout_seconds
    health = runners.http_probe(url=environment.health_url, timeout_s=timeout)
    sample: dict[str, Any] = {
        "healthy": health.outcome == "passed",
        "health_status_code": health.status_code,
        "health_latency_ms": health.latency_ms,
        "slo_ok": None,
    }
    reasons = [health.reason]
    status = runners.http_probe(url=environment.status_url, timeout_s=timeout)
    figures: dict[str, Any] = {}
    if status.outcome == "passed":
        try:
            figures = runners.status_json_evaluate(json.loads(status.body or "")).figures
        except ValueError:
            reasons.append(f"GET {environment.status_path}: the body is not JSON")
    else:
        reasons.append(status.reason)
    overall = figures.get("overall", {})
    sample.update(
        error_rate=overall.get("error_rate"),
        latency_p95_ms=overall.get("latency_p95_ms"),
        availability=overall.get("availability"),
    )
    every = list(environment.slo_thresholds.all())
    thresholds = [(t.metric, t.operator, t.limit) for t in every if not t.query]
    if overall and thresholds:
        slo = runners.slo_evaluate(figures=overall, thresholds=thresholds)
        sample["slo_ok"] = slo.outcome == "passed"
        reasons.append(slo.reason)
    elif thresholds:
        sample["slo_ok"] = False
    queried = [(t.metric, t.operator, t.limit, t.query) for t in every if t.query]
    if queried:
        from_prometheus = _measure_prometheus(environment, queried)
        # Prometheus's figures stand in for the status document's, metric by metric.
        sample.update({m: v for m, v in from_prometheus.figures.items() if m in PROMETHEUS_SAMPLED})
        # No data, or Prometheus not answering, is not a pass: the sample fails and counts
        # towards the guard's limit (like a status document that cannot be read).
        sample["slo_ok"] = sample["slo_ok"] is not False and from_prometheus.outcome == "passed"
        prefix = "" if from_prometheus.outcome in ("passed", "failed") else "inconclusive: "
        reasons.append(prefix + from_prometheus.reason)
    sample["reason"] = "; ".join(r for r in reasons if r)[:500]
    return sample


PROMETHEUS_SAMPLED = ("error_rate", "latency_p95_ms", "availability")


def _measure_prometheus(
    environment: Any, queried: list[tuple[str, str, float, str]]
) -> prometheus.PrometheusSloEvaluation:
    """The SLO thresholds that have a PromQL query, each read with an instant query now."""
    try:
        auth = environment.prometheus_auth()
    except prometheus.SecretFileError as exc:
        return prometheus.PrometheusSloEvaluation("error", f"Prometheus: {exc}")
    return prometheus.prometheus_slo_evaluate(
        base_url=environment.prometheus_url,
        thresholds=queried,
        timeout_s=environment.prometheus_timeout_seconds,
        auth=auth,
    )


def monitoring_baseline_take(*, upgrade_id: int) -> MonitoringSample:
    """The pre-upgrade figures the monitoring chart compares against."""
    upgrade = Upgrade.objects.select_related("environment").get(pk=upgrade_id)
    return MonitoringSample.objects.create(
        upgrade=upgrade, phase=SamplePhase.BASELINE, **_measure(upgrade)
    )


def monitoring_sample_take(*, upgrade_id: int) -> MonitoringSample | None:
    """Take the window's next sample if it is due; trip the guard on too many failures."""
    now = timezone.now()
    window = MonitoringWindow.objects.filter(
        upgrade_id=upgrade_id, ended_at__isnull=True, next_sample_at__lte=now,
        upgrade__status=UpgradeStatus.MONITORING,
    ).first()  # fmt: skip
    if window is None:
        return None
    claimed = MonitoringWindow.objects.filter(
        pk=window.pk, next_sample_at=window.next_sample_at
    ).update(next_sample_at=now + timedelta(seconds=window.interval_seconds))
    if not claimed:
        return None  # another scheduler tick took this one
    upgrade = Upgrade.objects.select_related("environment").get(pk=upgrade_id)
    measured = _measure(upgrade)
    with transaction.atomic():
        sample = MonitoringSample.objects.create(upgrade=upgrade, **measured)
        window = MonitoringWindow.objects.select_for_update().get(pk=window.pk)
        window.consecutive_failures = 0 if sample.passed else window.consecutive_failures + 1
        window.save(update_fields=["consecutive_failures"])
        trip = window.consecutive_failures >= window.failure_limit and not window.guard_tripped_at
        if trip:
            window.guard_tripped_at = timezone.now()
            window.save(update_fields=["guard_tripped_at"])
    if trip:
        _guard_trip(upgrade, window, sample)
    return sample


def _guard_trip(upgrade: Upgrade, window: MonitoringWindow, sample: MonitoringSample) -> None:
    """Trip the guard: for a flag upgrade, the flag's flip, the guard's event, the window's end
    and the rollback happen in one transaction, all or none. When any part fails nothing of it
    stays (the flag stays on) and the failure is recorded in its own transaction, with the
    rollback marked failed so the page offers retry or "resolved by hand"."""
    why = (
        f"{window.consecutive_failures} monitoring samples failed in a row "
        f"(limit {window.failure_limit}); last: {sample.reason}"
    )
    if upgrade.upgrade_type != UpgradeType.FEATURE_FLAG:
        # A version can't be rolled back behind the team's back: say so loudly instead.
        _event(upgrade.pk, by=None, kind=EventKind.GUARD_TRIPPED,
               message=f"Guard: {why}. Consider rolling back.")  # fmt: skip
        return
    try:
        with transaction.atomic():
            locked = Upgrade.objects.select_for_update().get(pk=upgrade.pk)
            # The guard is one more door: it rolls back only what the lifecycle table allows.
            verdict = lifecycle.verdict(Action.ROLL_BACK, selectors.lifecycle_facts(locked))
            if locked.status != UpgradeStatus.MONITORING or not verdict.allowed:
                why_not = verdict.why or (
                    f"The upgrade is {locked.get_status_display().lower()} by now."
                )
                _event(upgrade.pk, by=None, kind=EventKind.GUARD_TRIPPED,
                       message=f"Guard: {why}. {why_not} The flag was left as it is.")  # fmt: skip
                return
            flag_services.flag_switch_by_key(
                flag_key=upgrade.flag_key, environment_key=upgrade.environment.slug, on=False,
                by=None, reason=f"Automatic guard of upgrade #{upgrade.pk}: {why}", via="guard",
                source=(upgrade.get_absolute_url(), upgrade.title),
            )  # fmt: skip
            _event(
                upgrade.pk, by=None, kind=EventKind.GUARD_TRIPPED,
                message=f"Guard turned flag {upgrade.flag_key} off: {why}",
                from_value="on", to_value="off",
            )  # fmt: skip
            previous = locked.rollback_state
            Upgrade.objects.filter(pk=upgrade.pk).update(rollback_state=RollbackState.PASSED)
            _event(upgrade.pk, by=None, kind=EventKind.ROLLBACK, from_value=previous,
                   to_value=RollbackState.PASSED,
                   message=f"The guard rolled flag {upgrade.flag_key} back.")  # fmt: skip
            status_move(
                upgrade=locked, transition=Transition.ROLL_BACK, by=None,
                reason=f"Automatic guard rolled the flag back: {why}",
            )  # fmt: skip
            # The window ends last, so the chart (drawn up to its end) shows the flip, the
            # rollback and the new state among its markers.
            MonitoringWindow.objects.filter(pk=window.pk).update(
                ended_at=timezone.now(), ended_reason="Guard tripped: flag rolled back"
            )
    except Exception as exc:  # noqa: BLE001 - the flags app names the problem; record it
        logger.warning("Guard of upgrade %s could not roll back: %s", upgrade.pk, exc)
        with transaction.atomic():
            _event(upgrade.pk, by=None, kind=EventKind.GUARD_TRIPPED,
                   message=f"Guard could not turn flag {upgrade.flag_key} off: {exc}. {why}")  # fmt: skip
            # Guided failure: the page offers retry or "resolved by hand", not a dead end.
            Upgrade.objects.filter(pk=upgrade.pk).update(rollback_state=RollbackState.FAILED)


def monitoring_due() -> list[int]:
    """Upgrades whose next sample is due, for the scheduler to fan out."""
    return list(
        MonitoringWindow.objects.filter(
            ended_at__isnull=True, next_sample_at__lte=timezone.now(),
            upgrade__status=UpgradeStatus.MONITORING,
        ).values_list("upgrade_id", flat=True)[:200]
    )  # fmt: skip


def monitoring_windows_close_expired() -> int:
    """Windows past their end stop sampling; the timeline says the upgrade can be completed."""
    now = timezone.now()
    expired = list(
        MonitoringWindow.objects.filter(ended_at__isnull=True, ends_at__lte=now).values_list(
            "pk", "upgrade_id"
        )
    )
    closed = 0
    for window_id, upgrade_id in expired:
        with transaction.atomic():
            if MonitoringWindow.objects.filter(pk=window_id, ended_at__isnull=True).update(
                ended_at=now, ended_reason="Window ran its course"
            ):
                closed += 1
                _event(upgrade_id, by=None, kind=EventKind.MONITORING,
                       message="Monitoring window ended: review the figures and complete the "
                       "upgrade.")  # fmt: skip
    return closed
