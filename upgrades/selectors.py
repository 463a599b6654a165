"""Reads that the upgrade pages share: the checklist with its progress, and lists."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Prefetch, Q, QuerySet
from django.utils import timezone

from comms.selectors import messages_for_upgrade
from flags.selectors import flag_events_between
from upgrades.models import (
    ACTIVE_RUN_STATUSES,
    FINISHED_STATUSES,
    Artifact,
    ArtifactKind,
    ChecklistStep,
    CheckRun,
    CommonIssue,
    DeploymentFreeze,
    Environment,
    EventKind,
    Facts,
    FreezeEvent,
    HookArgumentError,
    HookMode,
    MonitoringSample,
    MonitoringWindow,
    Operation,
    PhaseStage,
    PostUpgradeReview,
    RollbackState,
    RunKind,
    RunStatus,
    SamplePhase,
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
from upgrades.playbook import FLAG_CLI_DISABLE, FLAG_CLI_ENABLE, OPERATION_BY_COMMAND
from upgrades.runners import prometheus, ssh_files


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
    upgrades = Upgrade.objects.select_related("environment", "owner")
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


def attach_progress(upgrades: list[Upgrade]) -> list[Upgrade]:
    """Steps closed and total for one page of upgrades, in one query over just their steps
    (counting in the list query itself would aggregate the whole history first)."""
    counts = (
        ChecklistStep.objects.filter(upgrade_id__in=[u.pk for u in upgrades])
        .values("upgrade_id")
        .annotate(total=Count("id"), closed=Count("id", filter=~Q(status=StepStatus.OPEN)))
    )
    by_upgrade = {row["upgrade_id"]: row for row in counts}
    for upgrade in upgrades:
        row = by_upgrade.get(upgrade.pk, {"total": 0, "closed": 0})
        upgrade.steps_total, upgrade.steps_closed = row["total"], row["closed"]
    return upgrades


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


def solutions_for(run: CheckRun) -> list[CommonIssue]:
    """The common issues (staff-edited records) that match a run that did not pass."""
    if run.status in (RunStatus.PASSED, RunStatus.QUEUED, RunStatus.RUNNING):
        return []
    return [issue for issue in CommonIssue.objects.all() if run.action in issue.applies_to]


# --- the monitoring chart ------------------------------------------------------------------------

CHART_W, CHART_H, CHART_PAD = 640, 150, 28
MARKER_KINDS = {
    EventKind.TRANSITION: "state",
    EventKind.ROLLBACK: "rollback",
    EventKind.GUARD_TRIPPED: "guard",
    EventKind.RUN_FINISHED: "run",
}


@dataclass
class ChartSeries:
    title: str
    unit: str
    points: str
    dots: list[tuple[float, float, bool]]
    baseline_y: float | None
    threshold_y: float | None
    max_label: str
    latest: str
    source: str = ""  # "Prometheus" when the line is drawn from a range query
    query: str = ""  # the PromQL query of that range, named on the line for people


@dataclass
class MonitoringChart:
    window: MonitoringWindow
    series: list[ChartSeries]
    markers: list[tuple[float, str, str]]
    start_label: str
    end_label: str
    samples: int
    failing: int
    prometheus_note: str = ""  # why the Prometheus lines are missing, for people
    deploy_x: float | None = None  # where the deploy (end of the baseline) sits


# Before the deploy, the chart reads Prometheus this far back: the baseline to compare with.
PROMETHEUS_BASELINE = timedelta(minutes=15)
PROMETHEUS_CHART_TIMEOUT_S = 2.0  # the page waits at most this long per range query
PROMETHEUS_CHARTED = ("error_rate", "latency_p95_ms")


def _prometheus_ranges(
    environment: Environment, queries: dict[str, str], start: datetime, end: datetime
) -> tuple[dict[str, list[tuple[float, float]]], str]:
    """One range query per charted threshold that has a PromQL query, each with a short
    timeout; the first failure stops the others (a dead Prometheus costs one timeout) and is
    returned as a note for people. Never raises."""
    try:
        auth = environment.prometheus_auth()
    except prometheus.SecretFileError as exc:
        return {}, f"Prometheus did not answer: {exc}."
    ranges: dict[str, list[tuple[float, float]]] = {}
    for metric, query in queries.items():
        answer = prometheus.prometheus_range(
            base_url=environment.prometheus_url,
            query=query,
            start=start,
            end=end,
            timeout_s=min(environment.prometheus_timeout_seconds, PROMETHEUS_CHART_TIMEOUT_S),
            auth=auth,
        )
        if answer.outcome == "inconclusive":
            continue  # no data yet for this one: the samples are drawn instead
        if answer.outcome != "passed":
            return ranges, f"Prometheus did not answer ({answer.reason}); showing the samples."
        ranges[metric] = answer.series[0]
    return ranges, ""


def monitoring_chart(upgrade: Upgrade) -> MonitoringChart | None:
    """The monitoring window drawn as server-side SVG: error rate and p95 latency over time,
    with the pre-upgrade baseline, the SLO threshold, and the moments of deploys, flag flips and
    rollbacks on the same time axis."""
    window = MonitoringWindow.objects.filter(upgrade=upgrade).first()
    if window is None:
        return None
    samples = list(MonitoringSample.objects.filter(upgrade=upgrade).order_by("at")[:2000])
    environment = upgrade.environment
    rows = list(environment.slo_thresholds.all())
    live = [s for s in samples if s.phase == SamplePhase.WINDOW]
    baseline = [s for s in samples if s.phase == SamplePhase.BASELINE]
    # From the start of the deployment, so the deploy and flag flips sit on the same axis.
    start = min(
        [window.started_at, *[s.at for s in live[:1]], upgrade.started_at or window.started_at]
    )
    end = window.ended_at or max([timezone.now(), *[s.at for s in live[-1:]]])
    deployed_at = upgrade.deployed_at or start
    queries = {
        t.metric: t.query
        for t in rows
        if t.query and t.metric in PROMETHEUS_CHARTED and environment.prometheus_url
    }
    ranges: dict[str, list[tuple[float, float]]] = {}
    note = ""
    if queries:
        # The Prometheus lines start before the deploy: their baseline is what came before.
        start = min(start, deployed_at) - PROMETHEUS_BASELINE
        ranges, note = _prometheus_ranges(environment, queries, start, end)
    span = max((end - start).total_seconds(), 1.0)

    def x_of(moment) -> float:
        fraction = min(max((moment - start).total_seconds() / span, 0.0), 1.0)
        return round(CHART_PAD + fraction * (CHART_W - 2 * CHART_PAD), 1)

    thresholds = {t.metric: t.limit for t in rows}
    series = [
        _series(
            "Error rate", "", "error_rate", live, baseline, thresholds.get("error_rate"), x_of,
            ranges.get("error_rate"), deployed_at, queries.get("error_rate", ""),
        ),
        _series(
            "Latency p95", " ms", "latency_p95_ms", live, baseline,
            thresholds.get("latency_p95_ms"), x_of, ranges.get("latency_p95_ms"), deployed_at,
            queries.get("latency_p95_ms", ""),
        ),
    ]  # fmt: skip
    events = UpgradeEvent.objects.filter(
        upgrade=upgrade, kind__in=list(MARKER_KINDS), at__gte=start, at__lte=end
    ).only("at", "kind", "to_value", "message")
    markers = [
        (x_of(e.at), MARKER_KINDS[e.kind], _marker_title(e))
        for e in events
        if e.kind != EventKind.RUN_FINISHED or "Deploy" in e.message or "flag" in e.message
    ]
    return MonitoringChart(
        window=window,
        series=series,
        markers=markers,
        start_label=timezone.localtime(start).strftime("%d %b %H:%M"),
        end_label=timezone.localtime(end).strftime("%d %b %H:%M"),
        samples=len(live),
        failing=sum(1 for s in live if not s.passed),
        prometheus_note=note,
        deploy_x=x_of(deployed_at) if queries else None,
    )


def _marker_title(event: UpgradeEvent) -> str:
    """What a marker stands for, in words people read on hover (never a raw state value)."""
    if event.kind == EventKind.TRANSITION:
        label = dict(UpgradeStatus.choices).get(event.to_value)
        return f"Now {label.lower()}" if label else event.get_kind_display()
    if event.kind == EventKind.ROLLBACK:
        return dict(RollbackState.choices).get(event.to_value, event.get_kind_display())
    if event.kind == EventKind.GUARD_TRIPPED:
        return "Guard tripped" + (f": flag turned {event.to_value}" if event.to_value else "")
    return event.message.split(". ")[0][:60] or event.get_kind_display()


def _series(
    title,
    unit,
    field_name,
    live,
    baseline,
    threshold,
    x_of,
    prom_range=None,
    deployed_at=None,
    query="",
) -> ChartSeries:
    """One chart: the samples as dots; the line from Prometheus's range when there is one
    (its baseline the mean before the deploy), else through the samples."""
    values = [getattr(s, field_name) for s in live if getattr(s, field_name) is not None]
    base_values = [getattr(s, field_name) for s in baseline if getattr(s, field_name) is not None]
    if prom_range:
        cut = deployed_at.timestamp() if deployed_at else 0
        before = [value for at, value in prom_range if at < cut]
        base_values = before or base_values
        values = [*values, *(value for _, value in prom_range)]
    base = sum(base_values) / len(base_values) if base_values else None
    top = max([*values, base or 0, threshold or 0, 1e-9]) * 1.15

    def y_of(value: float) -> float:
        return round(CHART_H - CHART_PAD - (value / top) * (CHART_H - 2 * CHART_PAD), 1)

    points = [(x_of(s.at), y_of(getattr(s, field_name)), s.passed) for s in live
              if getattr(s, field_name) is not None]  # fmt: skip
    line = " ".join(f"{x},{y}" for x, y, _ in points)
    latest = values[-1] if values else None
    if prom_range:
        line = " ".join(
            f"{x_of(datetime.fromtimestamp(at, tz=UTC))},{y_of(value)}" for at, value in prom_range
        )
        latest = prom_range[-1][1]
    return ChartSeries(
        title=title,
        unit=unit,
        points=line,
        dots=points,
        baseline_y=y_of(base) if base is not None else None,
        threshold_y=y_of(threshold) if threshold is not None else None,
        max_label=f"{top:.3g}{unit}",
        latest=f"{latest:.3g}{unit}" if latest is not None else "—",
        source="Prometheus" if prom_range else "",
        query=query if prom_range else "",
    )


# --- reviews, lessons and the dashboard ----------------------------------------------------------


def upgrade_reviews(upgrade: Upgrade) -> list[PostUpgradeReview]:
    return list(
        PostUpgradeReview.objects.filter(upgrade=upgrade)
        .select_related("owner", "completed_by")
        .prefetch_related("follow_ups__owner")
    )


def lessons_learned(*, query: str = "") -> QuerySet[PostUpgradeReview]:
    reviews = PostUpgradeReview.objects.exclude(lessons_learned="").select_related(
        "upgrade", "owner"
    )
    if query:
        reviews = reviews.filter(
            Q(lessons_learned__icontains=query)
            | Q(notes__icontains=query)
            | Q(upgrade__title__icontains=query)
        )
    return reviews.order_by("-due_at", "-id")


DASHBOARD_ROWS = 20


def dashboard() -> dict:
    """What a release manager watches: work in flight, what failed, what is coming, what is due,
    and the deployment freezes in effect or next per environment. A fixed number of queries,
    however much history there is."""
    now = timezone.now()
    active = list(
        _upgrades_with_people().filter(
            status__in=[UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING]
        )[:DASHBOARD_ROWS]
    )
    run_states = dict.fromkeys((u.pk for u in active), None)
    counts = (
        CheckRun.objects.filter(upgrade_id__in=run_states)
        .values("upgrade_id", "status")
        .annotate(n=Count("id"))
    )
    per_upgrade: dict[int, dict[str, int]] = {}
    for row in counts:
        per_upgrade.setdefault(row["upgrade_id"], {})[row["status"]] = row["n"]
    for upgrade in active:
        upgrade.run_counts = per_upgrade.get(upgrade.pk, {})
    return {
        "active": active,
        "failed_runs": list(
            CheckRun.objects.filter(
                status__in=[
                    RunStatus.FAILED,
                    RunStatus.ERROR,
                    RunStatus.TIMED_OUT,
                    RunStatus.INCONCLUSIVE,
                ],
                upgrade__status__in=[
                    UpgradeStatus.DRAFT,
                    UpgradeStatus.SCHEDULED,
                    UpgradeStatus.IN_PROGRESS,
                    UpgradeStatus.MONITORING,
                ],
            )
            .select_related("upgrade")
            .order_by("-created_at")[:DASHBOARD_ROWS]
        ),  # fmt: skip
        "upcoming": list(
            _upgrades_with_people()
            .filter(status=UpgradeStatus.SCHEDULED, window_start__gte=now)
            .order_by("window_start")[:DASHBOARD_ROWS]
        ),
        "reviews_due": list(
            PostUpgradeReview.objects.filter(status="open", due_at__lte=now + timedelta(days=2))
            .select_related("upgrade", "owner")
            .order_by("due_at")[:DASHBOARD_ROWS]
        ),
        "freezes": freezes_by_environment(now=now),
        "now": now,
    }


def _upgrades_with_people() -> QuerySet[Upgrade]:
    return Upgrade.objects.select_related("environment", "owner").order_by("-created_at")


# --- the record of an upgrade --------------------------------------------------------------------


def upgrade_report(upgrade: Upgrade) -> dict:
    """Everything that happened to one upgrade, for its self-contained report."""

    flag_changes = []
    if upgrade.upgrade_type == "feature_flag" and upgrade.flag_key:
        flag_changes = flag_events_between(
            key=upgrade.flag_key,
            environment_key=upgrade.environment.slug,
            start=upgrade.created_at,
            end=upgrade.finished_at,
        )
    samples = list(MonitoringSample.objects.filter(upgrade=upgrade).order_by("at"))
    return {
        "upgrade": upgrade,
        "checklist": upgrade_checklist(upgrade),
        "events": list(
            UpgradeEvent.objects.filter(upgrade=upgrade)
            .select_related("actor", "step")
            .order_by("at", "id")
        ),
        "runs": list(CheckRun.objects.filter(upgrade=upgrade).order_by("created_at", "id")),
        "artifacts": list(upgrade.artifacts.order_by("created_at")),
        "decisions": list(upgrade.decisions.select_related("decided_by").order_by("at")),
        "flag_changes": flag_changes,
        "messages": messages_for_upgrade(upgrade.pk),
        "monitoring": monitoring_chart(upgrade),
        "samples": samples,
        "failing_samples": [s for s in samples if not s.passed],
        "reviews": upgrade_reviews(upgrade),
        "generated_at": timezone.now(),
    }


# --- the lifecycle -----------------------------------------------------------------------------


def active_freeze(upgrade: Upgrade, *, at=None) -> DeploymentFreeze | None:
    """The deployment freeze on the upgrade's environment in effect now (or at `at`)."""
    moment = at or timezone.now()
    candidates = DeploymentFreeze.objects.filter(
        environments=upgrade.environment_id, starts_at__lte=moment
    ).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=moment))
    return next((f for f in candidates if f.covers(moment)), None)


def lifecycle_facts(upgrade: Upgrade, *, actor=None) -> Facts:
    """The facts the lifecycle table decides on, read in a handful of small queries."""
    from mycelia_ops.roles import is_release_manager

    status = upgrade.status
    ended = status in FINISHED_STATUSES
    window = (
        MonitoringWindow.objects.filter(upgrade=upgrade).first()
        if status == UpgradeStatus.MONITORING
        else None
    )
    action_running = (
        status != UpgradeStatus.CANCELLED
        and upgrade.runs.filter(
            kind__in=[RunKind.BACKUP, RunKind.DEPLOY, RunKind.ROLLBACK],
            status__in=ACTIVE_RUN_STATUSES,
        ).exists()
    )
    backups = 0
    if status in (UpgradeStatus.IN_PROGRESS, UpgradeStatus.MONITORING, UpgradeStatus.ROLLED_BACK):
        backups = len(database_backups_before_deploy(upgrade))
    freeze = None if ended else active_freeze(upgrade)
    open_required = 0
    if status == UpgradeStatus.MONITORING:
        open_required = ChecklistStep.objects.filter(
            upgrade=upgrade, required=True, status=StepStatus.OPEN
        ).count()
    return Facts(
        status=status,
        upgrade_type=upgrade.upgrade_type,
        deploy=upgrade.deploy_state,
        rollback=upgrade.rollback_state,
        approval=upgrade.approval,
        has_window_start=upgrade.window_start is not None,
        action_running=action_running,
        monitoring_open=bool(window and window.is_open),
        monitoring_due=bool(window and window.ends_at <= timezone.now()),
        freeze=freeze.name if freeze else "",
        rollback_target=upgrade.rollback_target,
        database_backups=backups,
        open_required=open_required,
        actor_is_owner=actor is not None and actor.pk == upgrade.owner_id,
        actor_can_operate=actor is None or is_release_manager(actor),
    )


def database_backups_before_deploy(upgrade: Upgrade) -> list[Artifact]:
    """This upgrade's database backups taken before its first deploy started."""
    backups = upgrade.artifacts.filter(kind=ArtifactKind.DATABASE_BACKUP)
    first_deploy = (
        upgrade.runs.filter(kind=RunKind.DEPLOY).exclude(started_at=None).order_by("started_at")
        .values_list("started_at", flat=True).first()
    )  # fmt: skip
    if first_deploy is not None:
        backups = backups.filter(created_at__lt=first_deploy)
    return list(backups)


def lifecycle_verdicts(upgrade: Upgrade, *, actor=None) -> dict[str, Verdict]:
    return lifecycle.verdicts(lifecycle_facts(upgrade, actor=actor))


# --- deployment freezes ----------------------------------------------------------------------


@dataclass
class FreezeSpan:
    """One span of a freeze: the one in effect, or the next to come."""

    freeze: DeploymentFreeze
    starts_at: datetime
    ends_at: datetime
    active: bool = False

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.freeze.environments.all()]


def _live_freezes(now: datetime) -> QuerySet[DeploymentFreeze]:
    """Freezes not lifted and not over: in effect now, or some span still to come."""
    return DeploymentFreeze.objects.filter(ended_at__isnull=True).filter(
        Q(weekly=True) | Q(ends_at__gt=now)
    )


def _span_now_or_next(freeze: DeploymentFreeze, now: datetime) -> FreezeSpan | None:
    span = freeze.next_span(now)
    if span is None:
        return None
    return FreezeSpan(freeze, span[0], span[1], active=freeze.covers(now))


def freeze_board(*, now: datetime | None = None) -> dict:
    """The freezes page: those in effect now and those to come (each with the span that
    matters), and the query for the past ones (lifted or over), newest first, to paginate."""
    now = now or timezone.now()
    live = (
        _live_freezes(now)
        .select_related("created_by")
        .prefetch_related(
            "environments", Prefetch("events", FreezeEvent.objects.select_related("actor"))
        )
    )
    spans = [s for s in (_span_now_or_next(f, now) for f in live) if s is not None]
    spans.sort(key=lambda s: (s.starts_at, s.freeze.pk))
    past = (
        DeploymentFreeze.objects.filter(
            Q(ended_at__isnull=False) | Q(weekly=False, ends_at__lte=now)
        )
        .select_related("created_by")
        .prefetch_related(
            "environments", Prefetch("events", FreezeEvent.objects.select_related("actor"))
        )
        .order_by("-ends_at", "-id")
    )
    return {
        "active": [s for s in spans if s.active],
        "upcoming": [s for s in spans if not s.active],
        "past": past,
        "now": now,
    }


@dataclass
class EnvironmentFreezes:
    environment: Environment
    active: FreezeSpan | None = None
    next: FreezeSpan | None = None


def freezes_by_environment(*, now: datetime | None = None) -> list[EnvironmentFreezes]:
    """For each environment with a freeze in effect or to come: the freeze in effect now and
    the next span to begin (another freeze's, or the next week of a weekly one). One query."""
    now = now or timezone.now()
    through = DeploymentFreeze.environments.through
    pairs = through.objects.filter(deploymentfreeze__in=_live_freezes(now)).select_related(
        "deploymentfreeze", "environment"
    )
    freezes: dict[int, DeploymentFreeze] = {}
    rows: dict[int, EnvironmentFreezes] = {}
    for pair in pairs:
        freeze = freezes.setdefault(pair.deploymentfreeze_id, pair.deploymentfreeze)
        row = rows.setdefault(pair.environment_id, EnvironmentFreezes(pair.environment))
        current = _span_now_or_next(freeze, now)
        if current is None:
            continue
        coming = current
        if current.active:
            if row.active is None or current.ends_at > row.active.ends_at:
                row.active = current
            following = freeze.next_span(current.ends_at) if freeze.weekly else None
            coming = FreezeSpan(freeze, *following) if following else None
        if coming is not None and (row.next is None or coming.starts_at < row.next.starts_at):
            row.next = coming
    return sorted(
        (r for r in rows.values() if r.active or r.next), key=lambda r: r.environment.name
    )


def freezes_over_window(
    *, environment: Environment, starts_at: datetime, minutes: int | None
) -> list[FreezeSpan]:
    """The freezes on `environment` that a maintenance window from `starts_at` lasting
    `minutes` (a moment when not given) would fall in, each with the span it meets (`active`
    when that freeze is in effect now)."""
    ends_at = starts_at + timedelta(minutes=minutes or 1)
    now = timezone.now()
    found = []
    for freeze in (
        _live_freezes(starts_at).filter(environments=environment).prefetch_related("environments")
    ):
        span = freeze.next_span(starts_at)
        if span is not None and span[0] < ends_at:
            found.append(FreezeSpan(freeze, span[0], span[1], active=freeze.covers(now)))
    return sorted(found, key=lambda s: s.starts_at)


def freezes_in_effect(*, now: datetime | None = None) -> list[FreezeSpan]:
    """Every freeze in effect now, with its environments."""
    now = now or timezone.now()
    live = _live_freezes(now).filter(starts_at__lte=now).prefetch_related("environments")
    spans = [s for s in (_span_now_or_next(f, now) for f in live) if s and s.active]
    return sorted(spans, key=lambda s: s.ends_at)


# --- what a step really runs here (the upgrade page shows it beside the playbook's text) -------

# The playbook's placeholders, and the commands it names, as the environment carries them out.
PLAYBOOK_LOCAL_URL = "http://localhost:3000"
PLAYBOOK_FLAG_PLACEHOLDER = "feature-name"


def _environment_hooks(environment) -> dict:
    # Cached on the environment object: one query for a whole checklist.
    if not hasattr(environment, "_page_hooks"):
        environment._page_hooks = {
            op.operation: op for op in environment.operations.select_related("host")
        }
    return environment._page_hooks


def _hook_text(environment, operation: str, values: dict[str, str]) -> str:
    """The command (placeholders filled) or webhook an operation runs in `environment`."""
    import shlex

    hook = _environment_hooks(environment).get(operation)
    label = Operation(operation).label if operation in Operation.values else operation
    if hook is None:
        return (
            f"Nothing yet: {environment.name} has no “{label}” operation set up "
            "(an administrator adds it under Set-up)."
        )
    if hook.mode == HookMode.WEBHOOK:
        return f"POST {hook.webhook_url}"

    if hook.mode == HookMode.SSH:
        # The files are on the host: in a folder of the run's own there, made and removed by it.
        values = {**values, **_host_paths()}
    try:
        argv = hook.argv_filled(values, keep_missing=True)
    except HookArgumentError as error:
        return f"Not runnable as set up: {error.message}"
    if hook.mode == HookMode.SSH:
        where = hook.host.login if hook.host else "no host yet (an administrator chooses one)"
        return f"{shlex.join(argv)} on {where}"
    return shlex.join(argv)


def _host_paths() -> dict[str, str]:
    """{output_path} and {backup_path} as a hook on a host gets them (upgrades.runners.ssh_files):
    a dump written there and brought back, a backup put there before the restore hook runs."""
    folder = f"{ssh_files.REMOTE_SCRATCH_BASE}/mycelia-run-…"
    return {
        "output_path": f"{folder}/db-backup-<time>.dump",
        "backup_path": f"{folder}/<the backup you choose>",
    }


def step_runs_here(step: ChecklistStep, environment, upgrade: Upgrade) -> str:
    """What a step really does in `environment` for `upgrade`, in one line a person can check:
    the hook's command with its placeholders filled, the webhook, the real health or status URL,
    the real flag. "" for a manual step whose playbook text names nothing environment-specific.
    """

    config = step.check_config or {}
    base = environment.base_url.rstrip("/") or "(no base URL set)"
    values = {
        "version": upgrade.version_to or "(no target version)",
        "backup_path": "(the backup you choose)",
        # where the worker has the hook write it, before it goes to the artifacts storage
        "output_path": f"{settings.DATA_DIR}/scratch/upgrade-{upgrade.pk}-run-…/db-backup-<time>.dump",
    }
    if step.kind == StepKind.HTTP_HEALTH:
        url = base + (config.get("path") or environment.health_path)
        expect = config.get("expected_status")
        method = config.get("method", "GET")
        return f"{method} {url}" + (f", expecting HTTP {expect}" if expect else ", expecting 2xx")
    if step.kind == StepKind.STATUS_JSON:
        return f"GET {base}{environment.status_path}, every component judged"
    if step.kind == StepKind.SLO:
        if config.get("source") == "command":
            return _hook_text(environment, Operation.SLO_CHECK, values)
        if not hasattr(environment, "_page_thresholds"):
            environment._page_thresholds = list(environment.slo_thresholds.all())
        thresholds = environment._page_thresholds
        if not thresholds:
            return (
                f"GET {base}{environment.status_path}; {environment.name} has no SLO thresholds "
                "yet (an administrator sets them under Set-up)."
            )
        held = ", ".join(
            f"{t.get_metric_display().lower()} {t.get_operator_display()} {t.limit:g}"
            for t in thresholds
        )
        return f"GET {base}{environment.status_path} and hold {held}"
    if step.kind == StepKind.COMMAND:
        return _hook_text(environment, step.operation, values)
    if step.kind == StepKind.BACKUP:
        if step.operation == "config_archive":
            folder = environment.config_directory or "(no configuration folder set)"
            return f"Archive {folder} among the upgrade's backups"
        if step.operation not in _environment_hooks(environment):
            return _hook_text(environment, step.operation, values)
        return _hook_text(environment, step.operation, values) + ", saved among the backups"
    if step.kind == StepKind.DEPLOY:
        return _deploy_text(environment, upgrade, values)
    return _manual_text(step.commands, environment, upgrade, values)


def _deploy_text(environment, upgrade: Upgrade, values: dict[str, str]) -> str:

    if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG:
        return f"Turn feature flag {upgrade.flag_key or '(none named)'} on in {environment.slug}"
    return _hook_text(environment, Operation.DEPLOY, values)


def _manual_text(commands: str, environment, upgrade: Upgrade, values: dict[str, str]) -> str:
    """A manual step's playbook commands with what this environment has in their place."""

    if not commands.strip():
        return ""
    flag = upgrade.flag_key if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG else ""
    lines = []
    for line in commands.splitlines():
        text = line
        if flag and FLAG_CLI_ENABLE in text:
            text = f"Turn feature flag {flag} on in {environment.slug} (the Deploy action does it)"
        elif flag and FLAG_CLI_DISABLE in text:
            text = f"Turn feature flag {flag} off in {environment.slug} (the Roll back action)"
        else:
            longest_first = sorted(OPERATION_BY_COMMAND.items(), key=lambda c: -len(c[0]))
            for command, operation in longest_first:
                if command.startswith("pnpm") and command in text:
                    if operation in _environment_hooks(environment):
                        text = text.replace(command, _hook_text(environment, operation, values))
                    break
            if environment.base_url:
                text = text.replace(PLAYBOOK_LOCAL_URL, environment.base_url.rstrip("/"))
            if flag:
                text = text.replace(PLAYBOOK_FLAG_PLACEHOLDER, flag)
        lines.append(text)
    shown = "\n".join(lines)
    return "" if shown == commands else shown


def upgrade_freeze(upgrade: Upgrade, *, now: datetime | None = None) -> FreezeSpan | None:
    """The freeze an upgrade's page warns of: the one in effect on its environment now, else
    the first its maintenance window falls in; None when neither."""
    now = now or timezone.now()
    frozen = active_freeze(upgrade, at=now)
    if frozen is not None:
        return _span_now_or_next(frozen, now)
    if upgrade.window_start is None or upgrade.window_start < now:
        return None
    spans = freezes_over_window(
        environment=upgrade.environment,
        starts_at=upgrade.window_start,
        minutes=upgrade.window_minutes,
    )
    return spans[0] if spans else None
