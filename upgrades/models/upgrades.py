"""Upgrades, the playbook templates they are made from, their checklists and their timeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from upgrades.models.environments import Environment
from upgrades.models.lifecycle import DeployState, RollbackState


class UpgradeType(models.TextChoices):
    FEATURE_FLAG = "feature_flag", "Feature flag"
    MINOR = "minor", "Minor version"
    MAJOR = "major", "Major version"
    EMERGENCY = "emergency", "Emergency"


class EmergencyKind(models.TextChoices):
    SECURITY_PATCH = "security_patch", "Security patch"
    CRITICAL_BUG_FIX = "critical_bug_fix", "Critical bug fix"


class Risk(models.TextChoices):
    LOW = "low", "Low"
    LOW_MEDIUM = "low_medium", "Low-Medium"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"

    @classmethod
    def rank(cls, value: str) -> int:
        return list(cls.values).index(value)


class RollbackMethod(models.TextChoices):
    FEATURE_FLAG = "feature_flag", "Immediate via feature flags"
    PREVIOUS_VERSION = "previous_version", "Previous version deployment"


# The playbook's "Upgrade Types": purpose, risk and rollback of each.
TYPE_PROFILES: dict[str, dict[str, str]] = {
    UpgradeType.FEATURE_FLAG: {
        "purpose": "Enable/disable features without code changes",
        "risk": Risk.LOW,
        "rollback": RollbackMethod.FEATURE_FLAG,
    },
    UpgradeType.MINOR: {
        "purpose": "Bug fixes, minor features",
        "risk": Risk.LOW_MEDIUM,
        "rollback": RollbackMethod.PREVIOUS_VERSION,
    },
    UpgradeType.MAJOR: {
        "purpose": "Significant features, breaking changes",
        "risk": Risk.HIGH,
        "rollback": RollbackMethod.PREVIOUS_VERSION,
    },
    UpgradeType.EMERGENCY: {
        "purpose": "Critical security fixes",
        "risk": Risk.HIGH,
        "rollback": RollbackMethod.PREVIOUS_VERSION,
    },
}


class StepKind(models.TextChoices):
    MANUAL = "manual", "Manual"
    HTTP_HEALTH = "http_health", "HTTP health"
    STATUS_JSON = "status_json", "Status JSON"
    COMMAND = "command", "Command"
    SLO = "slo", "SLO"
    BACKUP = "backup", "Backup"
    DEPLOY = "deploy", "Deploy"


AUTOMATED_STEP_KINDS = frozenset(
    {
        StepKind.HTTP_HEALTH,
        StepKind.STATUS_JSON,
        StepKind.COMMAND,
        StepKind.SLO,
        StepKind.BACKUP,
        StepKind.DEPLOY,
    }
)


class PhaseStage(models.TextChoices):
    """Where a phase stands relative to the deployment: the gates are drawn between stages."""

    PRE = "pre", "Before deployment"
    DEPLOY = "deploy", "Deployment"
    POST = "post", "After deployment"


class PlaybookTemplate(models.Model):
    """The playbook's procedure for one upgrade type, copied into every new upgrade of it."""

    upgrade_type = models.CharField(max_length=20, choices=UpgradeType.choices)
    emergency_kind = models.CharField(
        max_length=20, choices=EmergencyKind.choices, blank=True, default=""
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    rollback_procedure = models.TextField(blank=True)

    class Meta:
        ordering = ["upgrade_type", "emergency_kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["upgrade_type", "emergency_kind"], name="one_template_per_type"
            )
        ]

    def __str__(self) -> str:
        return self.name


class PlaybookPhase(models.Model):
    template = models.ForeignKey(PlaybookTemplate, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    stage = models.CharField(max_length=10, choices=PhaseStage.choices)

    class Meta:
        ordering = ["template", "order"]
        constraints = [
            models.UniqueConstraint(fields=["template", "order"], name="phase_order_unique")
        ]

    def __str__(self) -> str:
        return f"{self.template} · {self.title}"


class PlaybookStep(models.Model):
    phase = models.ForeignKey(PlaybookPhase, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    section = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    commands = models.TextField(blank=True, help_text="The playbook's commands, for reference.")
    kind = models.CharField(max_length=20, choices=StepKind.choices, default=StepKind.MANUAL)
    operation = models.CharField(
        max_length=30, blank=True, help_text="The environment operation an automated step runs."
    )
    check_config = models.JSONField(
        default=dict,
        blank=True,
        help_text="Check parameters: method, path, expected_status, json_path, condition, "
        "fail_condition, timeout, retries, interval, count, failure_limit.",
    )
    required = models.BooleanField(default=True)

    class Meta:
        ordering = ["phase", "order"]

    def __str__(self) -> str:
        return self.title


class UpgradeStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    MONITORING = "monitoring", "Monitoring"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = frozenset(
    {
        UpgradeStatus.COMPLETED,
        UpgradeStatus.ROLLED_BACK,
        UpgradeStatus.FAILED,
        UpgradeStatus.CANCELLED,
    }
)


class Transition(models.TextChoices):
    """The moves an upgrade can make, each named as the button that makes it."""

    SCHEDULE = "schedule", "Schedule"
    UNSCHEDULE = "unschedule", "Back to draft"
    START = "start", "Start deployment"
    BEGIN_MONITORING = "begin_monitoring", "Deployed: begin monitoring"
    COMPLETE = "complete", "Complete"
    ROLL_BACK = "roll_back", "Mark rolled back"
    FAIL = "fail", "Mark failed"
    CANCEL = "cancel", "Cancel"


TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    Transition.SCHEDULE: (frozenset({UpgradeStatus.DRAFT}), UpgradeStatus.SCHEDULED),
    Transition.UNSCHEDULE: (frozenset({UpgradeStatus.SCHEDULED}), UpgradeStatus.DRAFT),
    Transition.START: (
        frozenset({UpgradeStatus.DRAFT, UpgradeStatus.SCHEDULED}),
        UpgradeStatus.IN_PROGRESS,
    ),
    Transition.BEGIN_MONITORING: (
        frozenset({UpgradeStatus.IN_PROGRESS}),
        UpgradeStatus.MONITORING,
    ),
    Transition.COMPLETE: (
        frozenset({UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING}),
        UpgradeStatus.COMPLETED,
    ),
    Transition.ROLL_BACK: (
        frozenset({UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING}),
        UpgradeStatus.ROLLED_BACK,
    ),
    Transition.FAIL: (
        frozenset({UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING}),
        UpgradeStatus.FAILED,
    ),
    Transition.CANCEL: (
        frozenset({UpgradeStatus.DRAFT, UpgradeStatus.SCHEDULED}),
        UpgradeStatus.CANCELLED,
    ),
}
# Moves that end or abandon work need a written reason.
TRANSITIONS_NEEDING_REASON = frozenset({Transition.ROLL_BACK, Transition.FAIL, Transition.CANCEL})


class ApprovalState(models.TextChoices):
    NOT_REQUIRED = "not_required", "Not required"
    PENDING = "pending", "Pending"
    GO = "go", "Go"
    NO_GO = "no_go", "No-go"


class Upgrade(models.Model):
    upgrade_type = models.CharField("type", max_length=20, choices=UpgradeType.choices)
    emergency_kind = models.CharField(
        max_length=20, choices=EmergencyKind.choices, blank=True, default=""
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="What changes and why, for the team.")
    version_from = models.CharField(max_length=50, blank=True)
    version_to = models.CharField(max_length=50, blank=True)
    flag_key = models.CharField("feature flag", max_length=100, blank=True)
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="upgrades")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_upgrades"
    )
    risk = models.CharField(max_length=20, choices=Risk.choices)
    rollback_method = models.CharField(max_length=20, choices=RollbackMethod.choices)
    window_start = models.DateTimeField("maintenance window start", null=True, blank=True)
    window_minutes = models.PositiveIntegerField(
        "expected duration (minutes)", null=True, blank=True
    )
    status = models.CharField(
        max_length=20, choices=UpgradeStatus.choices, default=UpgradeStatus.DRAFT, db_index=True
    )
    approval = models.CharField(
        max_length=20, choices=ApprovalState.choices, default=ApprovalState.NOT_REQUIRED
    )
    gate_override_reason = models.TextField(blank=True)
    template = models.ForeignKey(
        PlaybookTemplate, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # What the panel knows of the change to the target, kept by the runs that make it.
    deploy_state = models.CharField(
        max_length=10, choices=DeployState.choices, default=DeployState.NONE
    )
    deployed_at = models.DateTimeField(null=True, blank=True)
    deployed_version = models.CharField(
        max_length=50, blank=True, help_text="The version the target reported after the deploy."
    )
    rollback_state = models.CharField(
        max_length=10, choices=RollbackState.choices, default=RollbackState.NONE
    )
    rollback_target = models.CharField(
        max_length=50,
        blank=True,
        help_text="The version or flag state to go back to, recorded before the deploy.",
    )
    cloned_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="clones"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["environment", "status"])]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("upgrades:detail", args=[self.pk])

    # --- facts derived from the type -------------------------------------------------------

    @property
    def purpose(self) -> str:
        return TYPE_PROFILES[self.upgrade_type]["purpose"]

    @property
    def type_label(self) -> str:
        if self.upgrade_type == UpgradeType.EMERGENCY and self.emergency_kind:
            return f"Emergency · {self.get_emergency_kind_display()}"
        return self.get_upgrade_type_display()

    @property
    def change_label(self) -> str:
        if self.upgrade_type == UpgradeType.FEATURE_FLAG:
            return f"flag {self.flag_key}" if self.flag_key else "flag"
        if self.version_from or self.version_to:
            return f"{self.version_from or '?'} → {self.version_to or '?'}"
        return ""

    @property
    def window_end(self):
        if self.window_start and self.window_minutes:
            return self.window_start + timedelta(minutes=self.window_minutes)
        return None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def needs_four_eyes(self) -> bool:
        return self.upgrade_type == UpgradeType.MAJOR

    @property
    def has_deployment_gate(self) -> bool:
        # An emergency may proceed at once; its open steps still block completion.
        return self.upgrade_type != UpgradeType.EMERGENCY

    @property
    def needs_approval_afterwards(self) -> bool:
        return self.upgrade_type == UpgradeType.EMERGENCY

    # --- rules of one row ------------------------------------------------------------------

    def allowed_transitions(self) -> list[str]:
        return [name for name, (sources, _) in TRANSITIONS.items() if self.status in sources]

    def transition_target(self, transition: str) -> str | None:
        sources, target = TRANSITIONS.get(transition, (frozenset(), None))
        return target if self.status in sources else None

    def approval_blocks_start(self) -> str | None:
        """Why a major upgrade may not start yet; None when it may."""
        if not self.needs_four_eyes:
            return None
        if self.approval == ApprovalState.GO:
            return None
        if self.approval == ApprovalState.NO_GO:
            return "The go/no-go decision was no-go: a release manager must record a go first."
        return "A major upgrade needs a go decision from a release manager other than its owner."

    def can_change_checklist(self) -> bool:
        return not self.is_finished

    def stage_refusal(self, stage: str) -> str:
        """Why steps of `stage` cannot be done, skipped or run yet; "" when they can."""
        if stage == PhaseStage.DEPLOY and self.status not in (
            UpgradeStatus.IN_PROGRESS,
            UpgradeStatus.MONITORING,
        ):
            return "deployment steps wait until the deployment has started."
        if stage == PhaseStage.POST and not (
            self.status == UpgradeStatus.MONITORING
            or self.deploy_state in (DeployState.PASSED, DeployState.OUTSIDE)
        ):
            return "post-deployment steps wait until the deploy has succeeded."
        return ""


class StepStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Not doing"


class UpgradePhase(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="phases")
    order = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    stage = models.CharField(max_length=10, choices=PhaseStage.choices)

    class Meta:
        ordering = ["upgrade", "order"]

    def __str__(self) -> str:
        return self.title


class ChecklistStep(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="steps")
    phase = models.ForeignKey(UpgradePhase, on_delete=models.CASCADE, related_name="steps")
    order = models.PositiveIntegerField()
    section = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    commands = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=StepKind.choices, default=StepKind.MANUAL)
    operation = models.CharField(max_length=30, blank=True)
    check_config = models.JSONField(default=dict, blank=True)
    required = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=StepStatus.choices, default=StepStatus.OPEN)
    note = models.TextField(blank=True)
    skip_reason = models.TextField(blank=True)
    override_reason = models.TextField(
        blank=True, help_text="Why the step was accepted despite a failed automated check."
    )
    evidence_url = models.URLField(blank=True, max_length=500)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_steps",
    )
    due_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    evidence_run = models.ForeignKey(
        "upgrades.CheckRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The run that ticked this step.",
    )

    class Meta:
        ordering = ["phase__order", "order"]
        indexes = [models.Index(fields=["upgrade", "status"])]

    def __str__(self) -> str:
        return self.title

    def move_to(
        self,
        status: str,
        *,
        by: Any,
        run: Any = None,
        note: str = "",
        skip_reason: str = "",
        override_reason: str = "",
    ) -> str:
        """Put the step in `status`, keeping who closed it, when, and why; returns where it
        was. The caller saves and records the event."""
        previous = self.status
        closed = status != StepStatus.OPEN
        self.status = status
        self.completed_by = by if closed else None
        self.completed_at = timezone.now() if closed else None
        self.skip_reason = skip_reason if status == StepStatus.SKIPPED else ""
        self.evidence_run = run if status == StepStatus.DONE else None
        self.override_reason = override_reason if status == StepStatus.DONE else ""
        if note or not closed:
            # A reopened step starts with no note; the timeline keeps the old one.
            self.note = note
        return previous

    @property
    def is_automated(self) -> bool:
        return self.kind in AUTOMATED_STEP_KINDS

    @property
    def accepted_despite_failure(self) -> bool:
        return self.status == StepStatus.DONE and bool(self.override_reason)

    @property
    def is_closed(self) -> bool:
        return self.status != StepStatus.OPEN

    @property
    def is_overdue(self) -> bool:
        return (
            self.status == StepStatus.OPEN
            and self.due_at is not None
            and self.due_at < timezone.now()
        )


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    TRANSITION = "transition", "Status changed"
    STEP_DONE = "step_done", "Step done"
    STEP_REOPENED = "step_reopened", "Step reopened"
    STEP_SKIPPED = "step_skipped", "Step skipped"
    STEP_UPDATED = "step_updated", "Step details changed"
    GATE_OVERRIDDEN = "gate_overridden", "Gate overridden"
    APPROVAL = "approval", "Go/no-go decision"
    RISK_CHANGED = "risk_changed", "Risk changed"
    UPDATED = "updated", "Details changed"
    RUN_REQUESTED = "run_requested", "Run requested"
    RUN_FINISHED = "run_finished", "Run finished"
    ROLLBACK = "rollback", "Rollback"
    MONITORING = "monitoring", "Monitoring"
    GUARD_TRIPPED = "guard_tripped", "Guard tripped"
    REVIEW = "review", "Review"
    DEPLOYMENT = "deployment", "Deployment"
    CLONED = "cloned", "Tried again"


class UpgradeEvent(models.Model):
    """One line of an upgrade's append-only timeline: who did what, when, from what to what."""

    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    step = models.ForeignKey(
        ChecklistStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="events"
    )
    from_value = models.CharField(max_length=100, blank=True)
    to_value = models.CharField(max_length=100, blank=True)
    message = models.TextField(blank=True)
    # Outbox bookkeeping, not part of the record: when the reactions of other apps to this
    # event (status page, message drafts, reviews) were carried out.
    reacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(reacted_at__isnull=True), name="event_unreacted"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        # Append-only: an event, once written, is never rewritten.
        if not self._state.adding:
            raise ValueError("Timeline events are append-only.")
        super().save(*args, **kwargs)


class ApprovalDecision(models.Model):
    upgrade = models.ForeignKey(Upgrade, on_delete=models.CASCADE, related_name="decisions")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    decision = models.CharField(
        max_length=10, choices=[(ApprovalState.GO, "Go"), (ApprovalState.NO_GO, "No-go")]
    )
    reason = models.TextField()
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} by {self.decided_by_id}"


class CommonIssue(models.Model):
    """The playbook's "Common Issues and Solutions", offered next to a check that failed.
    Administrators edit them under Set-up; `applies_to` names the step kinds and actions they match."""

    title = models.CharField(max_length=200)
    issue = models.CharField(max_length=300)
    symptoms = models.TextField(blank=True)
    solution = models.TextField(help_text="One step a line.")
    applies_to = models.JSONField(
        default=list, help_text='Step kinds and actions, e.g. ["http_health", "deploy"].'
    )
    actions = models.JSONField(
        default=list,
        blank=True,
        help_text='One-click actions offered: "rollback_flag", "rollback_version", "log_tail".',
    )
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return f"{self.title}: {self.issue}"

    @property
    def solution_steps(self) -> list[str]:
        return [line for line in self.solution.splitlines() if line.strip()]
