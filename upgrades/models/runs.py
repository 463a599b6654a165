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
    # Its worker died (or it was stopped) while it changed the target: a person decides.
    INTERRUPTED = "interrupted", "Interrupted — outcome unknown"


ACTIVE_RUN_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
# Run kinds that change the target: carried out at most once. Checks are read-only and are
# carried out at least once (a check whose worker died is queued again).
CHANGING_RUN_KINDS = frozenset({RunKind.DEPLOY, RunKind.ROLLBACK, RunKind.BACKUP})
# Hooks that change the target, whichever kind of run names them.
CHANGING_OPERATIONS = frozenset({"deploy", "rollback", "db_backup", "db_restore"})


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

    pgid = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="The process group of the command the run started last: killed whole on "
        "timeout, cancel and worker death.",
    )  # fmt: skip
    cancel_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="A person asked to stop the run while it ran."
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        help_text="Who decided the outcome of a run whose outcome was unknown.",
    )  # fmt: skip
    resolved_at = models.DateTimeField(null=True, blank=True)

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

    @property
    def changes_target(self) -> bool:
        """Whether the run changes the target (deploy, rollback, restore, backup, or a check
        naming one of their hooks): such a run is never carried out again by itself."""
        return (
            self.kind in CHANGING_RUN_KINDS
            or (self.params or {}).get("operation") in CHANGING_OPERATIONS
        )

    @property
    def outcome_unknown(self) -> bool:
        """A change to the target that was cut off mid-way: it may have half-happened, and a
        release manager decides (check the target, retry, mark it passed or failed)."""
        if self.status == RunStatus.INTERRUPTED:
            return True
        return (
            self.status == RunStatus.CANCELLED
            and self.started_at is not None
            and self.changes_target
        )

    @property
    def key(self) -> str:
        """The idempotency key of this attempt: sent to webhook hooks, given to commands as
        MYCELIA_RUN_KEY."""
        return f"run-{self.pk}-attempt-{self.attempt}"

    @property
    def process_mark(self) -> str:
        """The mark every process of this attempt carries (MYCELIA_RUN_MARK), by which what is
        left of it is found: the key and the moment it was claimed, so that another installation
        on the same machine, whose run ids start at 1 too, never matches."""
        started = f"{self.started_at:%Y%m%dT%H%M%S.%f}" if self.started_at else "unstarted"
        return f"{self.key}@{started}"


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
    # Where the file is, for people and hooks: its path in a filesystem storage, an s3:// URI in
    # an object store (before storage_name existed: the worker's own path).
    path = models.CharField(max_length=1000)
    # Its name in the artifacts storage (upgrades.storage); empty for files written before.
    storage_name = models.CharField(max_length=1000, blank=True, default="")
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name
