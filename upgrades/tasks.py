"""Thin tasks: ids in, one service call each."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from upgrades import reactions, services

# A run carries its own limits (each hook's timeout, each check's rounds); the task's limits are
# a backstop well above them, so the global five minutes never cut a long deploy short. The soft
# limit stops the command's whole process tree and ends the run (a change to the target as
# "interrupted — outcome unknown"); the hard limit kills the pool process, whose commands' keeper
# then stops their trees, and the sweep settles the run.
RUN_SOFT_TIME_LIMIT = getattr(settings, "MYCELIA_RUN_TIME_LIMIT_SECONDS", 4 * 3600)


@shared_task(
    name="upgrades.check_run_execute",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=RUN_SOFT_TIME_LIMIT,
    time_limit=RUN_SOFT_TIME_LIMIT + 60,
)
def check_run_execute_task(run_id: int) -> str:
    # Late acks: a message delivered again after a worker died finds its run claimed (running,
    # interrupted or finished) and does nothing; only the sweep decides what happens next.
    return services.check_run_execute(run_id=run_id)


@shared_task(name="upgrades.check_runs_sweep", ignore_result=True)
def check_runs_sweep_task() -> dict[str, int]:
    return services.check_runs_sweep()


@shared_task(name="upgrades.monitoring_tick", ignore_result=True)
def monitoring_tick_task() -> int:
    """The scheduler's beat: fan out the samples that are due, close windows that ran out."""
    services.monitoring_windows_close_expired()
    due = services.monitoring_due()
    for upgrade_id in due:
        monitoring_sample_task.delay(upgrade_id)
    return len(due)


@shared_task(name="upgrades.monitoring_sample", acks_late=True)
def monitoring_sample_task(upgrade_id: int) -> str:
    sample = services.monitoring_sample_take(upgrade_id=upgrade_id)
    return sample.reason if sample else "not due"


@shared_task(name="upgrades.monitoring_baseline", acks_late=True)
def monitoring_baseline_task(upgrade_id: int) -> str:
    return services.monitoring_baseline_take(upgrade_id=upgrade_id).reason


@shared_task(name="upgrades.reviews_remind", ignore_result=True)
def reviews_remind_task() -> dict[str, int]:
    return services.reviews_remind()


@shared_task(name="upgrades.status_health_refresh", ignore_result=True)
def status_health_refresh_task() -> None:
    """Hand the status page the environments to read /ops/status.json from (comms fetches)."""
    from comms.tasks import status_health_refresh_task as comms_refresh
    from upgrades.models import Environment

    environments = [
        {"key": e.slug, "name": e.name, "status_url": e.status_url,
         "timeout": e.request_timeout_seconds, "public": e.shown_on_status_page}
        for e in Environment.objects.exclude(base_url="")
    ]  # fmt: skip
    comms_refresh.delay(environments)


@shared_task(name="upgrades.events_react", ignore_result=True)
def events_react_task() -> int:
    """The outbox sweep: reactions to events that no request got to (upgrades.reactions)."""
    return reactions.events_react()


# The set-up pages' tasks (hook tests): Celery discovers `tasks` modules only.
from upgrades import tasks_setup  # noqa: E402, F401
