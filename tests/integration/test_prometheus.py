"""SLOs and monitoring windows from a real Prometheus (issue 14): Debian's prometheus scrapes
the demo Mycelia's /metrics every second; its fault switches move the query results, the SLO
check and the monitoring guard read them, and the chart draws Prometheus's range."""

from __future__ import annotations

import pytest

from tests.conftest import close_steps, flag_is_on, set_fault
from tests.integration.conftest import wait_for
from tests.integration.conftest_prometheus import prometheus_server_fixture  # noqa: F401
from upgrades import services
from upgrades.models import (
    CheckRun,
    EventKind,
    MonitoringSample,
    RunStatus,
    SloThreshold,
    StepKind,
    Upgrade,
    UpgradeStatus,
)
from upgrades.runners import prometheus

pytestmark = [pytest.mark.django_db(transaction=True)]

# Short windows: the tests have seconds of history, not minutes.
ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))'
LATENCY_MS = (
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5s]))) * 1000"
)


def _read_from(environment, server, *, error_rate_query: str = ERROR_RATE) -> None:
    """The environment reads error rate (< 1 %) and p95 latency from Prometheus; availability
    stays with the status document."""
    environment.prometheus_url = server.url
    environment.prometheus_timeout_seconds = 2.0
    environment.save()
    SloThreshold.objects.filter(environment=environment, metric="error_rate").update(
        operator="<", limit=0.01, query=error_rate_query
    )
    SloThreshold.objects.filter(environment=environment, metric="latency_p95_ms").update(
        query=LATENCY_MS
    )


def _slo_check(make_upgrade, environment, manager) -> CheckRun:
    upgrade = make_upgrade("minor", environment=environment)
    step = upgrade.steps.filter(kind=StepKind.SLO).order_by("phase__order", "order").first()
    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_slo_check__healthy_demo__passes_with_the_figures_from_prometheus(
    prometheus_server, demo_environment, make_upgrade, manager
):
    # Given Prometheus has scraped the healthy demo long enough for rate()
    _read_from(demo_environment, prometheus_server)
    prometheus_server.value_when(ERROR_RATE, lambda v: v < 0.01)

    # When the SLO step is checked
    run = _slo_check(make_upgrade, demo_environment, manager)

    # Then it passed, with the measured values stored on the run
    assert run.status == RunStatus.PASSED, run.reason
    assert 0 <= run.measured["error_rate"] < 0.01
    assert 0 < run.measured["latency_p95_ms"] < 500
    assert run.measured["availability"] >= 0.999  # from the status document, beside them
    assert "in Prometheus" in run.reason


def test_slo_check__error_rate_high__fails_naming_the_breach(
    prometheus_server, demo_mycelia, demo_environment, make_upgrade, manager
):
    _read_from(demo_environment, prometheus_server)
    prometheus_server.value_when(ERROR_RATE, lambda v: v < 0.01)

    # When the demo's error rate goes up and Prometheus has seen it
    set_fault(demo_mycelia, "error_rate_high")
    prometheus_server.value_when(ERROR_RATE, lambda v: v > 0.02)
    run = _slo_check(make_upgrade, demo_environment, manager)

    # Then the check failed, naming the metric, its value and the limit
    assert run.status == RunStatus.FAILED
    assert "error_rate is 0.0" in run.reason and "wanted < 0.01" in run.reason
    assert run.measured["error_rate"] > 0.02
    assert [b["metric"] for b in run.measured["breaches"]] == ["error_rate"]


@pytest.mark.parametrize(
    "query",
    [
        'sum(rate(http_requests_total{service="nowhere"}[5s]))',  # an empty vector
        "vector(0) / vector(0)",  # NaN
    ],
    ids=["empty", "nan"],
)
def test_slo_check__query_without_data__is_inconclusive_never_passed(
    prometheus_server, demo_environment, make_upgrade, manager, query
):
    _read_from(demo_environment, prometheus_server, error_rate_query=query)
    prometheus_server.value_when(LATENCY_MS, lambda v: v > 0)

    run = _slo_check(make_upgrade, demo_environment, manager)

    assert run.status == RunStatus.INCONCLUSIVE, run.reason
    assert "No data" in run.reason
    assert run.measured["no_data"] == ["error_rate"]
    assert run.measured["error_rate"] is None


def test_slo_check__query_prometheus_rejects__error_carries_its_message(
    prometheus_server, demo_environment, make_upgrade, manager
):
    _read_from(demo_environment, prometheus_server, error_rate_query="sum(rate(x[5s])")

    run = _slo_check(make_upgrade, demo_environment, manager)

    assert run.status == RunStatus.ERROR
    assert "Prometheus rejected the query (bad_data)" in run.reason
    assert "parse error" in run.reason


def test_runner__prometheus_not_listening__error_names_it():
    result = prometheus.prometheus_query(base_url="http://127.0.0.1:9", query="up", timeout_s=1)
    assert result.outcome == "error"
    assert "could not be reached" in result.reason


@pytest.mark.worker
def test_guard__error_rate_high_in_prometheus__worker_and_beat_roll_the_flag_back(
    prometheus_server,
    demo_mycelia,
    flag_upgrade,
    demo_environment,
    manager,
    worker_factory,
    client,
):
    # Given a flag upgrade on the demo, its SLOs read from Prometheus (which has data), deployed
    # (flag on) and in its monitoring window, sampled every second by a real worker and beat
    _read_from(demo_environment, prometheus_server)
    prometheus_server.value_when(ERROR_RATE, lambda v: v < 0.01)
    close_steps(flag_upgrade, manager, stages=("pre",))
    upgrade = services.upgrade_act(upgrade=flag_upgrade, action="start", by=manager).upgrade
    deploy = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run
    services.check_run_execute(run_id=deploy.pk)
    assert flag_is_on("new-checkout", "demo-staging")
    upgrade = services.upgrade_act(upgrade=upgrade, action="begin_monitoring", by=manager).upgrade
    upgrade.monitoring.interval_seconds = 1
    upgrade.monitoring.save()
    fast = {"MYCELIA_MONITORING_TICK_SECONDS": "1"}
    worker_factory(**fast).start()
    worker_factory(beat=True, **fast).start()
    first = wait_for(
        lambda: MonitoringSample.objects.filter(upgrade=upgrade, phase="window").first(),
        timeout=30,
    )
    assert first.passed, first.reason
    assert "in Prometheus" in first.reason

    # When the target's error rate goes up
    set_fault(demo_mycelia, "error_rate_high")

    # Then Prometheus's figures fail three samples in a row and the guard turns the flag off
    wait_for(
        lambda: Upgrade.objects.get(pk=upgrade.pk).status == UpgradeStatus.ROLLED_BACK,
        timeout=40,
    )
    assert not flag_is_on("new-checkout", "demo-staging")
    failing = list(MonitoringSample.objects.filter(upgrade=upgrade).order_by("-at")[:3])
    assert [s.passed for s in failing] == [False, False, False]
    assert all(s.error_rate and s.error_rate > 0.01 for s in failing)
    tripped = upgrade.events.get(kind=EventKind.GUARD_TRIPPED).message
    assert "error_rate is" in tripped and "in Prometheus" in tripped

    # And the upgrade page's chart draws the Prometheus series
    client.force_login(manager)
    page = client.get(upgrade.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-source="Prometheus"' in html
    assert "line from Prometheus" in html
    assert "Prometheus did not answer" not in html


def test_chart__prometheus_does_not_answer__page_says_so_without_failing(
    demo_environment, make_upgrade, manager, client
):
    # Given an upgrade in monitoring whose environment's Prometheus is not listening
    from tests.conftest import drive

    demo_environment.prometheus_url = "http://127.0.0.1:9"
    demo_environment.save()
    SloThreshold.objects.filter(environment=demo_environment, metric="error_rate").update(
        query=ERROR_RATE
    )
    upgrade = drive(make_upgrade("minor", environment=demo_environment), manager, to="monitoring")

    # When the page is rendered
    client.force_login(manager)
    page = client.get(upgrade.get_absolute_url())

    # Then it answers, with a note instead of the Prometheus line
    assert page.status_code == 200
    assert "Prometheus did not answer" in page.content.decode()
