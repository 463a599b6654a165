"""Liveness of the workers and the scheduler, for mycelia_ops.health."""

from __future__ import annotations

from django.utils import timezone

from comms.models import WorkerHeartbeat


def worker_heartbeat_record(*, worker: str, from_beat: bool) -> WorkerHeartbeat:
    """A liveness mark, not a state change: overwritten in place, no event row."""
    now = timezone.now()
    values = {"seen_at": now} | ({"beat_at": now} if from_beat else {})
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(worker=worker[:200], defaults=values)
    return heartbeat
