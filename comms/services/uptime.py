"""Daily uptime per service, rolled up by the scheduler from the health samples.

Every health refresh keeps one ComponentSample per service. `status_uptime_rollup` (a beat task)
counts each day's samples by state into one ComponentDay row per service and day, then prunes
samples of days already closed. The page reads the ComponentDay rows of the last 90 days: the
same few rows whatever the history, never the samples.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from comms.models import ComponentDay, ComponentSample, ComponentStatus

UPTIME_DAYS = 90
# Samples of the day before yesterday and older are rolled up for good, then deleted.
KEEP_SAMPLE_DAYS = 2


def status_uptime_rollup(*, now: datetime | None = None) -> dict[str, int]:
    """Count every day that still has samples into its ComponentDay rows (idempotent: a day is
    recounted from all its samples), then delete samples of closed days. Returns counts."""
    now = now or timezone.now()
    first = ComponentSample.objects.aggregate(at=Min("at"))["at"]
    if first is None:
        return {"days": 0, "pruned": 0}
    rows = (
        ComponentSample.objects.annotate(day=TruncDate("at", tzinfo=UTC))
        .values("environment_key", "name", "day")
        .annotate(
            samples=Count("id"),
            degraded=Count("id", filter=Q(status=ComponentStatus.DEGRADED_PERFORMANCE)),
            partial=Count("id", filter=Q(status=ComponentStatus.PARTIAL_OUTAGE)),
            major=Count("id", filter=Q(status=ComponentStatus.MAJOR_OUTAGE)),
            maintenance=Count("id", filter=Q(status=ComponentStatus.UNDER_MAINTENANCE)),
        )
        .order_by()
    )
    keep_from = datetime.combine(
        now.astimezone(UTC).date() - timedelta(days=KEEP_SAMPLE_DAYS - 1), time.min, tzinfo=UTC
    )
    written = 0
    with transaction.atomic():
        for row in rows:
            ComponentDay.objects.update_or_create(
                environment_key=row["environment_key"], name=row["name"], day=row["day"],
                defaults={
                    "samples": row["samples"], "degraded": row["degraded"],
                    "partial": row["partial"], "major": row["major"],
                    "maintenance": row["maintenance"], "rolled_up_at": now,
                },
            )  # fmt: skip
            written += 1
        pruned, _ = ComponentSample.objects.filter(at__lt=keep_from).delete()
        ComponentDay.objects.filter(day__lt=now.date() - timedelta(days=UPTIME_DAYS * 4)).delete()
    return {"days": written, "pruned": pruned}
