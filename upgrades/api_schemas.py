"""The shapes the upgrades REST API reads and writes, for the generated OpenAPI document.

Input schemas name their fields as the API does ("type", "flag", "environment" by key) and
refuse unknown fields, so a pipeline's typo is a 400 naming it rather than a silent no-op.
Text is checked again in the endpoints (mycelia_ops.validation) for what a type cannot say:
lone surrogates, control characters, lengths, dates outside 2000..2100.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from mycelia_ops.api import Body

UpgradeTypeName = Literal["feature_flag", "minor", "major", "emergency"]
StatusName = Literal[
    "draft",
    "scheduled",
    "in_progress",
    "monitoring",
    "completed",
    "rolled_back",
    "failed",
    "cancelled",
]
DATE_TIME = {"format": "date-time"}

TEXT = 2000  # reasons and notes


# --- in -----------------------------------------------------------------------------------------


class UpgradeCreateIn(Body):
    type: UpgradeTypeName
    title: str = Field(max_length=200)
    environment: str = Field(
        max_length=50, description="The environment's key, as GET /api/environments lists it."
    )
    description: str = Field("", max_length=10_000, description="What changes and why.")
    version_from: str = Field("", max_length=50, description="Version upgrades: running now.")
    version_to: str = Field("", max_length=50, description="Version upgrades: to deploy.")
    flag: str = Field(
        "", max_length=100, description="Feature flag upgrades: the key of an existing flag."
    )
    emergency_kind: Literal["", "security_patch", "critical_bug_fix"] = Field(
        "", description="Emergency upgrades (required for them): what kind of emergency."
    )
    window_start: str | None = Field(
        None,
        max_length=64,
        description="ISO 8601, e.g. 2026-05-01T14:30:00Z.",
        json_schema_extra=DATE_TIME,
    )
    window_minutes: int | None = Field(None, description="Expected duration, 1 to 20160.")
    risk: Literal["low", "low_medium", "medium", "high", "critical"] | None = Field(
        None,
        description="Raised from the type's rating, never lowered; the playbook's rating when "
        "absent.",
    )


class UpgradeEditIn(Body):
    """Only the fields sent change; allowed until the deployment starts."""

    title: str | None = Field(None, max_length=200)
    description: str | None = Field(None, max_length=10_000)
    environment: str | None = Field(None, max_length=50)
    version_from: str | None = Field(None, max_length=50)
    version_to: str | None = Field(None, max_length=50)
    flag: str | None = Field(None, max_length=100)
    owner: str | None = Field(
        None, max_length=150, description="The username of a release manager."
    )
    window_start: str | None = Field(
        None, max_length=64, description="ISO 8601; null clears it.", json_schema_extra=DATE_TIME
    )
    window_minutes: int | None = Field(None, description="1 to 20160; null clears it.")


class ActionIn(Body):
    reason: str = Field(
        "",
        max_length=TEXT,
        description="For the timeline; needed by deployed_outside, end_monitoring, roll_back, "
        "resolved_by_hand, mark_failed, cancel and approve.",
    )
    override_reason: str = Field(
        "",
        max_length=TEXT,
        description="start: go ahead although the pre-upgrade gate is not clear, and why.",
    )
    backup_id: int | None = Field(None, description="restore_database: the backup to restore.")
    hours: float | None = Field(None, description="extend_monitoring: the hours to add.")
    decision: Literal["", "go", "no_go"] = Field("", description="approve: go or no_go.")


class ResolveIn(Body):
    """A release manager's decision on a run whose outcome is unknown."""

    outcome: Literal["passed", "failed"] = Field(description="What the run did, as you found.")
    reason: str = Field(
        "",
        max_length=TEXT,
        description="Required: what you checked on the target (goes on the timeline with your "
        "name).",
    )


class StepActIn(Body):
    note: str = Field("", max_length=TEXT, description="complete: a note kept with the step.")
    reason: str = Field("", max_length=TEXT, description="skip and reopen (required): why.")
    override_reason: str = Field(
        "",
        max_length=TEXT,
        description="complete: accept a step whose latest check failed, and why.",
    )


# --- out ----------------------------------------------------------------------------------------


class RefusedOut(Schema):
    """409: what the lifecycle refused, and what is allowed instead (a 409 that is not the
    table's, such as a step of a later stage, carries no allowed_actions)."""

    error: str
    field: str | None = None
    allowed_actions: list[str] | None = None


class EnvironmentOut(Schema):
    key: str
    name: str
    kind: str


class RunBrief(Schema):
    id: int
    status: str
    reason: str


class RunOut(Schema):
    id: int
    upgrade_id: int
    step_id: int | None
    kind: str
    action: str
    title: str
    status: str
    reason: str
    measured: dict[str, Any]
    attempt: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    output_tail: str = Field(description="The last 4,000 characters of the output.")
    output_truncated: bool
    cancel_requested: bool = Field(description="Asked to stop; its worker is stopping it.")
    finished: bool
    outcome_unknown: bool = Field(
        description="A deploy, rollback, restore or backup cut off mid-way (its worker died, or "
        "it was stopped while running): it may have half-happened, it is not run again by "
        "itself, and a release manager decides."
    )
    decisions: list[str] = Field(
        description="What the token's user may decide about the run now: check_target (POST "
        "/api/runs/{id}/check-target), resolve_passed and resolve_failed (POST "
        "/api/runs/{id}/resolve), and the upgrade's own actions retry, mark_failed, "
        "resolved_by_hand (POST /api/upgrades/{id}/actions/{action}). Empty when nothing is "
        "to decide, and for read-only tokens."
    )
    resolved_by: str | None = Field(
        None, description="Who decided the outcome of a run whose outcome was unknown."
    )
    resolved_at: datetime | None = None


class TargetCheckedOut(Schema):
    version: str = Field(description="The version the target reports; empty if none was read.")
    message: str = Field(description="What was read, and from where, as the timeline says it.")
    run: RunOut


class RunLogOut(Schema):
    run_id: int
    offset: int
    next_offset: int
    text: str
    finished: bool


class StepOut(Schema):
    id: int
    title: str
    section: str
    status: Literal["open", "done", "skipped"]
    required: bool
    kind: str
    note: str
    skip_reason: str
    accepted_despite_failure: bool
    override_reason: str
    last_run: RunBrief | None


class PhaseOut(Schema):
    id: int
    title: str
    stage: Literal["pre", "deploy", "post"]
    steps: list[StepOut]


class NextActionOut(Schema):
    action: str
    why: str


class UpgradeSummaryOut(Schema):
    id: int
    title: str
    type: UpgradeTypeName
    emergency_kind: str
    status: StatusName
    environment: str
    version_from: str
    version_to: str
    flag: str | None
    risk: str
    owner: str
    approval: str
    deploy_state: str
    rollback_state: str
    deployed_version: str
    window_start: datetime | None
    window_minutes: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str


class UpgradeOut(UpgradeSummaryOut):
    description: str
    allowed_actions: list[str] = Field(
        description="What the token's user may do now, by action name (empty for read-only tokens)."
    )
    next_action: NextActionOut | None
    phases: list[PhaseOut]
    cloned_from: int | None
    clones: list[int]


class UpgradePageOut(Schema):
    count: int
    next: str | None
    previous: str | None
    results: list[UpgradeSummaryOut]


class ActedOut(Schema):
    message: str
    upgrade: UpgradeOut
    run: RunOut | None = None


class StepActedOut(Schema):
    changed: bool
    step: StepOut
    run: RunOut | None = None
