"""A release manager runs a minor upgrade's checklist in the browser; a stakeholder watches."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from upgrades.models import EventKind, StepStatus, Upgrade, UpgradeStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_minor_upgrade__ticked_gated_and_overridden__in_the_browser(
    new_page, manager, stakeholder, playbook, staging
):
    page = new_page()
    sign_in(page, manager.username, PASSWORD)

    # Given a new minor upgrade made from the playbook
    page.click("text=New upgrade")
    page.select_option("select[name=upgrade_type]", "minor")
    page.fill("input[name=title]", "Mycelia 1.5.0")
    page.fill("input[name=version_from]", "1.4.2")
    page.fill("input[name=version_to]", "1.5.0")
    page.click("text=Create upgrade from the playbook")
    expect(page.locator("h1")).to_have_text("Mycelia 1.5.0")
    upgrade = Upgrade.objects.get(title="Mycelia 1.5.0")
    total = upgrade.steps.count()
    expect(page.locator("#overall-progress")).to_contain_text(f"0 of {total} steps")

    # When the manager ticks a pre-upgrade step, progress changes without a reload
    page.evaluate("window.__no_reload = 'still here'")
    step = upgrade.steps.get(title="Run diagnostics", phase__order=1)
    page.get_by_label("Note for Run diagnostics").first.fill("diagnose clean")
    page.locator(f"#step-{step.pk} .tick-button").click()
    expect(page.locator("#overall-progress")).to_contain_text(f"1 of {total} steps")
    expect(page.locator(f"#step-{step.pk} .step-status")).to_have_text("Done")
    assert page.evaluate("window.__no_reload") == "still here"
    assert Upgrade.objects.get(pk=upgrade.pk).steps.get(pk=step.pk).status == StepStatus.DONE

    # Then starting is the next action, and with steps open it asks for the override reason
    expect(page.locator("#next")).to_contain_text("Next: Start deployment")
    expect(page.locator("#gate")).to_contain_text("required pre-upgrade steps still open")
    expect(page.locator("#upgrade-status")).to_have_text("Draft")

    # When the manager overrides the gate with a reason, in one step
    page.fill("#override-reason", "Staging soaked for a week")
    page.click("#act-start")
    expect(page.locator("#upgrade-status")).to_have_text("In progress")
    expect(page.locator("#timeline")).to_contain_text("gate overridden")
    expect(page.locator("#timeline")).to_contain_text("Staging soaked for a week")
    assert page.evaluate("window.__no_reload") == "still here"
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert upgrade.events.filter(kind=EventKind.GATE_OVERRIDDEN, actor=manager).exists()

    # And a stakeholder sees the same page without any control that writes
    watcher = new_page()
    sign_in(watcher, stakeholder.username, PASSWORD)
    watcher.goto(upgrade.get_absolute_url())
    expect(watcher.locator("#upgrade-status")).to_have_text("In progress")
    expect(watcher.locator("#timeline")).to_contain_text("step done")
    assert watcher.locator(".tick-button").count() == 0
    assert watcher.locator("#lifecycle form").count() == 0
    assert watcher.get_by_text(re.compile("New upgrade")).count() == 0


def test_checklist__without_javascript__ticks_with_plain_form_posts(
    browser, live_server, manager, make_upgrade
):
    upgrade = make_upgrade("feature_flag")
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, manager.username, PASSWORD)
        page.goto(upgrade.get_absolute_url())
        step = upgrade.steps.order_by("phase__order", "order").first()
        page.locator(f"#step-{step.pk} .tick-button").click()
        expect(page.locator(f"#step-{step.pk} .step-status")).to_have_text("Done")
        expect(page.locator(".messages")).to_contain_text("done")
        # The post came back to the step it was made from, not the top of the page
        assert page.url.endswith(f"#step-{step.pk}")
    finally:
        context.close()
