"""Deployment freezes: times when only an emergency upgrade may go ahead, with a reason."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from upgrades.models.environments import Environment


class DeploymentFreeze(models.Model):
    """A freeze on some environments from `starts_at` to `ends_at`; when `weekly`, the same
    span repeats every week (a Friday-afternoon freeze, say)."""

    name = models.CharField(max_length=200)
    reason = models.TextField()
    environments = models.ManyToManyField(Environment, related_name="freezes")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    weekly = models.BooleanField(default=False, help_text="Repeat the same span every week.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="Lifted early by a release manager."
    )

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="freeze_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def covers(self, moment: datetime) -> bool:
        """Whether the freeze is in effect at `moment`."""
        if self.ended_at and self.ended_at <= moment:
            return False
        if moment < self.starts_at:
            return False
        if not self.weekly:
            return moment < self.ends_at
        span = self.ends_at - self.starts_at
        if span >= timedelta(weeks=1):
            return True
        since = (moment - self.starts_at) % timedelta(weeks=1)
        return since < span

    def next_span(self, after: datetime) -> tuple[datetime, datetime] | None:
        """The span in effect at `after`, or the next one to come; None when none will."""
        if self.ended_at and self.ended_at <= after:
            return None
        if not self.weekly:
            return (self.starts_at, self.ends_at) if self.ends_at > after else None
        span = self.ends_at - self.starts_at
        if after <= self.starts_at:
            return self.starts_at, self.ends_at
        weeks = (after - self.starts_at) // timedelta(weeks=1)
        start = self.starts_at + weeks * timedelta(weeks=1)
        if start + span <= after:
            start += timedelta(weeks=1)
        return start, start + span


class FreezeEventKind(models.TextChoices):
    CREATED = "created", "Created"
    LIFTED = "lifted", "Lifted early"


class FreezeEvent(models.Model):
    """One change to a freeze: who made it, when, and what it changed from and to."""

    freeze = models.ForeignKey(DeploymentFreeze, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=FreezeEventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now, db_index=True)
    from_value = models.CharField(max_length=200, blank=True)
    to_value = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.freeze} · {self.get_kind_display()}"
