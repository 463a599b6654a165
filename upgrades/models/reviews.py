"""The playbook's post-upgrade reviews at three horizons, and the follow-up actions they raise."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from upgrades.models.upgrades import Upgrade


class ReviewHorizon(models.TextChoices):
    IMMEDIATE = "immediate", "Immediate Review (0-24 hours)"
    SHORT_TERM = "short_term", "Short-term Review (1-7 days)"
    LONG_TERM = "long_term", "Long-term Review (1-4 weeks)"


# When each review falls due after completion, and its checklist, in the playbook's words.
REVIEW_SPECS: dict[str, tuple[timedelta, list[str]]] = {
    ReviewHorizon.IMMEDIATE: (
        timedelta(hours=24),
        [
            "System Health: Verify system stability",
            "User Impact: Assess user impact",
            "Issues: Document any issues",
            "Lessons Learned: Note lessons learned",
        ],
    ),
    ReviewHorizon.SHORT_TERM: (
        timedelta(days=7),
        [
            "Performance: Analyze performance metrics",
            "User Feedback: Review user feedback",
            "Issues: Resolve any issues",
            "Documentation: Update documentation",
        ],
    ),
    ReviewHorizon.LONG_TERM: (
        timedelta(weeks=4),
        [
            "Success Metrics: Measure success metrics",
            "Process Improvement: Identify improvements",
            "Training: Update training materials",
            "Procedures: Refine procedures",
        ],
    ),
}


class ReviewStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class PostUpgradeReview(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="reviews")
    horizon = models.CharField(max_length=20, choices=ReviewHorizon.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    due_at = models.DateTimeField(db_index=True)
    status = models.CharField(
        max_length=10, choices=ReviewStatus.choices, default=ReviewStatus.OPEN
    )
    items = models.JSONField(default=list, help_text='[{"text": ..., "done": bool}]')
    notes = models.TextField(blank=True)
    lessons_learned = models.TextField(blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    due_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    overdue_reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["upgrade", "horizon"], name="one_review_per_horizon")
        ]

    def __str__(self) -> str:
        return f"{self.get_horizon_display()} of upgrade {self.upgrade_id}"

    @property
    def is_overdue(self) -> bool:
        return self.status == ReviewStatus.OPEN and self.due_at < timezone.now()


class FollowUpAction(models.Model):
    review = models.ForeignKey(
        PostUpgradeReview, on_delete=models.CASCADE, related_name="follow_ups"
    )
    title = models.CharField(max_length=300)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="follow_ups"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["done", "due_at", "id"]

    def __str__(self) -> str:
        return self.title
