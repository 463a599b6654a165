"""When nobody knows what a run did: the decisions open to a release manager on a run whose
outcome is unknown (a deploy, rollback, restore or backup whose worker died, or that was
stopped mid-way), read for the upgrade page, the run page and the API alike.

The rules stay where they are: the run's own `outcome_unknown`, the lifecycle table for the
upgrade's actions (retry, mark failed, resolved by hand), and `services.check_run_resolve` for
marking the run itself. `still_matters` says ahead of time what that service would refuse
("the upgrade has moved on"), so nothing is offered that would only be refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upgrades import selectors
from upgrades.models import (
    Action,
    CheckRun,
    DeployState,
    Facts,
    RollbackState,
    RunKind,
    Upgrade,
    UpgradeEvent,
    Verdict,
    lifecycle,
)

# The decisions by the names the API uses, in the order the page offers them.
CHECK_TARGET = "check_target"
RESOLVE_PASSED = "resolve_passed"
RESOLVE_FAILED = "resolve_failed"
DECISIONS = (
    CHECK_TARGET,
    Action.RETRY.value,
    RESOLVE_PASSED,
    RESOLVE_FAILED,
    Action.MARK_FAILED.value,
    Action.RESOLVED_BY_HAND.value,
)
TARGET_CHECKED = "target checked"  # the timeline's to_value of a read of the target


def still_matters(run: CheckRun, upgrade: Upgrade) -> bool:
    """Whether deciding the run's outcome still means something to the upgrade: its deploy (or
    rollback) state still says "unknown" and the upgrade has not ended (a restore and a backup
    are decided whatever the upgrade did since). As `services.check_run_resolve` holds it."""
    if not run.outcome_unknown:
        return False
    if run.action == "rollback_database":
        return True
    if run.kind == RunKind.DEPLOY and upgrade.deploy_state != DeployState.UNKNOWN:
        return False
    if run.kind == RunKind.ROLLBACK and upgrade.rollback_state != RollbackState.UNKNOWN:
        return False
    return run.kind == RunKind.BACKUP or not upgrade.is_finished


@dataclass
class RunDecisions:
    """What may be decided about one run, for one person."""

    run: CheckRun
    pending: bool  # its outcome is unknown and still matters: someone has to decide
    allowed: list[str] = field(default_factory=list)  # of DECISIONS, for this person
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # the upgrade's actions offered
    target_read: UpgradeEvent | None = None  # the latest look at the target, if any

    @property
    def badge(self) -> str:
        """The run's state in words, saying plainly when nobody knows what it did."""
        if self.run.outcome_unknown:
            if self.run.status == "interrupted":
                return "Interrupted — outcome unknown"
            return "Stopped mid-way — outcome unknown"
        return self.run.get_status_display()

    @property
    def what(self) -> str:
        """What the run was meant to do, in a few words."""
        if self.run.kind == RunKind.DEPLOY:
            return "deploy"
        if self.run.action == "rollback_database":
            return "database restore"
        if self.run.kind == RunKind.ROLLBACK:
            return "rollback"
        if self.run.kind == RunKind.BACKUP:
            return "backup"
        return "run"

    @property
    def retry_label(self) -> str:
        return "Retry the rollback" if self.run.kind == RunKind.ROLLBACK else "Retry the deploy"

    def offers(self, decision: str) -> bool:
        return decision in self.allowed


def _upgrade_actions(run: CheckRun) -> tuple[str, ...]:
    """The lifecycle actions that answer an unknown outcome of this kind of run."""
    if run.kind == RunKind.DEPLOY:
        return (Action.RETRY, Action.MARK_FAILED)
    if run.kind == RunKind.ROLLBACK and run.action != "rollback_database":
        return (Action.RETRY, Action.RESOLVED_BY_HAND, Action.MARK_FAILED)
    return ()


def target_reads(upgrade: Upgrade, runs: list[CheckRun]) -> dict[int, UpgradeEvent]:
    """The latest look at the target for each of `runs`, from one query."""
    if not runs:
        return {}
    events = UpgradeEvent.objects.filter(upgrade=upgrade, to_value=TARGET_CHECKED).select_related(
        "actor"
    )
    wanted = {f"Run #{r.pk} ": r.pk for r in runs}
    latest: dict[int, UpgradeEvent] = {}
    for event in events.order_by("-at", "-id")[:200]:
        for prefix, run_id in wanted.items():
            if event.message.startswith(prefix):
                latest.setdefault(run_id, event)
    return latest


def run_decisions(
    run: CheckRun, *, actor: Any, upgrade: Upgrade | None = None, facts: Facts | None = None,
    target_read: UpgradeEvent | None = None, read_target: bool = True,
) -> RunDecisions:  # fmt: skip
    """The decisions open on `run` for `actor` (none for a stakeholder: they watch)."""
    upgrade = upgrade or run.upgrade
    pending = still_matters(run, upgrade)
    view = RunDecisions(run=run, pending=pending)
    if read_target and run.outcome_unknown:
        view.target_read = target_read or target_reads(upgrade, [run]).get(run.pk)
    if not pending:
        return view
    facts = facts or selectors.lifecycle_facts(upgrade, actor=actor)
    if not facts.actor_can_operate:
        return view
    view.allowed = [CHECK_TARGET, RESOLVE_PASSED, RESOLVE_FAILED]
    for action in _upgrade_actions(run):
        verdict = lifecycle.verdict(action, facts)
        if verdict.allowed:
            view.allowed.append(str(action))
            view.verdicts[str(action)] = verdict
    view.allowed.sort(key=DECISIONS.index)
    return view


def pending_decisions(
    upgrade: Upgrade, *, actor: Any, facts: Facts, runs: list[CheckRun]
) -> list[RunDecisions]:
    """Every run of the upgrade still waiting for someone to say what it did, newest first."""
    waiting = [r for r in runs if still_matters(r, upgrade)]
    reads = target_reads(upgrade, waiting)
    return [
        run_decisions(r, actor=actor, upgrade=upgrade, facts=facts, target_read=reads.get(r.pk))
        for r in waiting
    ]
