"""Setting the product up on its own pages: the history of every set-up change, invitations to
sign up, service accounts for pipelines, and the dry runs ("tests") of an environment's hooks.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from upgrades.models.environments import Environment, EnvironmentOperation
from upgrades.models.runs import ACTIVE_RUN_STATUSES, RunStatus


class SetupSubject(models.TextChoices):
    ENVIRONMENT = "environment", "Environment"
    HOOK = "hook", "Hook"
    SLO = "slo", "SLO threshold"
    TEMPLATE = "template", "Playbook template"
    PHASE = "phase", "Playbook phase"
    STEP = "step", "Playbook step"
    COMMON_ISSUE = "common_issue", "Common issue"
    PERSON = "person", "Person"
    INVITATION = "invitation", "Invitation"
    SERVICE_ACCOUNT = "service_account", "Service account"
    TOKEN = "token", "API token"


class SetupEvent(models.Model):
    """One change to the set-up: who, when, what, from -> to. Append-only; secrets are never
    written here (a changed secret reads "set" or "cleared")."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subject = models.CharField(max_length=20, choices=SetupSubject.choices)
    object_id = models.PositiveBigIntegerField(null=True, blank=True)
    label = models.CharField(max_length=300, help_text="What was changed, in words.")
    environment = models.ForeignKey(
        Environment, on_delete=models.SET_NULL, null=True, blank=True, related_name="setup_events"
    )
    verb = models.CharField(max_length=40, help_text="created, changed, removed, invited, ...")
    field = models.CharField(max_length=100, blank=True)
    from_value = models.TextField(blank=True)
    to_value = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subject", "object_id"])]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.label} {self.verb}"


class InvitedRole(models.TextChoices):
    ADMINISTRATOR = "administrator", "Administrator"
    RELEASE_MANAGER = "release_manager", "Release manager"
    STAKEHOLDER = "stakeholder", "Stakeholder"


class Invitation(models.Model):
    """A sign-up link sent by email. Only a SHA-256 of its token is kept; it works once, until
    `expires_at`, unless called off."""

    email = models.EmailField()
    role = models.CharField(max_length=20, choices=InvitedRole.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Invitation for {self.email}"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "called_off"
        if self.expires_at <= now:
            return "expired"
        return "pending"

    @property
    def state_label(self) -> str:
        return {
            "accepted": "Signed up",
            "called_off": "Called off",
            "expired": "Expired",
            "pending": "Waiting",
        }[self.state()]


class ServiceAccount(models.Model):
    """A user without a password that a pipeline acts as, through its API tokens."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account"
    )
    description = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return self.user.get_username()


class HookTest(models.Model):
    """A dry run of one hook on a worker, asked for from the set-up pages."""

    hook = models.ForeignKey(EnvironmentOperation, on_delete=models.CASCADE, related_name="tests")
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    nudged_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    output = models.TextField(blank=True)
    measured = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Test #{self.pk} of {self.hook}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES
