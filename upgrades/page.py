"""What the upgrade page shows, read in a fixed handful of queries: the stepper across the top,
the one next action with the reason it is next, the other allowed actions grouped, and each step
of the checklist with its state in words, what waits and why, and what it really runs here.

Views render it; every rule comes from the lifecycle table (`upgrades.models.lifecycle`) and
`Upgrade.stage_refusal`, never re-derived here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from mycelia_ops.roles import RELEASE_MANAGERS
from upgrades import selectors
from upgrades.models import (
    ACTIVE_RUN_STATUSES,
    Action,
    ChecklistStep,
    CheckRun,
    EventKind,
    Facts,
    PhaseStage,
    RollbackState,
    RunStatus,
    StepKind,
    StepStatus,
    Upgrade,
    UpgradeEvent,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
    Verdict,
    lifecycle,
)

# --- the stepper -----------------------------------------------------------------------------

PATH = (
    UpgradeStatus.DRAFT,
    UpgradeStatus.SCHEDULED,
    UpgradeStatus.IN_PROGRESS,
    UpgradeStatus.MONITORING,
    UpgradeStatus.COMPLETED,
)


@dataclass(frozen=True)
class StepperItem:
    label: str
    state: str  # "done", "current", "todo", "skipped" (never reached), "ended"

    @property
    def words(self) -> str:
        return {
            "done": "done",
            "current": "current state",
            "todo": "not yet",
            "skipped": "not reached",
            "ended": "ended here",
        }[self.state]


def stepper(upgrade: Upgrade) -> list[StepperItem]:
    """Draft -> Scheduled -> In progress -> Monitoring -> Completed, or the ended state
    (rolled back, failed, cancelled) as the last item; what was reached, from the timeline."""
    reached = {UpgradeStatus.DRAFT, upgrade.status}
    reached |= set(
        UpgradeEvent.objects.filter(upgrade=upgrade, kind=EventKind.TRANSITION).values_list(
            "to_value", flat=True
        )
    )
    ended_badly = upgrade.is_finished and upgrade.status != UpgradeStatus.COMPLETED
    path = list(PATH[:-1]) + [upgrade.status if ended_badly else UpgradeStatus.COMPLETED]
    current = path.index(upgrade.status)
    items = []
    for index, status in enumerate(path):
        label = UpgradeStatus(status).label
        if index == current:
            state = "ended" if ended_badly else "current"
            if status == UpgradeStatus.COMPLETED:
                state = "done"
        elif index < current:
            state = "done" if status in reached else "skipped"
        else:
            state = "todo"
        items.append(StepperItem(label, state))
    return items


# --- the actions -----------------------------------------------------------------------------

# Refused actions worth a "not now: why" line when the upgrade is in a state they belong to.
NOT_NOW = (
    Action.SCHEDULE,
    Action.START,
    Action.DEPLOY,
    Action.BEGIN_MONITORING,
    Action.COMPLETE,
)
# Rendered elsewhere than the list of other actions.
OWN_PLACE = frozenset({Action.APPROVE, Action.EDIT})


@dataclass
class Actions:
    facts: Facts
    verdicts: dict[str, Verdict]
    next: Verdict | None = None
    next_why: str = ""
    secondary: list[Verdict] = field(default_factory=list)
    destructive: list[Verdict] = field(default_factory=list)
    not_now: list[Verdict] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)  # who may give the go/no-go
    gate_open: int = 0  # required pre-upgrade steps open
    gate_accepted: int = 0  # pre-upgrade steps accepted despite a failed check
    backups: list[Any] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # button text per action
    confirms: dict[str, str] = field(default_factory=dict)  # the one confirmation, if any
    watch_next: tuple[str, str] | None = None  # what comes next, for those who only watch

    @property
    def approve(self) -> Verdict:
        return self.verdicts[Action.APPROVE]

    @property
    def edit(self) -> Verdict:
        return self.verdicts[Action.EDIT]

    @property
    def gate_closed(self) -> bool:
        return bool(self.gate_open or self.gate_accepted)

    @property
    def key(self) -> str:
        """A short fingerprint of everything the actions region shows: when it is unchanged
        after a write, the region is not sent again."""
        parts = [
            self.facts.status, self.facts.deploy, self.facts.rollback, self.facts.approval,
            str(self.facts.monitoring_open), str(self.facts.monitoring_due),
            self.next.action if self.next else "",
            ",".join(sorted(a for a, v in self.verdicts.items() if v.allowed)),
            ",".join(v.why for v in self.not_now), str(self.gate_open), str(self.gate_accepted),
            str(len(self.backups)),
        ]  # fmt: skip
        return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


def actions(upgrade: Upgrade, *, actor: Any, gate: tuple[int, int] | None = None) -> Actions:
    """The lifecycle table's verdicts for `actor`, arranged as the page shows them."""
    facts = selectors.lifecycle_facts(upgrade, actor=actor)
    verdicts = lifecycle.verdicts(facts)
    view = Actions(facts=facts, verdicts=verdicts)
    if gate is None:
        gate = gate_counts(upgrade)
    view.gate_open, view.gate_accepted = gate
    chosen = lifecycle.next_action(facts)
    if chosen and facts.actor_can_operate:
        view.next, view.next_why = verdicts[chosen[0]], chosen[1]
    for action, verdict in verdicts.items():
        if not verdict.allowed or verdict is view.next or action in OWN_PLACE:
            continue
        (view.destructive if verdict.is_destructive else view.secondary).append(verdict)
    if facts.actor_can_operate:
        view.not_now = [
            verdicts[a]
            for a in NOT_NOW
            if not verdicts[a].allowed and facts.status in lifecycle.RULES[a].states
        ]
    if verdicts[Action.RESTORE_DATABASE].allowed:
        view.backups = selectors.database_backups_before_deploy(upgrade)
    if upgrade.approval in ("pending", "no_go") and facts.actor_is_owner:
        view.waiting_for = other_release_managers(upgrade)
    if not facts.actor_can_operate:
        as_operator = replace(facts, actor_can_operate=True, actor_is_owner=False)
        upcoming = lifecycle.next_action(as_operator)
        if upcoming:
            view.watch_next = (Action(upcoming[0]).label, upcoming[1])
    view.labels = {a: button_label(upgrade, a, view) for a in verdicts}
    view.confirms = {a: confirmation(upgrade, a) for a in verdicts}
    return view


def _change(upgrade: Upgrade) -> str:
    if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG:
        return f"flag {upgrade.flag_key}"
    return upgrade.version_to or "the new version"


def button_label(upgrade: Upgrade, action: str, view: Actions) -> str:
    """The words on an action's button: what it will do to this upgrade."""
    env = upgrade.environment.name
    flag = upgrade.upgrade_type == UpgradeType.FEATURE_FLAG
    if action == Action.START and view.gate_closed:
        return "Override the gate and start"
    if action == Action.DEPLOY:
        return (
            f"Turn on flag {upgrade.flag_key} in {env}"
            if flag
            else f"Deploy {_change(upgrade)} to {env}"
        )
    if action == Action.RETRY:
        if upgrade.rollback_state in (RollbackState.FAILED, RollbackState.UNKNOWN):
            return "Retry the rollback"
        return "Retry the deploy"
    if action == Action.ROLL_BACK:
        if flag:
            return f"Roll back: turn flag {upgrade.flag_key} off"
        return f"Roll back to {upgrade.rollback_target or 'the previous version'}"
    if action == Action.BEGIN_MONITORING:
        return "Deployed: begin monitoring"
    return Action(action).label


def confirmation(upgrade: Upgrade, action: str) -> str:
    """The one question asked before an action that changes the target or ends the upgrade
    (hx-confirm; without JavaScript the form posts at once, its reason field being the care)."""
    env = upgrade.environment.name
    return {
        Action.DEPLOY: f"Deploy {_change(upgrade)} to {env} now?",
        Action.RETRY: f"Try again on {env} now?",
        Action.ROLL_BACK: f"Roll {env} back now?",
        Action.RESTORE_DATABASE: f"Restore the database of {env} from the chosen backup?",
        Action.MARK_FAILED: "Mark the upgrade failed? This ends it.",
        Action.CANCEL: "Cancel the upgrade? This ends it.",
        Action.RESOLVED_BY_HAND: "Record the rollback as resolved by hand? This ends the "
        "upgrade as rolled back.",
        Action.COMPLETE: "Complete the upgrade? This ends it.",
    }.get(action, "")


def other_release_managers(upgrade: Upgrade) -> list[str]:
    """Who may give the go/no-go on `upgrade`: release managers other than its owner."""
    users = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name=RELEASE_MANAGERS) | Q(is_superuser=True))
        .exclude(pk=upgrade.owner_id)
        .distinct()
        .order_by("username")
    )
    return [u.get_full_name() or u.get_username() for u in users[:10]]


def gate_counts(upgrade: Upgrade) -> tuple[int, int]:
    """Required pre-upgrade steps still open, and pre-upgrade steps accepted despite a failed
    check: what starting the deployment needs an override reason for."""
    if not upgrade.has_deployment_gate or upgrade.status not in (
        UpgradeStatus.DRAFT,
        UpgradeStatus.SCHEDULED,
    ):
        return 0, 0
    pre = ChecklistStep.objects.filter(upgrade=upgrade, phase__stage=PhaseStage.PRE)
    open_ = pre.filter(required=True, status=StepStatus.OPEN).count()
    accepted = pre.filter(status=StepStatus.DONE).exclude(override_reason="").count()
    return open_, accepted


# --- the checklist ---------------------------------------------------------------------------


@dataclass
class StepView:
    step: ChecklistStep
    last_run: CheckRun | None = None  # the latest run, whatever its state
    last_check: CheckRun | None = None  # the latest run that finished (not cancelled)
    waits: str = ""  # why the step cannot be done yet ("" when it can)
    runs_here: str = ""
    first_in_section: bool = True  # the step that shows its section's title

    @property
    def pk(self) -> int:
        return self.step.pk

    @property
    def active_run(self) -> CheckRun | None:
        return self.last_run if self.last_run and self.last_run.is_active else None

    @property
    def check_failed(self) -> bool:
        """The latest check did not pass: ticking it Done needs a reason."""
        return self.last_check is not None and self.last_check.status != RunStatus.PASSED

    @property
    def can_run(self) -> bool:
        return (
            self.step.is_automated
            and self.step.kind != StepKind.DEPLOY
            and self.step.status == StepStatus.OPEN
            and self.active_run is None
        )

    @property
    def state(self) -> str:
        """The step's state as a CSS class: open, running, failed, done, accepted, skipped."""
        status = self.step.status
        if status == StepStatus.DONE:
            return "accepted" if self.step.accepted_despite_failure else "done"
        if status == StepStatus.SKIPPED:
            return "skipped"
        if self.active_run:
            return "running"
        if self.check_failed:
            return "failed"
        return "open"

    @property
    def state_label(self) -> str:
        return {
            "accepted": "Done: accepted despite a failed check",
            "done": "Done",
            "skipped": "Not doing",
            "running": "Checking…"
            if self.active_run and self.active_run.status == "running"
            else "Check queued",
            "failed": "Failed",
            "open": "Waiting" if self.waits else "To do",
        }[self.state]


@dataclass
class PhaseView:
    phase: UpgradePhase
    steps: list[StepView] = field(default_factory=list)
    waits: str = ""

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def closed(self) -> int:
        return sum(1 for s in self.steps if s.step.is_closed)

    @property
    def open(self) -> int:
        return self.total - self.closed

    @property
    def skipped(self) -> int:
        return sum(1 for s in self.steps if s.step.status == StepStatus.SKIPPED)

    @property
    def failed(self) -> int:
        return sum(1 for s in self.steps if s.state == "failed")

    @property
    def percent(self) -> int:
        return round(100 * self.closed / self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.open == 0

    @property
    def folded(self) -> bool:
        """Finished phases, and phases that wait for a later stage, fold to one line."""
        return self.finished or bool(self.waits)

    @property
    def has_checks(self) -> bool:
        return any(s.can_run for s in self.steps)


@dataclass
class Checklist:
    phases: list[PhaseView]

    @property
    def total(self) -> int:
        return sum(p.total for p in self.phases)

    @property
    def closed(self) -> int:
        return sum(p.closed for p in self.phases)

    @property
    def percent(self) -> int:
        return round(100 * self.closed / self.total) if self.total else 0

    def step(self, step_id: int) -> StepView | None:
        return next((s for p in self.phases for s in p.steps if s.pk == step_id), None)

    def phase(self, phase_id: int) -> PhaseView | None:
        return next((p for p in self.phases if p.phase.pk == phase_id), None)

    def phase_of(self, step_id: int) -> PhaseView | None:
        return next((p for p in self.phases if any(s.pk == step_id for s in p.steps)), None)


def stage_refusals(upgrade: Upgrade) -> dict[str, str]:
    """For each stage, why its steps wait ("" when they can be worked on)."""
    if upgrade.is_finished:
        ended = f"the upgrade is {upgrade.get_status_display().lower()}: its checklist is closed."
        return dict.fromkeys(PhaseStage.values, ended)
    return {stage: upgrade.stage_refusal(stage) for stage in PhaseStage.values}


def checklist(upgrade: Upgrade) -> Checklist:
    """Every phase and step with its latest runs, from four queries whatever the size."""
    refusals = stage_refusals(upgrade)
    phases = {
        p.pk: PhaseView(phase=p, waits=refusals.get(p.stage, ""))
        for p in UpgradePhase.objects.filter(upgrade=upgrade).order_by("order")
    }
    latest: dict[int, CheckRun] = {}
    finished: dict[int, CheckRun] = {}
    runs = (
        CheckRun.objects.filter(upgrade=upgrade, step__isnull=False)
        .only("id", "step_id", "status", "reason", "created_at", "finished_at", "upgrade_id",
              "duration_ms", "kind", "title")
        .order_by("step_id", "-created_at", "-id")
    )  # fmt: skip
    for run in runs:
        latest.setdefault(run.step_id, run)
        if run.status not in ACTIVE_RUN_STATUSES and run.status != RunStatus.CANCELLED:
            finished.setdefault(run.step_id, run)
    steps = ChecklistStep.objects.filter(upgrade=upgrade).select_related("assignee", "completed_by")
    environment = upgrade.environment
    for step in steps.order_by("phase__order", "order"):
        view = phases[step.phase_id]
        previous = view.steps[-1].step.section if view.steps else None
        view.steps.append(
            StepView(
                step=step,
                last_run=latest.get(step.pk),
                last_check=finished.get(step.pk),
                waits=view.waits,
                runs_here=selectors.step_runs_here(step, environment, upgrade),
                first_in_section=step.section != previous,
            )
        )
    return Checklist(phases=list(phases.values()))


def locks_key(upgrade: Upgrade) -> str:
    """Which stages wait, as a short string the runs panel carries between polls."""
    refusals = stage_refusals(upgrade)
    return "".join("1" if refusals[s] else "0" for s in PhaseStage.values)


def stages_changed(before: str, after: str) -> set[str]:
    stages = list(PhaseStage.values)
    if len(before) != len(stages):
        return set(stages)
    return {s for s, b, a in zip(stages, before, after, strict=True) if b != a}
