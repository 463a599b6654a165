from __future__ import annotations

from django.contrib import admin

from upgrades.models import (
    ApprovalDecision,
    Artifact,
    ChecklistStep,
    CheckRun,
    CommonIssue,
    Environment,
    EnvironmentOperation,
    PlaybookPhase,
    PlaybookStep,
    PlaybookTemplate,
    SloThreshold,
    Upgrade,
    UpgradeEvent,
)


class EnvironmentOperationInline(admin.TabularInline):
    model = EnvironmentOperation
    extra = 0
    fields = (
        "operation",
        "mode",
        "argv",
        "webhook_url",
        "webhook_secret_header",
        "timeout_seconds",
    )


class SloThresholdInline(admin.TabularInline):
    model = SloThreshold
    extra = 0


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "base_url")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [EnvironmentOperationInline, SloThresholdInline]
    # Administrators set environments up under /setup/, where the service keeps the flag
    # environment of the same key in step; this admin (superusers only) does not.


class PlaybookPhaseInline(admin.TabularInline):
    model = PlaybookPhase
    extra = 0
    show_change_link = True


@admin.register(PlaybookTemplate)
class PlaybookTemplateAdmin(admin.ModelAdmin):
    list_display = ("name", "upgrade_type", "emergency_kind")
    inlines = [PlaybookPhaseInline]


class PlaybookStepInline(admin.TabularInline):
    model = PlaybookStep
    extra = 0
    fields = ("order", "section", "title", "kind", "required", "commands")


@admin.register(PlaybookPhase)
class PlaybookPhaseAdmin(admin.ModelAdmin):
    list_display = ("title", "template", "order", "stage")
    list_filter = ("template", "stage")
    inlines = [PlaybookStepInline]


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is written by the services only: the admin shows it and changes none of it."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Upgrade)
class UpgradeAdmin(ReadOnlyAdmin):
    list_display = ("title", "upgrade_type", "status", "risk", "environment", "owner", "created_at")
    list_filter = ("upgrade_type", "status", "environment")
    search_fields = ("title", "version_to", "flag_key")


@admin.register(ChecklistStep)
class ChecklistStepAdmin(ReadOnlyAdmin):
    list_display = ("title", "upgrade", "status", "required", "completed_by", "completed_at")
    list_filter = ("status", "kind")
    list_select_related = ("upgrade", "completed_by")


@admin.register(UpgradeEvent)
class UpgradeEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "upgrade", "kind", "actor", "from_value", "to_value")
    list_filter = ("kind",)
    list_select_related = ("upgrade", "actor")


@admin.register(ApprovalDecision)
class ApprovalDecisionAdmin(ReadOnlyAdmin):
    list_display = ("at", "upgrade", "decision", "decided_by")


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "title", "upgrade", "kind", "status", "attempt", "created_at")
    list_filter = ("status", "kind")
    list_select_related = ("upgrade",)


@admin.register(Artifact)
class ArtifactAdmin(ReadOnlyAdmin):
    list_display = ("name", "upgrade", "kind", "size_bytes", "created_at")


@admin.register(CommonIssue)
class CommonIssueAdmin(admin.ModelAdmin):
    list_display = ("title", "issue", "order")
