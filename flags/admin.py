from __future__ import annotations

from typing import Any

from django.contrib import admin

from flags.models import (
    ApiToken,
    Flag,
    FlagEnvironment,
    FlagEvaluationCount,
    FlagEvent,
    FlagRevision,
    FlagState,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services (history, counters): visible, never edited here."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(FlagEnvironment)
class FlagEnvironmentAdmin(admin.ModelAdmin):
    list_display = ["key", "name"]


class FlagStateInline(admin.TabularInline):
    model = FlagState
    extra = 0
    # State changes go through the services so they are locked and recorded.
    readonly_fields = [
        "environment",
        "enabled",
        "rollout_percentage",
        "rules",
        "version",
        "updated_at",
    ]
    can_delete = False

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = ["key", "owner", "tags", "archived_at", "created_at"]
    list_filter = ["archived_at"]
    search_fields = ["key", "description", "tags"]
    readonly_fields = ["key", "archived_at", "created_at"]
    inlines = [FlagStateInline]


@admin.register(FlagState)
class FlagStateAdmin(ReadOnlyAdmin):
    list_display = ["flag", "environment", "enabled", "rollout_percentage", "version", "updated_at"]
    list_filter = ["environment", "enabled"]


@admin.register(FlagEvent)
class FlagEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "flag", "environment", "kind", "via", "actor", "reason"]
    list_filter = ["kind", "via", "environment"]
    search_fields = ["flag__key", "reason"]


@admin.register(FlagEvaluationCount)
class FlagEvaluationCountAdmin(ReadOnlyAdmin):
    list_display = ["hour", "flag", "environment", "count"]
    list_filter = ["environment"]


@admin.register(FlagRevision)
class FlagRevisionAdmin(ReadOnlyAdmin):
    list_display = ["revision", "changed_at"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "user",
        "scope",
        "environment",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", "revoked_at"]
    # The hash is useless to read and dangerous to edit; revoke by setting revoked_at.
    readonly_fields = [
        "user",
        "prefix",
        "token_hash",
        "scope",
        "environment",
        "created_at",
        "last_used_at",
    ]

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False
