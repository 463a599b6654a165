"""The status page follows an upgrade live, in real Chromium, without a reload."""

from __future__ import annotations

import pytest

from comms import services
from tests.comms.conftest import sync

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_status_page__upgrade_progresses__page_changes_without_reload(new_page):
    services.comms_seed()
    sync(upgrade_id=1, status="scheduled", title="Upgrade to 1.5.0")
    page = new_page()
    page.goto("/status/")
    card = page.locator("#upgrade-1")
    assert card.get_attribute("data-status") == "scheduled"
    page.evaluate("window.__noReload = 'still here'")

    # When the upgrade starts and reaches its second phase
    sync(upgrade_id=1, status="in_progress", title="Upgrade to 1.5.0",
         phase_title="Deploy to production", progress_percent=60)  # fmt: skip

    # Then the page shows it within a poll or two, in the same document
    page.wait_for_selector("#upgrade-1[data-status='in_progress']", timeout=15_000)
    assert card.locator("[data-role=phase]").inner_text() == "Deploy to production"
    assert card.locator("[data-role=progress]").inner_text() == "60%"
    assert page.evaluate("window.__noReload") == "still here"

    sync(upgrade_id=1, status="monitoring", title="Upgrade to 1.5.0", phase_title="Verify",
         progress_percent=90)  # fmt: skip
    page.wait_for_selector("#upgrade-1[data-status='verifying']", timeout=15_000)
    assert page.evaluate("window.__noReload") == "still here"


def test_status_page__real_upgrade_moves_through_its_lifecycle__page_follows_live(
    new_page, make_upgrade, manager
):
    from datetime import timedelta

    from django.utils import timezone

    from tests.conftest import mark_deployed
    from upgrades import services as upgrade_services
    from upgrades.models import Environment, EnvironmentKind

    # Given a scheduled minor upgrade of production (shown on the public status page)
    production = Environment.objects.create(
        name="Production", slug="production", kind=EnvironmentKind.PRODUCTION
    )
    upgrade = make_upgrade(
        "minor", title="Mycelia 1.5.0", environment=production,
        window_start=timezone.now() + timedelta(hours=2),
    )  # fmt: skip
    upgrade = upgrade_services.upgrade_transition(
        upgrade=upgrade, transition="schedule", by=manager
    )
    page = new_page()
    page.goto("/status/")
    card = page.locator(f"#upgrade-{upgrade.pk}")
    assert card.get_attribute("data-status") == "scheduled"
    page.evaluate("window.__noReload = 'still here'")

    # When the release manager ticks the first phase and starts the deployment
    for step in upgrade.steps.filter(phase__order=1):
        upgrade_services.step_complete(step=step, by=manager)
    upgrade_services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="browser test"
    )

    # Then the page shows it in progress, at its next phase, without a reload
    page.wait_for_selector(f"#upgrade-{upgrade.pk}[data-status='in_progress']", timeout=15_000)
    # (the phase of the stage it is in: deploying, not a pre-upgrade step left open)
    deploy_phase = upgrade.phases.filter(stage="deploy").order_by("order").first()
    assert card.locator("[data-role=phase]").inner_text() == deploy_phase.title
    assert card.locator("[data-role=progress]").inner_text() != "0%"

    # And after deployment, "verifying" while it is monitored
    mark_deployed(upgrade)  # what a passed deploy run records
    upgrade_services.upgrade_transition(upgrade=upgrade, transition="begin_monitoring", by=manager)
    page.wait_for_selector(f"#upgrade-{upgrade.pk}[data-status='verifying']", timeout=15_000)
    assert page.evaluate("window.__noReload") == "still here"
