"""Helpers for the status page tests: a production environment, upgrades that go wrong, health
documents, and a long history made in bulk."""

from __future__ import annotations

import random
from datetime import timedelta

from django.utils import timezone

from comms import services
from comms.models import (
    ComponentHealth,
    StatusEnvironment,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
)

HEALTHY = {
    "version": "1.5.0",
    "services": [
        {"name": "api", "status": "healthy", "error_rate": 0.082, "latency_p95_ms": 120,
         "availability": 0.9995},
        {"name": "redemption", "status": "healthy", "error_rate": 0.001, "latency_p95_ms": 80,
         "availability": 0.999},
    ],
}  # fmt: skip


def health(key: str, name: str, *, public: bool, document: dict | None = None, **statuses):
    """Record one look at an environment; statuses override services' words by name."""
    document = document or {
        **HEALTHY,
        "services": [
            {**s, "status": statuses.get(s["name"], s["status"])} for s in HEALTHY["services"]
        ],
    }
    return services.status_health_record(
        environment_key=key, environment_name=name, document=document, error="", public=public
    )


def psync(upgrade_id: int = 1, *, key="production", name="Production", public=True, **overrides):
    now = timezone.now()
    values = {
        "upgrade_id": upgrade_id, "title": f"CVE-2026-1234 patch {upgrade_id}",
        "type_label": "Emergency", "environment_key": key, "environment_name": name,
        "public": public, "status": "scheduled",
        "window_start": now + timedelta(hours=2), "window_end": now + timedelta(hours=3),
        "progress_percent": 0, "phase_title": "", "url": f"http://testserver/upgrades/{upgrade_id}/",
    }  # fmt: skip
    values.update(overrides)
    return services.status_maintenance_sync(**values)


def long_history(count: int = 10_000, updates_each: int = 4, *, seed: int = 7) -> None:
    """`count` ended public upgrades over three years with `updates_each` updates each, a
    tenth of them with a resolved incident, and as many hidden ones: the past a page must not
    read. Made with bulk inserts (seconds, not minutes)."""
    rng = random.Random(seed)
    now = timezone.now()
    StatusEnvironment.objects.get_or_create(
        environment_key="history", defaults={"environment_name": "History", "is_public": True}
    )
    rows = []
    for n in range(count):
        ended = now - timedelta(days=8 + rng.randint(0, 3 * 365), minutes=rng.randint(0, 1440))
        rows.append(
            StatusMaintenance(
                upgrade_id=1_000_000 + n, public_id=f"h{n:011d}", title=f"History {n}",
                environment_key="history", environment_name="History",
                lifecycle="completed" if n % 10 else "rolled_back", status="completed",
                is_public=n % 2 == 0, window_start=ended - timedelta(hours=1), window_end=ended,
                created_at=ended - timedelta(days=1), updated_at=ended,
                started_at=ended - timedelta(hours=1), completed_at=ended,
            )
        )  # fmt: skip
    made = StatusMaintenance.objects.bulk_create(rows, batch_size=2000)
    made = list(StatusMaintenance.objects.filter(upgrade_id__gte=1_000_000).order_by("id"))
    incidents = StatusIncident.objects.bulk_create(
        [
            StatusIncident(
                maintenance=m, public_id=f"i{m.pk:011d}", name="Maintenance did not complete",
                status="resolved", impact="minor", created_at=m.completed_at,
                published_at=m.completed_at, updated_at=m.completed_at,
                resolved_at=m.completed_at + timedelta(hours=1),
            )
            for m in made
            if m.lifecycle == "rolled_back"
        ],
        batch_size=2000,
    )  # fmt: skip
    by_maintenance = {i.maintenance_id: i for i in incidents}
    updates = []
    for m in made:
        for k in range(updates_each):
            incident = by_maintenance.get(m.pk) if k == updates_each - 1 else None
            updates.append(
                StatusUpdate(
                    maintenance=m, public_id=f"u{m.pk:08d}{k:03d}", incident=incident,
                    status="resolved" if incident else "completed",
                    body="The upgrade is complete.",
                    created_at=m.completed_at - timedelta(minutes=10 * (updates_each - k)),
                )
            )  # fmt: skip
    StatusUpdate.objects.bulk_create(updates, batch_size=5000)
    ComponentHealth.objects.get_or_create(
        environment_key="history", name="api",
        defaults={"environment_name": "History", "status": "operational"},
    )  # fmt: skip
