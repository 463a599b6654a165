"""Post-upgrade reviews: scheduled at completion or rollback, reminded by the scheduler."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from comms import services as comms
from mycelia_ops.errors import BadInput as InvalidInput
from mycelia_ops.errors import Conflict
from upgrades.models import (
    REVIEW_SPECS,
    EventKind,
    FollowUpAction,
    PostUpgradeReview,
    ReviewStatus,
    Upgrade,
    UpgradeEvent,
)

logger = logging.getLogger(__name__)


def reviews_schedule(*, upgrade: Upgrade, by: Any) -> list[PostUpgradeReview]:
    """The playbook's three reviews, due 24 hours, 7 days and 4 weeks after the upgrade ended,
    owned by the upgrade's owner. Scheduling twice changes nothing."""
    ended = upgrade.finished_at or timezone.now()
    reviews = []
    for horizon, (after, items) in REVIEW_SPECS.items():
        review, created = PostUpgradeReview.objects.get_or_create(
            upgrade=upgrade,
            horizon=horizon,
            defaults={
                "owner_id": upgrade.owner_id,
                "due_at": ended + after,
                "items": [{"text": text, "done": False} for text in items],
            },
        )
        reviews.append(review)
        if created:
            UpgradeEvent.objects.create(
                upgrade=upgrade, actor=by, kind=EventKind.REVIEW, to_value="scheduled",
                message=f"{review.get_horizon_display()} due {review.due_at:%Y-%m-%d %H:%M}.",
            )  # fmt: skip
    return reviews


def review_update(
    *, review: PostUpgradeReview, by: Any, done_items: set[int], notes: str, lessons: str
) -> PostUpgradeReview:
    with transaction.atomic():
        review = PostUpgradeReview.objects.select_for_update().get(pk=review.pk)
        if review.status == ReviewStatus.DONE:
            raise Conflict("This review is done and kept as it was written.")
        review.items = [
            {**item, "done": index in done_items} for index, item in enumerate(review.items)
        ]
        review.notes = notes.strip()
        review.lessons_learned = lessons.strip()
        review.save()
        UpgradeEvent.objects.create(
            upgrade_id=review.upgrade_id, actor=by, kind=EventKind.REVIEW, to_value="updated",
            message=f"{review.get_horizon_display()}: "
            f"{sum(i['done'] for i in review.items)}/{len(review.items)} items checked.",
        )  # fmt: skip
    return review


def review_complete(*, review: PostUpgradeReview, by: Any) -> PostUpgradeReview:
    with transaction.atomic():
        review = PostUpgradeReview.objects.select_for_update().get(pk=review.pk)
        if review.status == ReviewStatus.DONE:
            return review
        open_items = [i["text"] for i in review.items if not i["done"]]
        if open_items:
            raise Conflict(f"Check every item first; still open: {', '.join(open_items)}.")
        review.status = ReviewStatus.DONE
        review.completed_at = timezone.now()
        review.completed_by = by
        review.save()
        UpgradeEvent.objects.create(
            upgrade_id=review.upgrade_id, actor=by, kind=EventKind.REVIEW,
            from_value=ReviewStatus.OPEN, to_value=ReviewStatus.DONE,
            message=f"{review.get_horizon_display()} done.",
        )  # fmt: skip
    return review


def follow_up_add(
    *, review: PostUpgradeReview, by: Any, title: str, owner: Any, due_at: datetime | None
) -> FollowUpAction:
    if not title.strip():
        raise InvalidInput("Name the follow-up action.", field="title")
    with transaction.atomic():
        action = FollowUpAction.objects.create(
            review=review, title=title.strip(), owner=owner, due_at=due_at
        )
        UpgradeEvent.objects.create(
            upgrade_id=review.upgrade_id, actor=by, kind=EventKind.REVIEW, to_value="follow-up",
            message=f"Follow-up for {owner.get_username()}: {action.title}",
        )  # fmt: skip
    return action


def reviews_remind(*, now: datetime | None = None) -> dict[str, int]:
    """Tell owners when a review falls due and again when it is overdue (a day later).

    Each reminder is claimed and handed to the comms outbox (a message and its delivery rows,
    sent by a worker after commit and retried there) in one transaction: the claim, a
    conditional update, makes it go out once; a failure to hand it over rolls the claim back,
    so the reminder stays due for the next run instead of being lost."""
    now = now or timezone.now()
    sent = {"due": 0, "overdue": 0, "failed": 0}
    due = PostUpgradeReview.objects.filter(
        status=ReviewStatus.OPEN, due_at__lte=now, due_reminder_sent_at__isnull=True
    )
    overdue = PostUpgradeReview.objects.filter(
        status=ReviewStatus.OPEN,
        due_at__lte=now - settings.MYCELIA_REVIEW_OVERDUE_AFTER,
        overdue_reminder_sent_at__isnull=True,
    )
    due = due.select_related("upgrade__environment", "owner")
    overdue = overdue.select_related("upgrade__environment", "owner")
    for kind, queryset, field in (
        ("due", due, "due_reminder_sent_at"),
        ("overdue", overdue, "overdue_reminder_sent_at"),
    ):
        for review in queryset.select_related("upgrade", "owner")[:200]:
            try:
                with transaction.atomic():
                    claim = PostUpgradeReview.objects.filter(
                        pk=review.pk, **{f"{field}__isnull": True}
                    )
                    claimed = claim.update(**{field: now})
                    if claimed:
                        _remind(review, kind)
            except Exception:  # noqa: BLE001 - one reminder that fails must not stop the others
                logger.exception("Reminder for review %s not sent; it stays due", review.pk)
                sent["failed"] += 1
                continue
            sent[kind] += claimed
    return sent


def _remind(review: PostUpgradeReview, kind: str) -> None:
    subject = (
        f"Review {'due' if kind == 'due' else 'OVERDUE'}: {review.get_horizon_display()} "
        f"of “{review.upgrade.title}”"
    )
    body = (
        f"The {review.get_horizon_display()} of upgrade “{review.upgrade.title}” was due "
        f"{review.due_at:%Y-%m-%d %H:%M}.\n\nChecklist:\n"
        + "\n".join(f"- [{'x' if i['done'] else ' '}] {i['text']}" for i in review.items)
        + f"\n\n{settings.MYCELIA_BASE_URL}{review.upgrade.get_absolute_url()}#reviews\n"
    )
    upgrade = review.upgrade
    comms.reminder_send(
        upgrade_id=upgrade.pk,
        upgrade_title=upgrade.title,
        upgrade_url=f"{settings.MYCELIA_BASE_URL}{upgrade.get_absolute_url()}",
        environment_key=upgrade.environment.slug,
        subject=subject,
        body=body,
        recipient_email=review.owner.email,
    )
    UpgradeEvent.objects.create(
        upgrade_id=review.upgrade_id, actor=None, kind=EventKind.REVIEW, to_value=kind,
        message=f"Reminder sent to {review.owner.get_username()}: {subject}",
    )  # fmt: skip
