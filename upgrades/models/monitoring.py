"""The monitoring phase: a window during which the scheduler samples the environment's health
and SLO figures, and a guard that rolls a feature flag back when they keep failing."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from upgrades.models.upgrades import Upgrade


class MonitoringWindow(models.Model):
    upgrade = models.OneToOneField(Upgrade, on_delete=models.CASCADE, related_name="monitoring")
    started_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    interval_seconds = models.PositiveIntegerField(default=300)
    failure_limit = models.PositiveIntegerField(
        default=3, help_text="Consecutive failed samples that trip the guard."
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_sample_at = models.DateTimeField(default=timezone.now, db_index=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_reason = models.CharField(max_length=300, blank=True)
    guard_tripped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Monitoring of {self.upgrade_id}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def progress_percent(self) -> int:
        total = (self.ends_at - self.started_at).total_seconds()
        done = ((self.ended_at or timezone.now()) - self.started_at).total_seconds()
        return max(0, min(100, round(100 * done / total))) if total > 0 else 100


class SamplePhase(models.TextChoices):
    BASELINE = "baseline", "Pre-upgrade baseline"
    WINDOW = "window", "Monitoring window"


class MonitoringSample(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="samples")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    phase = models.CharField(max_length=10, choices=SamplePhase.choices, default=SamplePhase.WINDOW)
    healthy = models.BooleanField()
    health_status_code = models.PositiveIntegerField(null=True, blank=True)
    health_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error_rate = models.FloatField(null=True, blank=True)
    latency_p95_ms = models.FloatField(null=True, blank=True)
    availability = models.FloatField(null=True, blank=True)
    slo_ok = models.BooleanField(null=True)
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {'ok' if self.passed else 'failing'}"

    @property
    def passed(self) -> bool:
        return self.healthy and self.slo_ok is not False
