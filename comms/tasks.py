"""Thin tasks: ids and plain values in, one service call each."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from comms import services


@shared_task(
    bind=True, name="comms.delivery_send", acks_late=True, reject_on_worker_lost=True,
    max_retries=None,
)  # fmt: skip
def delivery_send_task(self, delivery_id: int) -> str:
    """The delivery row counts the attempts and gives up after COMMS_DELIVERY_MAX_ATTEMPTS;
    between attempts the task waits with exponential backoff."""
    outcome = services.delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@shared_task(name="comms.deliveries_sweep", ignore_result=True)
def deliveries_sweep_task() -> dict[str, int]:
    return services.deliveries_sweep()


@shared_task(name="comms.subscriber_confirmation_send", bind=True, acks_late=True,
             max_retries=5, default_retry_delay=30)  # fmt: skip
def subscriber_confirmation_send_task(self, subscriber_id: int) -> bool:
    try:
        return services.subscriber_confirmation_send(subscriber_id=subscriber_id)
    except Exception as exc:  # SMTP trouble: try again later
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


@shared_task(name="comms.status_windows_check", ignore_result=True)
def status_windows_check_task() -> dict[str, int]:
    return services.status_windows_check()


@shared_task(name="comms.status_reminders_send", ignore_result=True)
def status_reminders_send_task() -> int:
    """Beat, every minute: the reminder an hour before each shown window, once per window."""
    return services.status_reminders_send()


@shared_task(name="comms.status_uptime_rollup", ignore_result=True)
def status_uptime_rollup_task() -> dict[str, int]:
    """Beat: the health samples counted into daily uptime rows (the page reads only those)."""
    return services.status_uptime_rollup()


@shared_task(name="comms.status_health_refresh", ignore_result=True)
def status_health_refresh_task(environments: list[dict[str, Any]]) -> dict[str, str]:
    """environments: [{"key", "name", "status_url", "timeout"}]."""
    return services.status_health_refresh(environments=environments)


@shared_task(name="comms.ops_heartbeat", bind=True, ignore_result=True)
def ops_heartbeat_task(self) -> str:
    """Scheduled by beat: proves a worker runs and the scheduler sends work."""
    worker = self.request.hostname or socket.gethostname()
    services.worker_heartbeat_record(worker=worker, from_beat=True)
    return worker


@worker_ready.connect
def _worker_ready(sender: Any = None, **_: Any) -> None:
    # A liveness mark at start, so a worker shows before beat's first heartbeat task.
    # Never stop a worker from starting over a liveness mark.
    with contextlib.suppress(Exception):
        services.worker_heartbeat_record(
            worker=getattr(sender, "hostname", "") or socket.gethostname(), from_beat=False
        )
