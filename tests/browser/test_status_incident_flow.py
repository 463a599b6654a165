"""A production rollback end to end in real Chromium: the incident is drafted (nothing public),
a release manager edits and publishes it, the public page follows by its polls, the manager
resolves it; and a staging rollback that reaches nobody outside."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from comms import services as comms
from comms.models import StatusIncident
from tests.browser.conftest import sign_in
from tests.comms._status_helpers import HEALTHY
from tests.conftest import PASSWORD, drive
from upgrades import reactions
from upgrades import services as upgrade_services
from upgrades.models import Environment, EnvironmentKind

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POLL = 25_000  # ms: a poll every 5 s, and the browser may show a cached answer one poll late


def _roll_back(upgrade, manager) -> None:
    """What a passed rollback run does: the move, then its reactions."""
    upgrade_services.status_move(upgrade=upgrade, transition="roll_back", by=manager,
                                 reason="the patch broke sign-in for SSO users")  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)


def test_production_rollback__drafted_published_resolved__public_page_follows(
    new_page, make_upgrade, manager
):
    production = Environment.objects.create(
        name="Production", slug="production", kind=EnvironmentKind.PRODUCTION,
        base_url="http://127.0.0.1:9",
    )  # fmt: skip
    comms.status_health_record(environment_key="production", environment_name="Production",
                               document=HEALTHY, error="", public=True)  # fmt: skip
    upgrade = drive(make_upgrade("emergency", environment=production, title="CVE-2026-1234 patch"),
                    manager, to="in_progress")  # fmt: skip

    # Given a visitor on the public page while the patch is being deployed
    public = new_page()
    public.goto("/status/")
    card = public.locator(f"#upgrade-{upgrade.pk}")
    expect(card).to_have_attribute("data-status", "in_progress")
    banner = public.locator(".status-banner h2")
    expect(banner).to_have_text("Service Under Maintenance")

    # When the patch is rolled back
    _roll_back(upgrade, manager)

    # Then the visitor sees the window ended, no incident, and an operational page
    expect(card.locator("[data-role=status]")).to_have_text("Ended", timeout=POLL)
    expect(banner).to_have_text("All Systems Operational")
    assert public.locator("#live .incident").count() == 0
    assert "failed" not in public.inner_text("#live").lower()

    # And a release manager finds a draft that says nothing about the patch
    desk = new_page()
    sign_in(desk, manager.username, PASSWORD)
    desk.goto("/comms/incidents/")
    draft = StatusIncident.objects.get(maintenance__upgrade_id=upgrade.pk)
    desk.click(f"#incident-{draft.pk} a")
    expect(desk.locator("[data-role=state]")).to_have_text("Draft")
    assert "CVE" not in desk.input_value("#incident-name")
    assert "sign-in" not in desk.input_value("#incident-body")

    # When the manager edits its words and publishes it as a minor incident
    desk.fill("#incident-name", "Sign-in was slow for some users")
    desk.select_option("select[name=impact]", "minor")
    desk.click("button[value=publish]")
    expect(desk.locator("[data-role=state]")).to_have_text("Monitoring")

    # Then the public page shows it by itself, and the banner follows its impact
    expect(public.locator("#live .incident .card-title")).to_have_text(
        "Sign-in was slow for some users", timeout=POLL
    )
    expect(banner).to_have_text("Minor Service Outage")

    # When the manager resolves it
    desk.select_option("#post-update select[name=status]", "resolved")
    desk.fill("#update-body", "Sign-in works for everyone again.")
    desk.click("#post-update button[type=submit]")
    expect(desk.locator("[data-role=state]")).to_have_text("Resolved")

    # Then the page is operational again and lists the incident as resolved
    expect(banner).to_have_text("All Systems Operational", timeout=POLL)
    resolved = public.locator(f"#incident-{draft.public_id}")
    expect(resolved.locator("[data-role=incident-status]")).to_have_text("Resolved")
    assert "CVE" not in resolved.inner_text()


def test_staging_rollback__nothing_public__no_draft(new_page, make_upgrade, manager):
    upgrade = drive(make_upgrade("minor", title="Staging trial 1.5.0"), manager, to="in_progress")
    _roll_back(upgrade, manager)

    public = new_page()
    public.goto("/status/")
    expect(public.locator(".status-banner h2")).to_have_text("All Systems Operational")
    assert "Staging trial" not in public.content()
    public.goto("/status/api/v2/summary.json")
    assert "Staging trial" not in public.content()

    desk = new_page()
    sign_in(desk, manager.username, PASSWORD)
    desk.goto("/comms/incidents/")
    expect(desk.locator("main")).to_contain_text("No drafts")
