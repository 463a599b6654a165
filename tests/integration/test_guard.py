"""The guard of a flag upgrade, for real: the scheduler (Celery beat) samples the demo Mycelia
through a worker, and three failures in a row turn the flag off and roll the upgrade back."""

from __future__ import annotations

import pytest

from tests.conftest import flag_is_on, set_fault
from tests.integration.conftest import wait_for
from upgrades import services
from upgrades.models import EventKind, MonitoringSample, UpgradeStatus

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_guard__error_rate_raised_during_monitoring__scheduler_rolls_the_flag_back(
    flag_upgrade, manager, demo_mycelia, worker_factory
):
    # Given a flag upgrade deployed (flag on) and in its monitoring window, sampled every second
    upgrade = services.upgrade_transition(
        upgrade=flag_upgrade, transition="start", by=manager, override_reason="guard test"
    )
    deploy = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=deploy.pk)
    assert flag_is_on("new-checkout", "demo-staging")
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="begin_monitoring", by=manager
    )
    upgrade.monitoring.interval_seconds = 1
    upgrade.monitoring.save()
    fast = {"MYCELIA_MONITORING_TICK_SECONDS": "1"}
    worker_factory(**fast).start()
    worker_factory(beat=True, **fast).start()
    wait_for(lambda: MonitoringSample.objects.filter(upgrade=upgrade).exists(), timeout=30)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.MONITORING

    # When the target's error rate goes up
    set_fault(demo_mycelia, "error_rate_high")

    # Then the scheduler's samples trip the guard: flag off, upgrade rolled back, and why
    wait_for(
        lambda: upgrade.__class__.objects.get(pk=upgrade.pk).status == UpgradeStatus.ROLLED_BACK,
        timeout=60,
    )
    assert not flag_is_on("new-checkout", "demo-staging")
    failing = MonitoringSample.objects.filter(upgrade=upgrade).order_by("-at")[:3]
    assert [s.passed for s in failing] == [False, False, False]
    assert "error_rate" in upgrade.events.get(kind=EventKind.GUARD_TRIPPED).message
