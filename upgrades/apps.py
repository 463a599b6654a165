from __future__ import annotations

from django.apps import AppConfig


class UpgradesConfig(AppConfig):
    name = "upgrades"
    verbose_name = "Upgrades"

    def ready(self) -> None:
        from mycelia_ops.health import register_component

        register_component("runs", runs_component)


def runs_component() -> dict:
    """Queued and running check runs for /ops/status.json; runs stuck waiting for the broker
    for over a minute are a warning."""
    from datetime import timedelta

    from django.db.models import Count, Q
    from django.utils import timezone

    from upgrades.models import CheckRun, RunStatus

    minute_ago = timezone.now() - timedelta(minutes=1)
    counts = CheckRun.objects.aggregate(
        queued=Count("id", filter=Q(status=RunStatus.QUEUED)),
        running=Count("id", filter=Q(status=RunStatus.RUNNING)),
        unsent=Count(
            "id",
            filter=Q(status=RunStatus.QUEUED, nudged_at__isnull=True, created_at__lt=minute_ago),
        ),
    )
    return {"status": "warning" if counts["unsent"] else "ok", **counts}
