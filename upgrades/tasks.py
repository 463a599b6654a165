"""Thin tasks: ids in, one service call each."""

from __future__ import annotations

from celery import shared_task

from upgrades import services


@shared_task(name="upgrades.check_run_execute", acks_late=True, reject_on_worker_lost=True)
def check_run_execute_task(run_id: int) -> str:
    return services.check_run_execute(run_id=run_id)


@shared_task(name="upgrades.check_runs_sweep", ignore_result=True)
def check_runs_sweep_task() -> dict[str, int]:
    return services.check_runs_sweep()
