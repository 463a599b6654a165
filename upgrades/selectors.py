"""Reads that the upgrade pages share: the checklist with its progress, and lists."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from upgrades.models import (
    ChecklistStep,
    CheckRun,
    PhaseStage,
    RunStatus,
    StepStatus,
    Upgrade,
    UpgradeEvent,
    UpgradePhase,
)


@dataclass
class Progress:
    closed: int = 0
    total: int = 0
    required_open: int = 0

    @property
    def percent(self) -> int:
        return round(100 * self.closed / self.total) if self.total else 0

    def add(self, step: ChecklistStep) -> None:
        self.total += 1
        if step.is_closed:
            self.closed += 1
        elif step.required:
            self.required_open += 1


@dataclass
class PhaseView:
    phase: UpgradePhase
    steps: list[ChecklistStep] = field(default_factory=list)
    progress: Progress = field(default_factory=Progress)

    @property
    def has_checks(self) -> bool:
        return any(s.is_automated and s.kind != "deploy" and not s.is_closed for s in self.steps)


@dataclass
class Checklist:
    phases: list[PhaseView]
    overall: Progress
    pre_required_open: int


def upgrade_checklist(upgrade: Upgrade) -> Checklist:
    """The checklist grouped by phase with progress, from two queries whatever its size."""
    phases = {p.pk: PhaseView(phase=p) for p in UpgradePhase.objects.filter(upgrade=upgrade)}
    overall = Progress()
    pre_required_open = 0
    steps = ChecklistStep.objects.filter(upgrade=upgrade).select_related("assignee", "completed_by")
    for step in steps:
        view = phases[step.phase_id]
        view.steps.append(step)
        view.progress.add(step)
        overall.add(step)
        if (
            upgrade.has_deployment_gate
            and view.phase.stage == PhaseStage.PRE
            and step.required
            and not step.is_closed
        ):
            pre_required_open += 1
    ordered = sorted(phases.values(), key=lambda v: v.phase.order)
    return Checklist(phases=ordered, overall=overall, pre_required_open=pre_required_open)


def upgrade_list(
    *, upgrade_type: str = "", status: str = "", environment: str = "", query: str = ""
) -> QuerySet[Upgrade]:
    upgrades = Upgrade.objects.select_related("environment", "owner").annotate(
        steps_total=Count("steps"),
        steps_closed=Count("steps", filter=~Q(steps__status=StepStatus.OPEN)),
    )
    if upgrade_type:
        upgrades = upgrades.filter(upgrade_type=upgrade_type)
    if status:
        upgrades = upgrades.filter(status=status)
    if environment:
        upgrades = upgrades.filter(environment__slug=environment)
    if query:
        upgrades = upgrades.filter(
            Q(title__icontains=query)
            | Q(version_to__icontains=query)
            | Q(flag_key__icontains=query)
        )
    return upgrades.order_by("-created_at", "-id")


def upgrade_timeline(upgrade: Upgrade) -> QuerySet[UpgradeEvent]:
    return UpgradeEvent.objects.filter(upgrade=upgrade).select_related("actor", "step")


RUNS_ON_PAGE = 30


def upgrade_runs(upgrade: Upgrade) -> QuerySet[CheckRun]:
    return CheckRun.objects.filter(upgrade=upgrade).select_related("step")[:RUNS_ON_PAGE]


def last_run_by_step(upgrade: Upgrade) -> dict[int, CheckRun]:
    """Each automated step's latest run, from one query."""
    latest: dict[int, CheckRun] = {}
    runs = CheckRun.objects.filter(upgrade=upgrade, step__isnull=False).only(
        "id", "step_id", "status", "reason", "created_at", "upgrade_id"
    )
    for run in runs.order_by("step_id", "-created_at", "-id"):
        latest.setdefault(run.step_id, run)
    return latest


def solutions_for(run: CheckRun) -> list[dict[str, str]]:
    """The playbook's common issues that match a run that did not pass."""
    from upgrades.playbook import COMMON_ISSUES

    if run.status in (RunStatus.PASSED, RunStatus.QUEUED, RunStatus.RUNNING):
        return []
    return [issue for issue in COMMON_ISSUES if run.action in issue["applies_to"]]
