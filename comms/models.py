"""Messages to stakeholders, their deliveries, and the status page's own record of upgrades.

comms never reads the upgrades app: an upgrade is known here by its id and the plain values the
upgrades services pass in (see comms/services/__init__.py). Statuses are TextChoices; rows that
record history (CommsEvent, StatusUpdate) are append-only.
"""

from __future__ import annotations

import secrets
import string

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

_ID_ALPHABET = string.ascii_lowercase + string.digits


def public_id() -> str:
    """A Statuspage-style opaque id (12 lowercase letters and digits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def new_token() -> str:
    return secrets.token_urlsafe(32)


# --- templates, audiences, channels ----------------------------------------------------------


class AudienceKey(models.TextChoices):
    # The playbook's "Stakeholder Notification": internal team, external (status page), users.
    INTERNAL = "internal", "Internal team"
    EXTERNAL = "external", "External (status page and its subscribers)"
    USERS = "users", "Users"


class Audience(models.Model):
    key = models.CharField(max_length=20, choices=AudienceKey.choices, unique=True)
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class TemplateKey(models.TextChoices):
    PRE_UPGRADE = "pre_upgrade", "Pre-upgrade communication"
    PROGRESS = "progress", "Upgrade progress update"
    POST_UPGRADE = "post_upgrade", "Post-upgrade communication"
    # Sent to status page subscribers without a draft, when a maintenance window moves or
    # starts or ends.
    WINDOW_MOVED = "window_moved", "Maintenance window moved"
    WINDOW_STARTED = "window_started", "Maintenance window started"
    WINDOW_ENDED = "window_ended", "Maintenance window ended"
    # Sent to status page subscribers once, about an hour before a scheduled window starts.
    WINDOW_REMINDER = "window_reminder", "Maintenance window starts soon"
    # Sent to one person (a review's owner) through the internal team's channels.
    REMINDER = "reminder", "Reminder"


DRAFT_TEMPLATE_KEYS = frozenset(
    {TemplateKey.PRE_UPGRADE, TemplateKey.PROGRESS, TemplateKey.POST_UPGRADE}
)
# Subscriber notices: they go to the subscribers' channels only.
NOTICE_TEMPLATE_KEYS = frozenset(
    {
        TemplateKey.WINDOW_MOVED,
        TemplateKey.WINDOW_STARTED,
        TemplateKey.WINDOW_ENDED,
        TemplateKey.WINDOW_REMINDER,
    }
)


class MessageTemplate(models.Model):
    """Django template syntax ({{ version_or_feature }}), rendered as plain text."""

    key = models.CharField(max_length=30, choices=TemplateKey.choices, unique=True)
    name = models.CharField(max_length=100)
    subject_template = models.CharField(max_length=300)
    body_template = models.TextField()
    audiences = models.ManyToManyField(Audience, blank=True, related_name="templates")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook (JSON POST)"
    SLACK = "slack", "Slack incoming webhook"
    TEAMS = "teams", "Microsoft Teams incoming webhook"


# Kinds that POST a JSON body to a URL (each in its own format: see comms/services/_outgoing.py).
WEBHOOK_KINDS = frozenset({ChannelKind.WEBHOOK, ChannelKind.SLACK, ChannelKind.TEAMS})


class Channel(models.Model):
    """Where an audience's messages go: a list of addresses, a webhook, or the subscribers."""

    audience = models.ForeignKey(Audience, on_delete=models.PROTECT, related_name="channels")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    recipients = models.TextField(
        blank=True, help_text="Email addresses, one per line or separated by commas."
    )
    to_subscribers = models.BooleanField(
        default=False, help_text="Email the confirmed status page subscribers (email channels)."
    )
    url = models.URLField(max_length=500, blank=True, help_text="Webhook URL (webhook channels).")
    secret_header_name = models.CharField(max_length=100, blank=True)
    secret_header_value = models.CharField(max_length=500, blank=True)
    environment_keys = models.JSONField(
        default=list, blank=True, help_text="Only messages about these environments; empty: all."
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["audience_id", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def is_webhook(self) -> bool:
        return self.kind in WEBHOOK_KINDS

    def recipient_list(self) -> list[str]:
        if self.kind in WEBHOOK_KINDS:
            return [self.url] if self.url else []
        parts = self.recipients.replace(",", "\n").split()
        return list(dict.fromkeys(p.strip() for p in parts if p.strip()))

    def covers(self, environment_key: str) -> bool:
        return not self.environment_keys or environment_key in self.environment_keys


# --- messages and deliveries -----------------------------------------------------------------


class MessageStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SENDING = "sending", "Sending"
    # Sent: at least one delivery went out, and none failed.
    SENT = "sent", "Sent"
    PARTIALLY_FAILED = "partially_failed", "Partially failed"
    FAILED = "failed", "Failed"
    # Nothing to deliver it through (no enabled channel of its audiences covers its
    # environment, or the channels had no recipients): `not_sent_reason` says which.
    NOT_SENT = "not_sent", "Not sent"
    # A draft someone decided not to send, with their reason; kept in the history.
    DISCARDED = "discarded", "Discarded"


class MessageMoment(models.TextChoices):
    """The playbook's moments a message is drafted at (the upgrades app passes the value)."""

    SCHEDULED = "scheduled", "Upgrade scheduled"
    STARTED = "started", "Upgrade started"
    PHASE = "phase", "Phase finished"
    ROLLBACK = "rollback", "Rollback started"
    ENDED = "ended", "Upgrade ended"


class Message(models.Model):
    upgrade_id = models.PositiveBigIntegerField(db_index=True)
    upgrade_title = models.CharField(max_length=300, blank=True)
    upgrade_url = models.CharField(max_length=500, blank=True)
    environment_key = models.CharField(max_length=100, blank=True, db_index=True)
    template_key = models.CharField(max_length=30, choices=TemplateKey.choices)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    audiences = models.ManyToManyField(Audience, blank=True, related_name="messages")
    status = models.CharField(
        max_length=20, choices=MessageStatus.choices, default=MessageStatus.DRAFT, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # A template that would not render leaves the draft standing with the reason here (and the
    # values it was given, to render again once the template is fixed); it cannot be sent
    # until it renders or someone writes the text.
    render_error = models.TextField(blank=True)
    render_context = models.JSONField(default=dict, blank=True)
    moment = models.CharField(max_length=20, choices=MessageMoment.choices, blank=True)
    # Why a message went out to no one (status not_sent), in words for the messages pages.
    not_sent_reason = models.CharField(max_length=500, blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    discarded_at = models.DateTimeField(null=True, blank=True)
    discard_reason = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.subject

    def get_absolute_url(self) -> str:
        return reverse("comms:message_detail", args=[self.pk])

    @property
    def is_draft(self) -> bool:
        return self.status == MessageStatus.DRAFT

    @property
    def is_sending(self) -> bool:
        return self.status == MessageStatus.SENDING

    @property
    def is_discarded(self) -> bool:
        return self.status == MessageStatus.DISCARDED

    @property
    def is_not_sent(self) -> bool:
        return self.status == MessageStatus.NOT_SENT


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One message to one recipient through one channel: sent at most once (the constraint and
    the queued -> sending claim see to that)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="deliveries")
    subscriber = models.ForeignKey(
        "Subscriber", on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    recipient = models.CharField(max_length=500)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "channel", "recipient"], name="comms_delivery_once"
            )
        ]

    def __str__(self) -> str:
        return f"Delivery #{self.pk} to {self.recipient}"


class CommsEnvironmentSettings(models.Model):
    environment_key = models.CharField(max_length=100, unique=True)
    auto_send = models.BooleanField(
        default=False, help_text="Send drafts as soon as they are made, without a manager."
    )

    class Meta:
        verbose_name_plural = "comms environment settings"

    def __str__(self) -> str:
        return f"{self.environment_key}: auto send {'on' if self.auto_send else 'off'}"


# --- the status page's mirror of upgrades ----------------------------------------------------


class UpgradeLifecycle(models.TextChoices):
    """The upgrade statuses the upgrades app passes in (its own values)."""

    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    MONITORING = "monitoring", "Monitoring"
    COMPLETED = "completed", "Completed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


HIDDEN_LIFECYCLES = frozenset({UpgradeLifecycle.DRAFT, UpgradeLifecycle.CANCELLED})


class MaintenanceStatus(models.TextChoices):
    # Statuspage's scheduled maintenance statuses, exactly.
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    VERIFYING = "verifying", "Verifying"
    COMPLETED = "completed", "Completed"


ACTIVE_MAINTENANCE = frozenset({MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING})


class StatusMaintenance(models.Model):
    """One upgrade as the status page shows it: a Statuspage scheduled maintenance."""

    upgrade_id = models.PositiveBigIntegerField(unique=True)
    public_id = models.CharField(max_length=12, unique=True, default=public_id)
    title = models.CharField(max_length=300)
    type_label = models.CharField(max_length=100, blank=True)
    environment_key = models.CharField(max_length=100, db_index=True)
    environment_name = models.CharField(max_length=200)
    lifecycle = models.CharField(max_length=20, choices=UpgradeLifecycle.choices)
    status = models.CharField(max_length=20, choices=MaintenanceStatus.choices)
    is_public = models.BooleanField(default=False, db_index=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    progress_percent = models.PositiveSmallIntegerField(default=0)
    phase_title = models.CharField(max_length=300, blank=True)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Each subscriber notice about the window goes out once.
    start_notified_at = models.DateTimeField(null=True, blank=True)
    end_notified_at = models.DateTimeField(null=True, blank=True)
    # The reminder an hour before the window (claimed with a conditional update; cleared when
    # the window moves, so the new time gets its own).
    reminder_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        # The public page and its JSON read bounded slices: active, upcoming by window, recent
        # by completion, newest by creation; each slice walks one of these.
        indexes = [
            models.Index(
                fields=["is_public", "status", "window_start"], name="comms_maint_upcoming"
            ),
            models.Index(fields=["is_public", "completed_at"], name="comms_maint_recent"),
            models.Index(fields=["is_public", "created_at"], name="comms_maint_created"),
            models.Index(fields=["is_public", "updated_at"], name="comms_maint_updated"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_MAINTENANCE

    @property
    def public_label(self) -> str:
        """The state in the public's words: a rolled-back or failed upgrade's window "Ended"
        (true, and no more: an incident, if any, is a release manager's to publish)."""
        if (
            self.status == MaintenanceStatus.COMPLETED
            and self.lifecycle != UpgradeLifecycle.COMPLETED
        ):
            return "Ended"
        return self.get_status_display()


class IncidentStatus(models.TextChoices):
    # Statuspage's incident statuses, exactly.
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    POSTMORTEM = "postmortem", "Postmortem"


class Impact(models.TextChoices):
    NONE = "none", "None"
    MINOR = "minor", "Minor"
    MAJOR = "major", "Major"
    CRITICAL = "critical", "Critical"


class StatusIncident(models.Model):
    """What went wrong with an upgrade, as a Statuspage incident.

    A rollback or failure drafts one (published_at empty): nobody outside sees it until a
    release manager publishes it (perhaps after editing its words and impact) or dismisses it.
    Published, it shows until resolved."""

    maintenance = models.OneToOneField(
        StatusMaintenance, on_delete=models.CASCADE, related_name="incident"
    )
    public_id = models.CharField(max_length=12, unique=True, default=public_id)
    name = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=IncidentStatus.choices)
    impact = models.CharField(max_length=10, choices=Impact.choices)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The draft's first update, posted when it is published.
    body = models.TextField(blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    dismiss_reason = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["published_at", "resolved_at"], name="comms_incident_public"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_resolved(self) -> bool:
        return self.status in (IncidentStatus.RESOLVED, IncidentStatus.POSTMORTEM)

    @property
    def is_draft(self) -> bool:
        return self.published_at is None and self.dismissed_at is None

    @property
    def is_dismissed(self) -> bool:
        return self.dismissed_at is not None

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    @property
    def state_label(self) -> str:
        if self.is_dismissed:
            return "Dismissed"
        if self.is_draft:
            return "Draft"
        return self.get_status_display()


class StatusUpdate(models.Model):
    """Append-only stream of what was posted about one upgrade (Statuspage incident_updates)."""

    maintenance = models.ForeignKey(
        StatusMaintenance, on_delete=models.CASCADE, related_name="updates"
    )
    incident = models.ForeignKey(
        StatusIncident, on_delete=models.CASCADE, null=True, blank=True, related_name="updates"
    )
    public_id = models.CharField(max_length=12, unique=True, default=public_id)
    status = models.CharField(max_length=20)  # maintenance or incident status at the time
    body = models.TextField()
    message = models.ForeignKey(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.status}: {self.body[:60]}"

    @property
    def status_label(self) -> str:
        """Statuspage's value in words: in_progress -> "In progress"."""
        return self.status.replace("_", " ").capitalize()


class ComponentStatus(models.TextChoices):
    # Statuspage's component statuses, exactly.
    OPERATIONAL = "operational", "Operational"
    DEGRADED_PERFORMANCE = "degraded_performance", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"
    UNDER_MAINTENANCE = "under_maintenance", "Under maintenance"


class StatusEnvironment(models.Model):
    """An environment as the status page knows it: its name and whether it is shown. The
    upgrades app passes the setting with every sync and every health refresh; an environment
    it never named is not shown."""

    environment_key = models.CharField(max_length=100, unique=True)
    environment_name = models.CharField(max_length=200)
    is_public = models.BooleanField(default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["environment_name"]

    def __str__(self) -> str:
        return f"{self.environment_name} ({'shown' if self.is_public else 'not shown'})"


class EnvironmentHealth(models.Model):
    """The last look at one environment's /ops/status.json."""

    environment_key = models.CharField(max_length=100, unique=True)
    environment_name = models.CharField(max_length=200)
    checked_at = models.DateTimeField(default=timezone.now)
    error = models.CharField(max_length=1000, blank=True)
    version = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["environment_name"]

    def __str__(self) -> str:
        return self.environment_name


class ComponentHealth(models.Model):
    """One service of one environment, as a Statuspage component."""

    environment_key = models.CharField(max_length=100)
    environment_name = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    public_id = models.CharField(max_length=12, unique=True, default=public_id)
    status = models.CharField(max_length=30, choices=ComponentStatus.choices)
    reported_status = models.CharField(max_length=100, blank=True)
    figures = models.JSONField(default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["environment_name", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["environment_key", "name"], name="comms_component_once")
        ]

    def __str__(self) -> str:
        return f"{self.environment_name} · {self.name}"

    @property
    def filter_key(self) -> str:
        return f"{self.environment_key}:{self.name}"


class ComponentSample(models.Model):
    """One look at one service (each health refresh writes one per service). Kept a day or two:
    the scheduler rolls them up into ComponentDay and prunes them; pages never read them."""

    environment_key = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=30, choices=ComponentStatus.choices)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.environment_key}:{self.name} {self.status} at {self.at}"


class ComponentDay(models.Model):
    """One service's day (UTC), rolled up from its samples by the scheduler: how many looks saw
    it in each state. The uptime bars read these, 90 per service."""

    environment_key = models.CharField(max_length=100)
    name = models.CharField(max_length=200)
    day = models.DateField()
    samples = models.PositiveIntegerField(default=0)
    degraded = models.PositiveIntegerField(default=0)
    partial = models.PositiveIntegerField(default=0)
    major = models.PositiveIntegerField(default=0)
    maintenance = models.PositiveIntegerField(default=0)
    rolled_up_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["environment_key", "name", "day"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment_key", "name", "day"], name="comms_component_day_once"
            )
        ]
        indexes = [models.Index(fields=["day"], name="comms_component_day")]

    def __str__(self) -> str:
        return f"{self.environment_key}:{self.name} {self.day}"

    @property
    def uptime(self) -> float | None:
        """Statuspage's weighting: a major outage counts whole, a partial outage 30%;
        degraded performance and maintenance are not downtime."""
        if not self.samples:
            return None
        return max(0.0, 1 - (self.major + 0.3 * self.partial) / self.samples)

    @property
    def level(self) -> str:
        if not self.samples:
            return "none"
        if self.major:
            return "major"
        if self.partial:
            return "partial"
        if self.degraded:
            return "degraded"
        return "operational"


# --- subscribers -----------------------------------------------------------------------------


class Subscriber(models.Model):
    email = models.EmailField(unique=True)
    token = models.CharField(max_length=64, unique=True, default=new_token)
    environment_keys = models.JSONField(default=list, blank=True)
    component_keys = models.JSONField(
        default=list, blank=True, help_text='"environment_key:service" entries; empty: all.'
    )
    created_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None

    def wants(self, environment_key: str) -> bool:
        """Does a message about this environment concern the subscriber's choices?"""
        if not self.environment_keys and not self.component_keys:
            return True
        if environment_key in self.environment_keys:
            return True
        return any(k.split(":", 1)[0] == environment_key for k in self.component_keys)


# --- audit and liveness ----------------------------------------------------------------------


class CommsEvent(models.Model):
    """Append-only: every state change in comms, written in the change's own transaction."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=40)
    subject_type = models.CharField(max_length=30)
    subject_id = models.PositiveBigIntegerField(null=True, blank=True)
    upgrade_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    from_state = models.CharField(max_length=40, blank=True)
    to_state = models.CharField(max_length=40, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["subject_type", "subject_id"], name="comms_event_subject")]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_type}#{self.subject_id}"


class WorkerHeartbeat(models.Model):
    """A Celery worker said it was alive (at start, and each time it ran ops_heartbeat_task,
    which beat schedules: so `beat_at` also proves the scheduler runs)."""

    worker = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-seen_at"]

    def __str__(self) -> str:
        return self.worker
