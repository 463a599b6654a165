"""Upgrades tell comms what stakeholders must know, at the moments the playbook names."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from comms.models import Message, StatusIncident, StatusMaintenance
from upgrades import services
from upgrades.models import PhaseStage


def _keys(upgrade) -> list[str]:
    return list(
        Message.objects.filter(
            upgrade_id=upgrade.pk, template_key__in=["pre_upgrade", "progress", "post_upgrade"]
        )
        .order_by("id")
        .values_list("template_key", flat=True)
    )


def test_schedule__drafts_pre_upgrade_message_filled_from_the_upgrade(make_upgrade, manager):
    upgrade = make_upgrade(
        "minor", window_start=timezone.now() + timedelta(days=1), window_minutes=45
    )
    services.upgrade_transition(upgrade=upgrade, transition="schedule", by=manager)
    message = Message.objects.get(upgrade_id=upgrade.pk, template_key="pre_upgrade")
    assert message.template_key == "pre_upgrade" and message.status == "draft"
    assert message.subject.startswith("Scheduled Upgrade: 1.4.2 → 1.5.0 - ")
    assert "Type: Minor version" in message.body and "45 minutes" in message.body
    assert "Rollback Plan: Previous version deployment" in message.body
    mirror = StatusMaintenance.objects.get(upgrade_id=upgrade.pk)
    assert mirror.status == "scheduled"


def test_phase_finished__team_asked_for_phase_messages__drafts_a_progress_update(
    make_upgrade, staging, manager
):
    staging.phase_messages = True
    staging.save(update_fields=["phase_messages"])
    upgrade = make_upgrade("feature_flag")
    phase = upgrade.phases.get(stage=PhaseStage.PRE, order=2)
    steps = list(phase.steps.all())
    for step in steps[:-1]:
        services.step_complete(step=step, by=manager)
    assert _keys(upgrade) == []
    services.step_skip(step=steps[-1], by=manager, reason="done elsewhere")
    assert _keys(upgrade) == ["progress"]
    progress = Message.objects.get(upgrade_id=upgrade.pk, template_key="progress")
    assert "Step 1: Preparation" in progress.body


def test_rollback__drafts_progress_then_post_upgrade_and_an_incident_for_a_public_environment(
    make_upgrade, demo_environment, manager
):
    demo_environment.public_status = True  # shown on the status page, as production is
    demo_environment.save(update_fields=["public_status"])
    upgrade = make_upgrade("minor", environment=demo_environment)
    upgrade = services.upgrade_transition(
        upgrade=upgrade, transition="start", by=manager, override_reason="x"
    )
    assert StatusMaintenance.objects.get(upgrade_id=upgrade.pk).status == "in_progress"
    deploy = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=deploy.pk)
    run = services.action_request(
        upgrade=upgrade, action="rollback_version", by=manager, confirmed=True
    )
    services.check_run_execute(run_id=run.pk)
    assert _keys(upgrade)[-2:] == ["progress", "post_upgrade"]
    post = Message.objects.filter(upgrade_id=upgrade.pk, template_key="post_upgrade").get()
    assert "Rolled back" in post.body
    assert StatusIncident.objects.filter(maintenance__upgrade_id=upgrade.pk).exists()


def test_emergency__public_status_page__names_no_flaw(make_upgrade, staging, manager):
    staging.public_status = True
    staging.save(update_fields=["public_status"])
    upgrade = make_upgrade("emergency", title="CVE-2026-1234 patch")
    services.upgrade_act(upgrade=upgrade, action="start", by=manager, override_reason="now")
    mirror = StatusMaintenance.objects.get(upgrade_id=upgrade.pk)
    assert "CVE" not in mirror.title and "Security" not in mirror.type_label
    assert mirror.title == "Emergency maintenance of Staging"
