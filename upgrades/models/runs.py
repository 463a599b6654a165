"""Work the Celery workers carry out for an upgrade: checks, backups, deploys and rollbacks.

The run row is the truth; a broker message is only a nudge to look at it. Workers claim a run
with a conditional update, so a run redelivered or swept twice is still carried out once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from upgrades.models.upgrades import ChecklistStep, Upgrade


class RunKind(models.TextChoices):
    CHECK = "check", "Check"
    BACKUP = "backup", "Backup"
    DEPLOY = "deploy", "Deploy"
    ROLLBACK = "rollback", "Rollback"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    INCONCLUSIVE = "inconclusive", "Inconclusive: needs a decision"
    ERROR = "error", "Error"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


class CheckRun(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="runs")
    step = models.ForeignKey(
        ChecklistStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    kind = models.CharField(max_length=20, choices=RunKind.choices, default=RunKind.CHECK)
    # What is carried out: a step kind (http_health, command, ...) or an action name.
    action = models.CharField(max_length=40)
    title = models.CharField(max_length=300)
    params = models.JSONField(default=dict, blank=True)
    batch = models.CharField(max_length=40, blank=True, db_index=True)

    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    attempt = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    nudged_at = models.DateTimeField(
        null=True, blank=True, help_text="When a message last went to the broker for this run."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)

    measured = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    output = models.TextField(blank=True)
    output_truncated = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["upgrade", "status"])]

    def __str__(self) -> str:
        return f"Run #{self.pk} {self.title}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES

    @property
    def waiting_for_broker(self) -> bool:
        return self.status == RunStatus.QUEUED and self.nudged_at is None


class ArtifactKind(models.TextChoices):
    CONFIG_ARCHIVE = "config_archive", "Configuration archive"
    LOG_TAIL = "log_tail", "Log tail"
    DATABASE_BACKUP = "db_backup", "Database backup"


class Artifact(models.Model):
    """A file a run produced (a backup), kept for download and for restores."""

    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="artifacts")
    run = models.ForeignKey(
        CheckRun, on_delete=models.SET_NULL, null=True, related_name="artifacts"
    )
    kind = models.CharField(max_length=20, choices=ArtifactKind.choices)
    name = models.CharField(max_length=300)
    path = models.CharField(max_length=1000)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
