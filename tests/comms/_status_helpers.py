"""Helpers for the status page tests: a production environment, upgrades that go wrong, health
documents, and a long history made in bulk."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from comms import services

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
    """`count` ended upgrades over three years with `updates_each` updates each, a tenth with a
    resolved incident, half of them in an environment not shown: the past a page must not
    read (manage.py generate_status_history)."""
    from comms.management.commands.generate_status_history import status_history_generate

    status_history_generate(count=count, updates_each=updates_each, seed=seed)
