"""A release manager runs a minor upgrade's checks, backup, deploy and rollback against the demo
Mycelia in the browser, with a real worker, and watches every run change live."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, set_fault
from tests.integration.conftest import worker_factory  # noqa: F401 - fixture
from upgrades.models import Artifact, UpgradeStatus

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

LIVE = 30_000  # ms: a run goes from queued to finished on the worker well within this


def test_minor_upgrade__checks_backup_deploy_rollback__all_live_in_the_browser(
    new_page,
    manager,
    make_upgrade,
    demo_environment,
    demo_mycelia,
    worker_factory,  # noqa: F811
):
    worker_factory().start()
    upgrade = make_upgrade(
        "minor", environment=demo_environment, version_from="1.4.2", version_to="1.5.0"
    )
    page = new_page()
    sign_in(page, manager.username, PASSWORD)
    page.goto(upgrade.get_absolute_url())
    page.evaluate("window.__no_reload = 'still here'")

    # The pre-upgrade checks fan out to the worker and pass, live
    first_phase = upgrade.phases.get(order=1)
    page.locator(f"#run-phase-{first_phase.pk}").click()
    runs = page.locator("#runs")
    expect(runs.locator(".run-status").first).to_be_visible()
    expect(runs.locator(".run.passed")).to_have_count(7, timeout=LIVE)
    expect(page.locator("#runs-live")).to_have_count(0, timeout=LIVE)
    diagnose = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    expect(page.locator(f"#step-{diagnose.pk} .step-status")).to_have_text("Done", timeout=LIVE)

    # Back up: one button, no confirmation box to tick
    page.locator("#act-back_up").click()
    expect(page.locator("#artifacts li")).to_have_count(3, timeout=LIVE)
    assert set(Artifact.objects.values_list("kind", flat=True)) == {
        "config_archive", "log_tail", "db_backup",
    }  # fmt: skip

    # Start (overriding the gate), deploy, and watch the target change version
    _settled(page)
    page.fill("#override-reason", "demo run")
    page.click("#act-start")
    expect(page.locator("#upgrade-status")).to_have_text("In progress")

    page.locator("#act-deploy").click()
    deploy_row = page.locator("#runs .run", has_text="Deploy 1.5.0")
    expect(deploy_row).to_have_class(re.compile("passed"), timeout=LIVE)
    expect(page.locator("#deploy-state")).to_contain_text("Deployed 1.5.0", timeout=LIVE)
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.5.0"
    _settled(page)

    # A fault switched on makes the post-deployment health check fail with a readable reason
    set_fault(demo_mycelia, "health_failing")
    verify = upgrade.steps.get(title="Verify deployment")
    page.locator(f"#step-{verify.pk} .run-check").click()
    expect(page.locator(f"#step-{verify.pk} .step-status")).to_have_text("Failed", timeout=LIVE)
    expect(page.locator(f"#step-{verify.pk} .step-run")).to_contain_text("503")
    set_fault(demo_mycelia, "health_failing", on=False)
    _settled(page)

    # Roll back from behind the disclosure, with its reason: the upgrade shows rolled back
    page.click("#danger-zone summary")
    page.fill("#reason-roll_back", "error rate doubled")
    page.locator("#act-roll_back").click()
    expect(page.locator("#upgrade-status")).to_have_text("Rolled back", timeout=LIVE)
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.4.2"
    assert page.evaluate("window.__no_reload") == "still here"
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.ROLLED_BACK


def _settled(page) -> None:
    """Wait until the live panels have stopped polling and the page has taken in the results."""
    expect(page.locator("#runs-live")).to_have_count(0, timeout=LIVE)
    page.wait_for_load_state("networkidle")
