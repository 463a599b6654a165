from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin

from comms.exceptions import CommsError
from comms.models import (
    Audience,
    Channel,
    CommsEnvironmentSettings,
    CommsEvent,
    ComponentHealth,
    Delivery,
    EnvironmentHealth,
    Message,
    MessageTemplate,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
    Subscriber,
    WorkerHeartbeat,
)
from comms.services.messages import CONTEXT_KEYS, template_render


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services (history, mirrors, deliveries): visible, never edited."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Audience)
class AudienceAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "description"]


class MessageTemplateForm(forms.ModelForm):
    """A template is tried with every placeholder filled before it is saved, so one that does
    not parse or render ({% include %}, a syntax error) is refused here rather than found when
    an upgrade drafts a message from it."""

    class Meta:
        model = MessageTemplate
        fields = ["key", "name", "subject_template", "body_template", "audiences", "updated_at"]

    def _tried(self, field: str) -> str:
        source = self.cleaned_data.get(field, "")
        sample = {key: f"[{key}]" for key in CONTEXT_KEYS}
        try:
            template_render(source=source, context=sample)
        except CommsError as exc:
            raise forms.ValidationError(str(exc)) from None
        return source

    def clean_subject_template(self) -> str:
        return self._tried("subject_template")

    def clean_body_template(self) -> str:
        return self._tried("body_template")


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["key", "name", "subject_template", "updated_at"]
    filter_horizontal = ["audiences"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "audience", "kind", "to_subscribers", "enabled"]
    list_filter = ["audience", "kind", "enabled"]


@admin.register(CommsEnvironmentSettings)
class CommsEnvironmentSettingsAdmin(admin.ModelAdmin):
    list_display = ["environment_key", "auto_send"]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "created_at", "confirmed_at", "unsubscribed_at"]
    readonly_fields = ["token", "created_at", "confirmed_at", "unsubscribed_at"]
    search_fields = ["email"]


for model, columns in (
    (Message, ["subject", "upgrade_id", "environment_key", "status", "created_at"]),
    (Delivery, ["message", "channel", "recipient", "status", "attempts", "last_error"]),
    (StatusMaintenance, ["title", "upgrade_id", "environment_key", "lifecycle", "status"]),
    (StatusIncident, ["name", "status", "impact", "created_at", "resolved_at"]),
    (StatusUpdate, ["maintenance", "status", "created_at"]),
    (EnvironmentHealth, ["environment_name", "checked_at", "error"]),
    (ComponentHealth, ["environment_name", "name", "status", "checked_at"]),
    (CommsEvent, ["at", "kind", "subject_type", "subject_id", "from_state", "to_state", "actor"]),
    (WorkerHeartbeat, ["worker", "seen_at", "beat_at"]),
):
    admin.site.register(
        model, type(f"{model.__name__}Admin", (ReadOnlyAdmin,), {"list_display": columns})
    )
