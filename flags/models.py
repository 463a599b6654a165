"""Feature flags: per-environment state, targeting rules, an append-only event timeline, and
the API tokens that read and change them."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

FLAG_KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
flag_key_validator = RegexValidator(
    re.compile(FLAG_KEY_PATTERN),
    "Use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit.",
    code="invalid_key",
)
# Paths under /flags/ and /api/feature-flags/ that a flag key would shadow.
RESERVED_FLAG_KEYS = frozenset({"new", "tokens", "enable", "disable"})


def validate_flag_key(value: str) -> None:
    flag_key_validator(value)
    if value in RESERVED_FLAG_KEYS:
        raise ValidationError(f"'{value}' is reserved; choose another key.", code="reserved")


def tags_normalise(raw: str | list[str] | tuple[str, ...]) -> str:
    """Comma-separated, lowercase, unique, in the order given."""
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: list[str] = []
    for part in parts:
        tag = str(part).strip().lower()
        if tag and tag not in seen:
            seen.append(tag)
    return ",".join(seen)


class FlagEnvironment(models.Model):
    """Flags' own list of environments; the upgrades app keeps it in sync by key."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_confirmation(self) -> bool:
        return self.key == "production"


class Flag(models.Model):
    key = models.CharField(max_length=100, unique=True, validators=[validate_flag_key])
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_flags",
    )
    tags = models.CharField(max_length=200, blank=True, help_text="Comma-separated")
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def get_absolute_url(self) -> str:
        return reverse("flags:detail", args=[self.key])

    @property
    def tag_list(self) -> list[str]:
        return [t for t in self.tags.split(",") if t]

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class FlagState(models.Model):
    """One flag in one environment. `version` goes up by one with every recorded change."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="states")
    environment = models.ForeignKey(
        FlagEnvironment, on_delete=models.CASCADE, related_name="states"
    )
    enabled = models.BooleanField(default=False)
    rollout_percentage = models.PositiveSmallIntegerField(
        default=100, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    # [{"attribute": "country", "operator": "in", "values": ["nl"], "variant": true}, ...]
    rules = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flag", "environment"], name="flag_state_unique"),
            models.CheckConstraint(
                condition=models.Q(rollout_percentage__lte=100),
                name="flag_state_rollout_at_most_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id}@{self.environment_id}: {'on' if self.enabled else 'off'}"

    def snapshot(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rollout_percentage": self.rollout_percentage,
            "rules": self.rules,
        }


class Via(models.TextChoices):
    UI = "ui", "Web UI"
    CLI = "cli", "Command line"
    API = "api", "API"
    ROLLBACK = "rollback", "Rollback"
    GUARD = "guard", "Guard"
    UPGRADE = "upgrade", "Upgrade run"


class EventKind(models.TextChoices):
    CREATED = "created", "Created"
    ENABLED = "enabled", "Turned on"
    DISABLED = "disabled", "Turned off"
    TARGETING = "targeting", "Targeting changed"
    ARCHIVED = "archived", "Archived"


class FlagEvent(models.Model):
    """Append-only: rows are written by services and never changed."""

    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="events")
    environment = models.ForeignKey(
        FlagEnvironment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
    )
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="flag_events",
    )
    via = models.CharField(max_length=20, choices=Via.choices)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    # Who outside the flags app caused this, as a plain link: e.g. "/upgrades/12/" for the
    # upgrade whose deploy, rollback or guard flipped the flag.
    source_url = models.CharField(max_length=200, blank=True, db_index=True)
    source_label = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["flag", "-at"], name="flag_event_flag_at")]

    def __str__(self) -> str:
        return f"{self.flag_id} {self.kind} via {self.via}"


class FlagRevision(models.Model):
    """A single row whose `revision` changes with every flag change, in the same transaction.

    Evaluating processes read it (one cheap query) to know whether their cached definitions
    are still current. Random rather than a counter, so a rolled-back change can never leave
    two different sets of definitions under one revision.
    """

    revision = models.CharField(max_length=32)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.revision


class FlagEvaluationCount(models.Model):
    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="evaluation_counts")
    environment = models.ForeignKey(
        FlagEnvironment, on_delete=models.CASCADE, related_name="evaluation_counts"
    )
    hour = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["flag", "environment", "hour"], name="flag_evaluation_count_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.flag_id}@{self.environment_id} {self.hour:%Y-%m-%d %H}h: {self.count}"


class ApiTokenScope(models.TextChoices):
    USER = "user", "Acts as you"
    EVALUATION = "evaluation", "Evaluation only (OFREP, one environment)"


class ApiToken(models.Model):
    """Only a SHA-256 of the token is stored; `prefix` lets people tell tokens apart."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="flag_api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    token_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=20, choices=ApiTokenScope.choices)
    environment = models.ForeignKey(
        FlagEnvironment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="api_tokens",
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope="user", environment__isnull=True)
                | models.Q(scope="evaluation", environment__isnull=False),
                name="api_token_environment_matches_scope",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
