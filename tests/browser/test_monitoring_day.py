"""Issue 14's "done when", end to end: a release manager signs in through the company's
identity provider, turns a feature flag on from the upgrade page, and watches the guard roll
it back when the monitoring that reads Prometheus sees the error rate go up.

Everything is real: the OpenID provider (tests/oidc/provider.py, Authlib over HTTP), headless
Chromium through the redirect and code exchange, the demo Mycelia with its /metrics and fault
switches, Debian's Prometheus scraping it every second, and a Celery worker and beat as their
own processes. Only the steps before the deployment (the pre-upgrade checklist) are ticked
through the services; signing in, turning the flag on, beginning monitoring and watching the
rollback happen in the browser.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import close_steps, flag_is_on, set_fault
from tests.integration.conftest import wait_for, worker_factory  # noqa: F401
from tests.integration.conftest_prometheus import prometheus_server_fixture  # noqa: F401
from tests.oidc.helpers import PROVIDER_NAME, use_provider
from tests.oidc.provider import TestProvider
from upgrades.models import EventKind, MonitoringSample, Upgrade, UpgradeStatus
from upgrades.services import setup as setup_services

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# A 5 s rate window: the test has seconds of Prometheus history, not minutes.
ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))'
FAST = {"MYCELIA_MONITORING_TICK_SECONDS": "1"}  # the beat's monitoring tick, in the worker's env


@pytest.fixture
def provider(settings, live_server):
    running = TestProvider().start()
    use_provider(settings, running, panel_url=live_server.url)
    running.add_user("rita", groups=["release-team", "everyone"])
    yield running
    running.stop()


def test_monitoring_day__release_manager_via_sso_flips_flag__guard_rolls_back_on_prometheus(
    settings,
    provider,
    new_page,
    demo_mycelia,
    demo_environment,
    flag_upgrade,
    manager,
    prometheus_server,
    worker_factory,  # noqa: F811
):
    # Given the demo environment reads its error rate from Prometheus with a PromQL SLO (< 1 %),
    # and Prometheus has scraped the healthy demo long enough for rate()
    setup_services.environment_save(
        environment=demo_environment,
        by=manager,
        data={"prometheus_url": prometheus_server.url, "prometheus_timeout_seconds": 2.0},
    )
    setup_services.slo_save(
        environment=demo_environment,
        by=manager,
        limits={"error_rate": ("<", 0.01)},
        queries={"error_rate": ERROR_RATE},
    )
    # ...a monitoring window that samples every second (opened by the web process, this one),
    # and a real worker and beat whose scheduler ticks every second
    settings.MYCELIA_MONITORING_INTERVAL_SECONDS = 1
    # (the two start side by side, while the browser signs in; both are ready before the deploy)
    starting = ThreadPoolExecutor(max_workers=2)
    workers = [
        starting.submit(worker_factory(**FAST).start),
        starting.submit(worker_factory(beat=True, **FAST).start),
    ]
    starting.shutdown(wait=False)
    prometheus_server.value_when(ERROR_RATE, lambda v: v < 0.01)
    # ...and the flag upgrade's pre-upgrade checklist done
    close_steps(flag_upgrade, manager, stages=("pre",))

    # When rita, in release-team at the provider, signs in through it
    provider.sign_in_as("rita")
    page = new_page()
    page.goto("/accounts/login/")
    page.click(f"text=Sign in with {PROVIDER_NAME}")
    page.wait_for_url("**/upgrades/")
    assert "rita · release manager" in page.inner_text(".who")
    assert provider.seen("/token"), "the code was exchanged at the provider"

    # ...opens the flag upgrade, starts it and turns the flag on from the page
    for started in workers:
        started.result(timeout=60)
    page.goto(flag_upgrade.get_absolute_url())
    page.click("#act-start")
    deploy = page.locator("#act-deploy")
    assert "Turn on flag new-checkout" in deploy.inner_text()
    deploy.click()  # confirmed in the dialog (new_page accepts it)

    # Then the worker turns it on, and the runs poll brings it to the page
    page.wait_for_selector("#deploy-state:has-text('Flag new-checkout turned on')", timeout=20_000)
    assert flag_is_on("new-checkout", "demo-staging")

    # When she begins monitoring
    page.click("#act-begin_monitoring")
    page.wait_for_selector("#upgrade-status:has-text('Monitoring')")
    upgrade = Upgrade.objects.get(pk=flag_upgrade.pk)
    first = wait_for(
        lambda: MonitoringSample.objects.filter(upgrade=upgrade, phase="window").first(),
        timeout=30,
    )
    assert first.passed, first.reason
    assert "in Prometheus" in first.reason

    # ...and the demo's error rate goes up
    set_fault(demo_mycelia, "error_rate_high")

    # Then, without a reload, the page's polls show the guard's rollback: the status, the flag
    # off, the reason on the timeline
    page.wait_for_selector("#upgrade-status:has-text('Rolled back')", timeout=45_000)
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert not flag_is_on("new-checkout", "demo-staging")
    assert "Rolled back" in page.inner_text("#rollback-state")
    lifecycle = page.inner_text("#lifecycle")
    assert "Try again as a new draft" in lifecycle  # the next thing to do, not "Complete"
    assert "Begin monitoring" not in lifecycle and "End monitoring early" not in lifecycle
    timeline = page.inner_text("#timeline")
    assert "Automatic guard rolled the flag back" in timeline
    assert "Guard turned flag new-checkout off" in timeline
    assert "error_rate is" in timeline and "in Prometheus" in timeline
    monitoring = page.inner_text("#monitoring")
    assert "Guard tripped" in monitoring
    assert "Guard tripped: flag rolled back" in monitoring

    # ...and the chart's error-rate line is Prometheus's range for the SLO's query
    line = page.locator("#monitoring polyline[data-source='Prometheus']").first
    assert line.get_attribute("data-query") == ERROR_RATE
    assert ERROR_RATE in line.locator("title").text_content()
    points = [tuple(map(float, p.split(","))) for p in line.get_attribute("points").split()]
    assert len(points) >= 3
    # it ends at the window's end (the right edge), risen with the fault: the last point sits
    # higher (a smaller y) than the first, and the caption's latest value breaks the SLO
    assert points[-1][0] == 612.0
    assert points[-1][1] < points[0][1]
    caption = page.inner_text("#monitoring figure:has(polyline[data-source='Prometheus'])")
    assert "Error rate" in caption and "line from Prometheus" in caption
    assert float(re.search(r"latest ([0-9.e+-]+)", caption).group(1)) > 0.01, caption
    # ...with markers, in words, for the flag turned on (the deploy run), the guard's flip back
    # and the rollback, on the same time axis
    markers = page.locator("#monitoring figure").first.locator("line.marker")
    said = {
        (marker.get_attribute("class"), marker.locator("title").text_content())
        for marker in markers.all()
    }
    assert ("marker guard", "Guard tripped: flag turned off") in said, said
    assert ("marker rollback", "Rolled back") in said, said
    assert ("marker state", "Now rolled back") in said, said
    assert any(kind == "marker run" and "new-checkout" in title for kind, title in said), said
    assert "Prometheus did not answer" not in monitoring
    assert upgrade.events.filter(kind=EventKind.GUARD_TRIPPED).count() == 1
