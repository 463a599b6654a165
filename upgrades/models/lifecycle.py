"""The upgrade lifecycle in one table: for each action, the states it is allowed in and, given
the facts of the upgrade (deployed? monitoring window ended? approval given? freeze active?
something to roll back to?), whether it is allowed now and, if not, a sentence saying why.

Every door asks this table: the page renders the allowed actions, the API returns them, and
the services refuse the others with the sentence (HTTP 409).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import models


class Action(models.TextChoices):
    """Everything a person (or a pipeline) can do to an upgrade as a whole."""

    EDIT = "edit", "Edit details"
    SCHEDULE = "schedule", "Schedule"
    UNSCHEDULE = "unschedule", "Back to draft"
    START = "start", "Start deployment"
    BACK_UP = "back_up", "Back up configuration, logs and database"
    DEPLOY = "deploy", "Deploy"
    RETRY = "retry", "Retry"
    BEGIN_MONITORING = "begin_monitoring", "Begin monitoring"
    DEPLOYED_OUTSIDE = "deployed_outside", "Deployed outside the panel: begin monitoring"
    EXTEND_MONITORING = "extend_monitoring", "Extend monitoring"
    END_MONITORING = "end_monitoring", "End monitoring early"
    COMPLETE = "complete", "Complete"
    ROLL_BACK = "roll_back", "Roll back"
    RESTORE_DATABASE = "restore_database", "Restore the database from a backup"
    RESOLVED_BY_HAND = "resolved_by_hand", "Rollback resolved by hand"
    MARK_FAILED = "mark_failed", "Mark failed"
    CANCEL = "cancel", "Cancel"
    APPROVE = "approve", "Record go/no-go"
    CLONE = "clone", "Try again as a new draft"


class DeployState(models.TextChoices):
    """What the panel knows of the deploy of this upgrade to its environment."""

    NONE = "none", "Not deployed"
    RUNNING = "running", "Deploying"
    PASSED = "passed", "Deployed"
    OUTSIDE = "outside", "Deployed outside the panel"
    FAILED = "failed", "Deploy failed"
    UNKNOWN = "unknown", "Deploy interrupted: outcome unknown"


class RollbackState(models.TextChoices):
    NONE = "none", "No rollback"
    RUNNING = "running", "Rolling back"
    PASSED = "passed", "Rolled back"
    FAILED = "failed", "Rollback failed"
    UNKNOWN = "unknown", "Rollback interrupted: outcome unknown"
    BY_HAND = "by_hand", "Resolved by hand"


# Actions that end the upgrade or undo work: a written reason goes on the timeline.
ACTIONS_NEEDING_REASON = frozenset(
    {
        Action.DEPLOYED_OUTSIDE,
        Action.END_MONITORING,
        Action.ROLL_BACK,
        Action.RESOLVED_BY_HAND,
        Action.MARK_FAILED,
        Action.CANCEL,
    }
)
# Actions that change the target: the ones behind the destructive disclosure on the page.
DESTRUCTIVE_ACTIONS = frozenset(
    {Action.ROLL_BACK, Action.RESTORE_DATABASE, Action.MARK_FAILED, Action.CANCEL}
)

DRAFT, SCHEDULED, IN_PROGRESS, MONITORING = "draft", "scheduled", "in_progress", "monitoring"
COMPLETED, ROLLED_BACK, FAILED, CANCELLED = "completed", "rolled_back", "failed", "cancelled"
ENDED = frozenset({COMPLETED, ROLLED_BACK, FAILED, CANCELLED})
STATE_LABELS = {
    DRAFT: "a draft",
    SCHEDULED: "scheduled",
    IN_PROGRESS: "in progress",
    MONITORING: "being monitored",
    COMPLETED: "completed",
    ROLLED_BACK: "rolled back",
    FAILED: "failed",
    CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class Facts:
    """What the table needs to know of one upgrade (and of who is asking)."""

    status: str
    upgrade_type: str
    deploy: str = DeployState.NONE
    rollback: str = RollbackState.NONE
    approval: str = "not_required"
    has_window_start: bool = False
    action_running: bool = False
    monitoring_open: bool = False
    monitoring_due: bool = False  # the window's planned end has passed
    freeze: str = ""  # the name of a freeze active now, or ""
    rollback_target: str = ""  # the version or flag state to go back to, or ""
    database_backups: int = 0  # taken before this upgrade's deploy
    open_required: int = 0  # required steps still open, all stages
    actor_is_owner: bool = False
    actor_can_operate: bool = True

    @property
    def is_emergency(self) -> bool:
        return self.upgrade_type == "emergency"

    @property
    def deployed(self) -> bool:
        return self.deploy in (DeployState.PASSED, DeployState.OUTSIDE)

    @property
    def deploy_touched_target(self) -> bool:
        # A failed or interrupted deploy may have changed part of the target.
        return self.deploy not in (DeployState.NONE, DeployState.RUNNING)


@dataclass(frozen=True)
class Verdict:
    action: str
    allowed: bool
    why: str = ""  # for a refusal: the sentence; for an allowed action: why it is offered
    needs_reason: bool = False

    @property
    def label(self) -> str:
        return Action(self.action).label

    @property
    def is_destructive(self) -> bool:
        return self.action in DESTRUCTIVE_ACTIONS


Check = Callable[[Facts], str]  # "" when fine, else the refusal


@dataclass(frozen=True)
class Rule:
    states: frozenset[str]
    checks: tuple[Check, ...] = field(default_factory=tuple)
    wrong_state: str = ""  # a more helpful refusal than "a draft cannot ..."


def _freeze(f: Facts) -> str:
    if f.freeze and not f.is_emergency:
        return (
            f"Deployment freeze “{f.freeze}” is in effect: only an emergency upgrade may go "
            "ahead, with a written reason."
        )
    return ""


def _no_action_running(f: Facts) -> str:
    if f.action_running:
        return "A backup, deploy or rollback is running: wait for it to finish."
    return ""


def _approval(f: Facts) -> str:
    if f.upgrade_type != "major" or f.approval == "go":
        return ""
    if f.approval == "no_go":
        return "The go/no-go decision was no-go: a release manager must record a go first."
    return "A major upgrade needs a go from a release manager other than its owner."


def _deploy_open(f: Facts) -> str:
    return {
        DeployState.RUNNING: "A deploy is running: wait for its outcome.",
        DeployState.PASSED: "Already deployed: begin monitoring next.",
        DeployState.OUTSIDE: "Already deployed outside the panel: begin monitoring next.",
        DeployState.FAILED: "The last deploy failed: retry it, roll back, or mark the upgrade "
        "failed.",
        DeployState.UNKNOWN: "The last deploy was interrupted and its outcome is unknown: check "
        "the target, then retry or mark the upgrade failed.",
    }.get(f.deploy, "")


def _retry_target(f: Facts) -> str:
    if f.rollback in (RollbackState.FAILED, RollbackState.UNKNOWN):
        return ""
    if f.deploy in (DeployState.FAILED, DeployState.UNKNOWN):
        return ""
    return "Nothing has failed: there is nothing to retry."


def _deployed(f: Facts) -> str:
    if f.deployed:
        return ""
    if f.deploy == DeployState.RUNNING:
        return "The deploy is still running: monitoring begins after it succeeds."
    if f.deploy == DeployState.FAILED:
        return "The deploy failed: nothing new is running to monitor. Retry or roll back."
    return (
        "Nothing has been deployed yet: deploy first (or, if it was deployed outside the "
        "panel, say so with a reason)."
    )


def _not_deployed(f: Facts) -> str:
    if f.deployed:
        return "Already deployed: begin monitoring."
    if f.deploy == DeployState.RUNNING:
        return "A deploy is running: wait for its outcome."
    return ""


def _window_open(f: Facts) -> str:
    return "" if f.monitoring_open else "The monitoring window has ended: complete the upgrade."


def _window_ended(f: Facts) -> str:
    if f.monitoring_open and not f.monitoring_due:
        return (
            "The monitoring window is still open: complete once it has ended, or end it early "
            "with a reason."
        )
    if f.open_required:
        return (
            f"{f.open_required} required step(s) are still open: completion needs every "
            "required step done or marked not doing."
        )
    return ""


def _can_roll_back(f: Facts) -> str:
    if f.rollback == RollbackState.RUNNING:
        return "A rollback is running: wait for its outcome."
    if f.rollback in (RollbackState.PASSED, RollbackState.BY_HAND):
        return "Already rolled back."
    if f.rollback in (RollbackState.FAILED, RollbackState.UNKNOWN):
        return "The rollback failed: retry it or mark it resolved by hand."
    if not f.deploy_touched_target:
        return "Nothing has been deployed, so there is nothing to roll back."
    if not f.rollback_target:
        return (
            "There is no recorded previous version or flag state to go back to: fix forward, or "
            "mark the upgrade failed."
        )
    return ""


def _restore(f: Facts) -> str:
    if f.upgrade_type == "feature_flag":
        return "A feature flag upgrade changes no database: turn the flag off instead."
    if not f.database_backups:
        return "No database backup was taken before this upgrade's deploy."
    if not f.deploy_touched_target:
        return "Nothing has been deployed, so the database needs no restore."
    return ""


def _rollback_failed(f: Facts) -> str:
    if f.rollback in (RollbackState.FAILED, RollbackState.UNKNOWN):
        return ""
    return "Only a rollback that failed, or whose outcome is unknown, is resolved by hand."


def _approval_open(f: Facts) -> str:
    if f.approval not in ("pending", "no_go"):
        return "This upgrade needs no go/no-go decision now."
    if f.actor_is_owner:
        return "Four eyes: the go/no-go decision must come from a release manager other than the owner."
    return ""


def _window_start(f: Facts) -> str:
    return "" if f.has_window_start else "Set a maintenance window start (Edit) before scheduling."


RULES: dict[str, Rule] = {
    Action.EDIT: Rule(
        frozenset({DRAFT, SCHEDULED}), wrong_state="Details can change until the deployment starts."
    ),
    Action.SCHEDULE: Rule(frozenset({DRAFT}), (_window_start, _freeze)),
    Action.UNSCHEDULE: Rule(frozenset({SCHEDULED})),
    Action.START: Rule(frozenset({DRAFT, SCHEDULED}), (_approval, _freeze)),
    Action.BACK_UP: Rule(
        frozenset({DRAFT, SCHEDULED, IN_PROGRESS, MONITORING}), (_no_action_running,)
    ),
    Action.DEPLOY: Rule(
        frozenset({IN_PROGRESS}),
        (_deploy_open, _no_action_running, _approval, _freeze),
        wrong_state="Deploy once the deployment has started.",
    ),
    Action.RETRY: Rule(frozenset({IN_PROGRESS, MONITORING}), (_retry_target, _no_action_running)),
    Action.BEGIN_MONITORING: Rule(frozenset({IN_PROGRESS}), (_deployed, _no_action_running)),
    Action.DEPLOYED_OUTSIDE: Rule(frozenset({IN_PROGRESS}), (_not_deployed, _no_action_running)),
    Action.EXTEND_MONITORING: Rule(frozenset({MONITORING}), (_window_open,)),
    Action.END_MONITORING: Rule(frozenset({MONITORING}), (_window_open,)),
    Action.COMPLETE: Rule(
        frozenset({MONITORING}),
        (_window_ended, _no_action_running),
        wrong_state="Complete after the deploy has been monitored.",
    ),
    Action.ROLL_BACK: Rule(
        frozenset({IN_PROGRESS, MONITORING}), (_can_roll_back, _no_action_running)
    ),
    # After a version rollback the data may still need restoring: allowed once rolled back.
    Action.RESTORE_DATABASE: Rule(
        frozenset({IN_PROGRESS, MONITORING, ROLLED_BACK}), (_restore, _no_action_running)
    ),
    Action.RESOLVED_BY_HAND: Rule(frozenset({IN_PROGRESS, MONITORING}), (_rollback_failed,)),
    Action.MARK_FAILED: Rule(frozenset({IN_PROGRESS, MONITORING}), (_no_action_running,)),
    Action.CANCEL: Rule(
        frozenset({DRAFT, SCHEDULED}),
        wrong_state="Only an upgrade that has not started can be cancelled; roll back or mark it "
        "failed instead.",
    ),
    Action.APPROVE: Rule(
        frozenset({DRAFT, SCHEDULED, IN_PROGRESS, MONITORING, COMPLETED, ROLLED_BACK, FAILED}),
        (_approval_open,),
    ),
    Action.CLONE: Rule(ENDED, wrong_state="Only an ended upgrade is tried again as a new draft."),
}


def verdict(action: str, facts: Facts) -> Verdict:
    """Whether `action` is allowed given `facts`, and the sentence saying why not."""
    rule = RULES.get(action)
    if rule is None:
        return Verdict(action, False, f"Unknown action “{action}”.")
    label = Action(action).label
    if not facts.actor_can_operate:
        return Verdict(action, False, "Only release managers change upgrades.")
    if facts.status not in rule.states:
        why = rule.wrong_state or (
            f"An upgrade that is {STATE_LABELS.get(facts.status, facts.status)} cannot "
            f"“{label.lower()}”."
        )
        if facts.status in ENDED and action != Action.CLONE:
            why = (
                f"The upgrade is {STATE_LABELS[facts.status]}: nothing more can be done to it "
                "(try again as a new draft instead)."
            )
        return Verdict(action, False, why)
    for check in rule.checks:
        refusal = check(facts)
        if refusal:
            return Verdict(action, False, refusal)
    needs_reason = action in ACTIONS_NEEDING_REASON or (
        facts.is_emergency and bool(facts.freeze) and action in _FREEZE_ACTIONS
    )
    return Verdict(action, True, "", needs_reason)


_FREEZE_ACTIONS = frozenset({Action.SCHEDULE, Action.START, Action.DEPLOY})


def verdicts(facts: Facts) -> dict[str, Verdict]:
    return {action: verdict(action, facts) for action in Action.values}


def allowed_actions(facts: Facts) -> list[str]:
    return [action for action, v in verdicts(facts).items() if v.allowed]


def next_action(facts: Facts) -> tuple[str, str] | None:
    """The one action the page puts first, and why it is next; None when nothing is left."""
    allowed = set(allowed_actions(facts))
    order: list[tuple[str, str]] = [
        (Action.RETRY, "The last attempt failed: try it again, or choose another way below."),
        (Action.APPROVE, "A go/no-go decision is waiting."),
        (Action.SCHEDULE, "Set the window, then schedule to tell people when it happens."),
        (Action.START, "The pre-upgrade checklist is the gate: start when it is done."),
        (Action.DEPLOY, "The deployment has started: deploy the change."),
        (Action.BEGIN_MONITORING, "The deploy succeeded: watch the system for the window."),
        (Action.COMPLETE, "The monitoring window has ended."),
        (Action.CLONE, "This upgrade has ended; it can be tried again as a new draft."),
    ]
    if facts.deploy == DeployState.UNKNOWN or facts.rollback == RollbackState.UNKNOWN:
        order[0] = (
            Action.RETRY,
            "The last attempt was cut off and its outcome is unknown: check the target, then "
            "retry it or mark it passed or failed.",
        )
    for action, why in order:
        if action in allowed:
            if action == Action.APPROVE and facts.actor_is_owner:
                continue
            return action, why
    return None
