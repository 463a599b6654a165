"""The monitoring phase: window, samples against the demo Mycelia, baseline, guard, chart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import flag_is_on, set_fault
from upgrades import services
from upgrades.models import (
    EventKind,
    MonitoringSample,
    MonitoringWindow,
    RunStatus,
    UpgradeStatus,
)


def _deployed_and_monitoring(upgrade, manager):
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="test"
    )
    deploy = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=deploy.pk)
    deploy.refresh_from_db()
    assert deploy.status == RunStatus.PASSED, deploy.reason
    return services.upgrade_transition(upgrade=upgrade, transition="begin_monitoring", by=manager)


def _sample_now(upgrade):
    MonitoringWindow.objects.filter(upgrade=upgrade).update(next_sample_at=timezone.now())
    return services.monitoring_sample_take(upgrade_id=upgrade.pk)


def test_flag_upgrade__deploy__turns_the_flag_on(flag_upgrade, manager):
    _deployed_and_monitoring(flag_upgrade, manager)
    assert flag_is_on("new-checkout", "demo-staging")


def test_begin_monitoring__opens_a_window_with_the_configured_length(flag_upgrade, manager):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    window = upgrade.monitoring
    assert window.is_open
    assert window.ends_at - window.started_at == timedelta(hours=24)
    assert upgrade.events.filter(kind=EventKind.MONITORING).exists()


def test_sample__healthy_target__passes_with_figures(flag_upgrade, manager):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    sample = _sample_now(upgrade)
    assert sample.passed and sample.health_status_code == 200
    assert sample.error_rate == pytest.approx(0.002) and sample.slo_ok is True


def test_sample__not_due__is_not_taken_twice(flag_upgrade, manager):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    assert _sample_now(upgrade) is not None
    assert services.monitoring_sample_take(upgrade_id=upgrade.pk) is None
    assert MonitoringSample.objects.filter(upgrade=upgrade).count() == 1


def test_guard__three_failures_in_a_row__rolls_the_flag_back_and_records_why(
    flag_upgrade, manager, demo_mycelia
):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    set_fault(demo_mycelia, "error_rate_high")
    for _ in range(2):
        assert not _sample_now(upgrade).passed
        upgrade.refresh_from_db()
        assert upgrade.status == UpgradeStatus.MONITORING
    _sample_now(upgrade)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert not flag_is_on("new-checkout", "demo-staging")
    tripped = upgrade.events.get(kind=EventKind.GUARD_TRIPPED)
    assert "3 monitoring samples failed in a row" in tripped.message
    assert "error_rate" in tripped.message
    from flags.models import FlagEvent

    assert FlagEvent.objects.filter(flag__key="new-checkout", via="guard").count() == 1


def test_guard__a_passing_sample__resets_the_count(flag_upgrade, manager, demo_mycelia):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    set_fault(demo_mycelia, "health_failing")
    _sample_now(upgrade)
    _sample_now(upgrade)
    set_fault(demo_mycelia, "health_failing", on=False)
    _sample_now(upgrade)
    assert MonitoringWindow.objects.get(upgrade=upgrade).consecutive_failures == 0


def test_guard__version_upgrade__warns_but_does_not_roll_back_by_itself(
    make_upgrade, demo_environment, manager, demo_mycelia
):
    upgrade = _deployed_and_monitoring(
        make_upgrade("minor", environment=demo_environment, version_to="1.5.0"), manager
    )
    set_fault(demo_mycelia, "health_failing")
    for _ in range(3):
        _sample_now(upgrade)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.MONITORING
    assert "Consider rolling back" in upgrade.events.get(kind=EventKind.GUARD_TRIPPED).message


def test_window__extend_and_end_early__are_recorded(flag_upgrade, manager):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    before = upgrade.monitoring.ends_at
    services.monitoring_window_extend(upgrade=upgrade, by=manager, hours=6)
    assert MonitoringWindow.objects.get(upgrade=upgrade).ends_at == before + timedelta(hours=6)
    with pytest.raises(services.InvalidInput):
        services.monitoring_window_end(upgrade=upgrade, by=manager, reason="")
    services.monitoring_window_end(upgrade=upgrade, by=manager, reason="stable")
    assert not MonitoringWindow.objects.get(upgrade=upgrade).is_open
    assert _sample_now(upgrade) is None
    with pytest.raises(services.Conflict):
        services.monitoring_window_extend(upgrade=upgrade, by=manager, hours=1)


def test_window__ran_its_course__is_closed_by_the_scheduler(flag_upgrade, manager):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    MonitoringWindow.objects.filter(upgrade=upgrade).update(ends_at=timezone.now())
    assert services.monitoring_windows_close_expired() == 1
    assert not MonitoringWindow.objects.get(upgrade=upgrade).is_open


def test_chart__samples_baseline_and_markers__drawn_as_svg(flag_upgrade, manager, client):
    services.monitoring_baseline_take(upgrade_id=flag_upgrade.pk)
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    for _ in range(3):
        _sample_now(upgrade)
    client.force_login(manager)
    html = client.get(reverse("upgrades:detail", args=[upgrade.pk])).content.decode()
    assert html.count("<svg") >= 2
    assert 'class="baseline"' in html and 'class="threshold"' in html
    assert "<polyline" in html and 'class="marker' in html
    assert "3 samples, 0 failing" in html


def test_monitoring_views__stakeholder_reads_manager_extends(
    flag_upgrade, manager, stakeholder, client
):
    upgrade = _deployed_and_monitoring(flag_upgrade, manager)
    client.force_login(stakeholder)
    assert client.get(reverse("upgrades:monitoring", args=[upgrade.pk])).status_code == 200
    extend = reverse("upgrades:monitoring_extend", args=[upgrade.pk])
    assert client.post(extend, {"hours": "2"}).status_code == 403
    client.force_login(manager)
    assert client.post(extend, {"hours": "two"}).status_code == 400
    assert client.post(extend, {"hours": "2"}).status_code == 302
