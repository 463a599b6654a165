"""The record of an upgrade: a self-contained report with every event of what happened."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from upgrades import services
from upgrades.models import MonitoringWindow, UpgradeEvent


def test_report__scripted_flag_upgrade__contains_every_event_run_flag_change_and_review(
    flag_upgrade, manager, manager_client, stakeholder_client
):
    # Given a flag upgrade taken from draft through deploy, monitoring and a rollback
    upgrade = flag_upgrade
    step = upgrade.steps.first()
    services.step_complete(step=step, by=manager, note="diagnose clean")
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="soaked in staging"
    )
    deploy = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=deploy.pk)
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="begin_monitoring", by=manager
    )
    MonitoringWindow.objects.filter(upgrade=upgrade).update(next_sample_at=timezone.now())
    services.monitoring_sample_take(upgrade_id=upgrade.pk)
    rollback = services.action_request(
        upgrade=upgrade, action="rollback_flag", by=manager, confirmed=True
    )
    services.check_run_execute(run_id=rollback.pk)

    # When the report is exported as Markdown and as a printable page
    markdown = manager_client.get(reverse("upgrades:report_md", args=[upgrade.pk]))
    page = stakeholder_client.get(reverse("upgrades:report", args=[upgrade.pk]))

    # Then both hold the whole story
    assert markdown.status_code == page.status_code == 200
    assert markdown["Content-Type"].startswith("text/markdown")
    text = markdown.content.decode()
    html = page.content.decode()
    events = UpgradeEvent.objects.filter(upgrade=upgrade)
    assert events.count() >= 10
    for event in events:
        assert event.get_kind_display().lower() in text
        if event.message:
            assert event.message.splitlines()[0][:60] in text, event.message
    assert "[x] Run diagnostics" in text and "(diagnose clean)" in text
    assert "Turn on feature flag new-checkout" in text
    assert "via upgrade: off → on" in text and "via rollback: on → off" in text
    assert "Immediate Review (0-24 hours)" in text
    assert "Scheduled Upgrade" not in text  # never scheduled, so never announced
    assert "Upgrade Completed" in text  # the post-upgrade message drafted at rollback
    assert "<svg" in html and "soaked in staging" in html
    assert "hx-get" not in html and "<link" not in html  # self-contained, nothing live

    # And the flag's own page names the upgrade that flipped it
    flag_page = stakeholder_client.get("/flags/new-checkout/").content.decode()
    assert f'href="{upgrade.get_absolute_url()}"' in flag_page and upgrade.title in flag_page
