"""Review reminders sent by a real scheduler run: Celery beat finds the review due, a worker
delivers the reminder through the team's mail channel."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.conftest import drive
from tests.integration.conftest import wait_for
from upgrades.models import PostUpgradeReview, ReviewHorizon

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_review_due__scheduler_and_worker__mail_the_owner_once(
    make_upgrade, manager, worker_factory, tmp_path
):
    from comms.models import Delivery

    # Given a completed upgrade whose immediate review is due now
    upgrade = drive(make_upgrade("minor"), manager, to="completed")
    PostUpgradeReview.objects.filter(upgrade=upgrade, horizon=ReviewHorizon.IMMEDIATE).update(
        due_at=timezone.now()
    )

    # When the scheduler and a worker run (mail written to files)
    mail_dir = tmp_path / "mail"
    env = {
        "MYCELIA_REVIEW_REMIND_SECONDS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    worker_factory(**env).start()
    worker_factory(beat=True, **env).start()

    # Then the owner gets one reminder, delivered and recorded
    delivery = wait_for(
        lambda: Delivery.objects.filter(message__template_key="reminder", status="sent").first(),
        timeout=60,
    )
    assert delivery.recipient == manager.email
    mails = "".join(p.read_text() for p in mail_dir.glob("*.log"))
    assert "The Immediate Review (0-24 hours) of upgrade" in mails and "Lessons Learned" in mails
    review = PostUpgradeReview.objects.get(upgrade=upgrade, horizon=ReviewHorizon.IMMEDIATE)
    assert review.due_reminder_sent_at is not None
    assert Delivery.objects.filter(message__template_key="reminder").count() == 1
