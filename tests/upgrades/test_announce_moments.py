"""Messages drafted at the playbook's moments (scheduled, started, rollback, ended), phase
messages only where the environment asks for them, subjects in the playbook's words
(issue 12, finding 4)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from comms.models import Message, MessageStatus
from tests.conftest import close_steps, drive
from upgrades.models import PhaseStage

pytestmark = pytest.mark.django_db

LIFECYCLE_WORDS = ("Draft", "Scheduled:", "In progress", "finished", "'", "“", "in_progress")


def _messages(upgrade) -> list[Message]:
    return list(
        Message.objects.filter(
            upgrade_id=upgrade.pk, template_key__in=["pre_upgrade", "progress", "post_upgrade"]
        ).order_by("id")
    )


def test_upgrade_lifecycle__environment_without_phase_messages__drafts_at_the_playbook_moments_only(
    make_upgrade, manager
):
    # Given a minor upgrade on staging (phase messages off: the default)
    upgrade = make_upgrade("minor", window_start=timezone.now())

    # When it is scheduled, every checklist phase is closed, it starts, deploys and completes
    upgrade = drive(upgrade, manager, to="scheduled")
    upgrade = drive(upgrade, manager, to="completed")

    # Then there is one message per playbook moment, none per phase
    messages = _messages(upgrade)
    assert [(m.moment, m.template_key) for m in messages] == [
        ("scheduled", "pre_upgrade"),
        ("started", "progress"),
        ("ended", "post_upgrade"),
    ]
    # and only the newest waits for a manager: each draft replaced the one before it
    assert [m.status for m in messages] == [
        MessageStatus.DISCARDED,
        MessageStatus.DISCARDED,
        MessageStatus.DRAFT,
    ]
    assert f"#{messages[1].pk}" in messages[0].discard_reason


def test_upgrade_start__from_scheduled__progress_draft_in_the_playbook_words(make_upgrade, manager):
    upgrade = make_upgrade("minor", window_start=timezone.now())
    upgrade = drive(upgrade, manager, to="scheduled")

    drive(upgrade, manager, to="in_progress")

    started = Message.objects.get(upgrade_id=upgrade.pk, moment="started")
    assert started.subject == "Upgrade Progress: 1.4.2 → 1.5.0 - In Progress"
    assert "Current Status: In Progress" in started.body
    assert "Progress: The upgrade has started." in started.body


def test_phase_closed__environment_asks_for_phase_messages__progress_in_the_playbook_words(
    make_upgrade, manager, staging
):
    # Given an environment whose team asked for a message per phase
    staging.phase_messages = True
    staging.save(update_fields=["phase_messages"])
    upgrade = make_upgrade("minor")

    # When the pre-upgrade phases are closed while the upgrade is still a draft
    close_steps(upgrade, manager, stages=(PhaseStage.PRE,))

    # Then each closed phase drafted a progress update whose subject reads as the playbook's,
    # with no lifecycle words ("Draft:", "'Pre-Upgrade' finished")
    phase_messages = [m for m in _messages(upgrade) if m.moment == "phase"]
    assert phase_messages
    for message in phase_messages:
        assert message.subject == "Upgrade Progress: 1.4.2 → 1.5.0 - Preparing"
        assert not any(word in message.subject for word in LIFECYCLE_WORDS), message.subject
        assert "Current Status: Preparing" in message.body
    first_phase = upgrade.phases.filter(stage=PhaseStage.PRE).order_by("order").first()
    assert any(f"Progress: {first_phase.title} done (" in m.body for m in phase_messages)


def test_phase_closed__environment_without_phase_messages__nothing_drafted(make_upgrade, manager):
    upgrade = make_upgrade("minor")

    close_steps(upgrade, manager, stages=(PhaseStage.PRE,))

    assert _messages(upgrade) == []


def test_playbook_moment_subjects__whole_lifecycle__no_lifecycle_words(
    make_upgrade, manager, staging
):
    staging.phase_messages = True
    staging.save(update_fields=["phase_messages"])
    upgrade = make_upgrade("minor", window_start=timezone.now())

    upgrade = drive(upgrade, manager, to="scheduled")
    drive(upgrade, manager, to="completed")

    subjects = [m.subject for m in _messages(upgrade)]
    assert subjects[0].startswith("Scheduled Upgrade: 1.4.2 → 1.5.0 - ")
    assert "Upgrade Progress: 1.4.2 → 1.5.0 - In Progress" in subjects
    assert subjects[-1] == "Upgrade Completed: 1.4.2 → 1.5.0 - Success"
    for subject in subjects:
        assert not any(word in subject for word in LIFECYCLE_WORDS), subject


def test_roll_back_requested__deployed_upgrade__rollback_draft_in_the_playbook_words(
    make_upgrade, manager
):
    from tests.conftest import mark_deployed
    from upgrades.models import Upgrade
    from upgrades.services import upgrade_act

    # Given a started upgrade whose deploy passed
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    mark_deployed(upgrade)
    Upgrade.objects.filter(pk=upgrade.pk).update(rollback_target="1.4.2")
    upgrade.refresh_from_db()

    # When a manager rolls it back with a reason
    upgrade_act(upgrade=upgrade, action="roll_back", by=manager, reason="error rate doubled")

    # Then the rollback is announced as a progress update, the reason as its issue
    rollback = Message.objects.get(upgrade_id=upgrade.pk, moment="rollback")
    assert rollback.subject == "Upgrade Progress: 1.4.2 → 1.5.0 - Rolling back"
    assert "Issues: " in rollback.body and "error rate doubled" in rollback.body
    started = Message.objects.get(upgrade_id=upgrade.pk, moment="started")
    assert started.status == MessageStatus.DISCARDED


def test_environment_admin__phase_messages__a_setting_staff_can_change(
    client, staging, django_user_model
):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-12345")
    client.force_login(admin)

    page = client.get(f"/admin/upgrades/environment/{staging.pk}/change/").content.decode()

    assert 'name="phase_messages"' in page
    assert "Draft a message when each phase finishes" in page
