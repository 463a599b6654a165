"""Post-upgrade reviews at 24 h, 7 days and 4 weeks; reminders; lessons; the dashboard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.conftest import drive
from upgrades import reactions, services
from upgrades.models import EventKind, PostUpgradeReview, ReviewHorizon, UpgradeStatus


def _completed(upgrade, manager):
    return drive(upgrade, manager, to="completed")


def _due(upgrade) -> dict[str, timedelta]:
    return {r.horizon: r.due_at - upgrade.finished_at for r in upgrade.reviews.all()}


def test_complete__schedules_three_reviews_with_the_playbook_horizons(make_upgrade, manager):
    upgrade = _completed(make_upgrade("minor"), manager)
    assert _due(upgrade) == {
        ReviewHorizon.IMMEDIATE: timedelta(hours=24),
        ReviewHorizon.SHORT_TERM: timedelta(days=7),
        ReviewHorizon.LONG_TERM: timedelta(weeks=4),
    }
    immediate = upgrade.reviews.get(horizon=ReviewHorizon.IMMEDIATE)
    assert [i["text"] for i in immediate.items][3] == "Lessons Learned: Note lessons learned"
    assert immediate.owner == upgrade.owner
    assert upgrade.events.filter(kind=EventKind.REVIEW).count() == 3


def test_roll_back__also_schedules_the_reviews(make_upgrade, manager):
    upgrade = drive(make_upgrade("emergency"), manager, to="in_progress")
    # The move a passed rollback run makes (the run itself: tests/upgrades/test_runs.py)
    upgrade = services.status_move(
        upgrade=upgrade, transition="roll_back", by=manager, reason="broke checkout"
    )
    reactions.events_react(upgrade_id=upgrade.pk)  # what the run's worker does after the move
    assert upgrade.status == UpgradeStatus.ROLLED_BACK
    assert upgrade.reviews.count() == 3


def test_review__complete_with_items_open__is_refused_then_done_when_all_checked(
    make_upgrade, manager
):
    review = _completed(make_upgrade("minor"), manager).reviews.first()
    with pytest.raises(services.Conflict, match="still open"):
        services.review_complete(review=review, by=manager)
    services.review_update(
        review=review, by=manager, done_items={0, 1, 2, 3}, notes="calm", lessons="Warm caches"
    )
    review = services.review_complete(review=review, by=manager)
    assert review.status == "done" and review.completed_by == manager


def test_reminders__due_then_overdue__each_sent_once_through_the_team_channels(
    make_upgrade, manager, mailoutbox
):
    from comms.models import Delivery
    from comms.services import delivery_attempt

    upgrade = _completed(make_upgrade("minor"), manager)
    later = upgrade.finished_at + timedelta(hours=25)
    assert services.reviews_remind(now=later) == {"due": 1, "overdue": 0, "failed": 0}
    assert services.reviews_remind(now=later) == {"due": 0, "overdue": 0, "failed": 0}
    much_later = upgrade.finished_at + timedelta(hours=49)
    assert services.reviews_remind(now=much_later) == {"due": 0, "overdue": 1, "failed": 0}

    # Each reminder is a comms delivery to the owner on the team's mail channel
    deliveries = Delivery.objects.filter(message__template_key="reminder").order_by("id")
    assert [(d.channel.name, d.recipient) for d in deliveries] == [
        ("Team mail", manager.email),
        ("Team mail", manager.email),
    ]
    for delivery in deliveries:
        delivery_attempt(delivery_id=delivery.pk)
    assert [m.subject.split(":")[0] for m in mailoutbox] == ["Review due", "Review OVERDUE"]
    assert mailoutbox[0].to == [manager.email]
    assert "Lessons Learned" in mailoutbox[0].body


def test_review_views__save_and_follow_up__manager_only(
    make_upgrade, manager, manager_client, stakeholder, second_manager
):
    upgrade = _completed(make_upgrade("minor"), manager)
    review = upgrade.reviews.get(horizon=ReviewHorizon.IMMEDIATE)
    save = reverse("upgrades:review_save", args=[upgrade.pk, review.pk])
    response = manager_client.post(
        save, {"done": ["0", "1"], "notes": "n", "lessons": "Feature flags need owners"}
    )
    assert response.status_code == 302
    follow = reverse("upgrades:follow_up_create", args=[upgrade.pk, review.pk])
    assert manager_client.post(follow, {"title": "", "owner": manager.pk}).status_code == 400
    response = manager_client.post(follow, {"title": "Write runbook", "owner": second_manager.pk})
    assert response.status_code == 302
    assert review.follow_ups.get().owner == second_manager
    manager_client.force_login(stakeholder)
    assert manager_client.post(save, {"done": ["0"]}).status_code == 403
    lessons = manager_client.get(reverse("upgrades:lessons"), {"q": "owners"})
    assert "Feature flags need owners" in lessons.content.decode()
    assert (
        "No lesson mentions"
        in manager_client.get(reverse("upgrades:lessons"), {"q": "zebra"}).content.decode()
    )


def test_dashboard__shows_active_failed_upcoming_and_due_with_fixed_queries(
    make_upgrade, manager, stakeholder_client, django_assert_max_num_queries
):
    for n in range(3):
        upgrade = make_upgrade("minor", title=f"Active {n}")
        services.upgrade_transition(
            upgrade=upgrade, transition="start", by=manager, override_reason="x"
        )
    scheduled = make_upgrade(
        "minor", title="Next week", window_start=timezone.now() + timedelta(days=7)
    )
    services.upgrade_transition(upgrade=scheduled, transition="schedule", by=manager)
    done = _completed(make_upgrade("minor", title="Shipped"), manager)
    PostUpgradeReview.objects.filter(upgrade=done).update(due_at=timezone.now())
    with django_assert_max_num_queries(10):
        html = stakeholder_client.get(reverse("upgrades:dashboard")).content.decode()
    assert "Active 2" in html and "Next week" in html
    assert "Immediate Review" in html and "every 10s" in html
