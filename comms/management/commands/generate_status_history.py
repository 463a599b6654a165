"""Fill the status page's tables with a long past, for scale tests and `make bench-history`:
by default 10,000 ended upgrades over three years with 4 updates each (40,000 updates), a tenth
rolled back with a resolved incident, half of them in an environment not shown. Bulk inserts:
seconds, not minutes. Idempotent per --base (upgrade ids base.. base+count)."""

from __future__ import annotations

import random
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from comms.models import (
    StatusEnvironment,
    StatusIncident,
    StatusMaintenance,
    StatusUpdate,
)

BASE = 1_000_000


def status_history_generate(*, count: int, updates_each: int = 4, seed: int = 7,
                            base: int = BASE) -> int:  # fmt: skip
    rng = random.Random(seed)
    now = timezone.now()
    have = StatusMaintenance.objects.filter(upgrade_id__gte=base, upgrade_id__lt=base + count)
    if have.count() >= count:
        return 0
    have.delete()
    with transaction.atomic():
        for key, public in (("history", True), ("history-hidden", False)):
            StatusEnvironment.objects.get_or_create(
                environment_key=key, defaults={"environment_name": key.title(), "is_public": public}
            )
        rows = []
        for n in range(count):
            ended = now - timedelta(days=8 + rng.randint(0, 3 * 365), minutes=rng.randint(0, 1440))
            public = n % 2 == 0
            rows.append(
                StatusMaintenance(
                    upgrade_id=base + n, public_id=f"h{base + n:011d}"[-12:],
                    title=f"History {n}", environment_key="history" if public else "history-hidden",
                    environment_name="History", lifecycle="completed" if n % 10 else "rolled_back",
                    status="completed", is_public=public, window_start=ended - timedelta(hours=1),
                    window_end=ended, created_at=ended - timedelta(days=1), updated_at=ended,
                    started_at=ended - timedelta(hours=1), completed_at=ended,
                )
            )  # fmt: skip
        StatusMaintenance.objects.bulk_create(rows, batch_size=2000)
        made = list(
            StatusMaintenance.objects.filter(upgrade_id__gte=base, upgrade_id__lt=base + count)
        )
        incidents = StatusIncident.objects.bulk_create(
            [
                StatusIncident(
                    maintenance=m, public_id=f"i{m.upgrade_id:011d}"[-12:],
                    name="Maintenance did not complete as planned", status="resolved",
                    impact="minor", created_at=m.completed_at, published_at=m.completed_at,
                    updated_at=m.completed_at, resolved_at=m.completed_at + timedelta(hours=1),
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
                        maintenance=m, public_id=f"u{m.upgrade_id:08d}{k:03d}"[-12:],
                        incident=incident, status="resolved" if incident else "completed",
                        body="The upgrade is complete.",
                        created_at=m.completed_at - timedelta(minutes=10 * (updates_each - k)),
                    )
                )  # fmt: skip
        StatusUpdate.objects.bulk_create(updates, batch_size=5000)
    return count


class Command(BaseCommand):
    help = "Generate a long status page history (default 10,000 upgrades, 40,000 updates)."

    def add_arguments(self, parser):
        parser.add_argument("--upgrades", type=int, default=10_000)
        parser.add_argument("--updates", type=int, default=4, help="Updates per upgrade.")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, upgrades: int, updates: int, seed: int, **options):
        made = status_history_generate(count=upgrades, updates_each=updates, seed=seed)
        self.stdout.write(f"Made {made} past upgrades with {made * updates} status updates.")
