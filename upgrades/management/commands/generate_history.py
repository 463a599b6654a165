"""Fill the database with a long upgrade history, for scale tests and `make bench-history`:
by default 10,000 upgrades with 50 checklist steps each (500,000 steps), their timelines and
some runs, spread over the last three years."""

from __future__ import annotations

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.utils import timezone

from upgrades.models import (
    TYPE_PROFILES,
    ChecklistStep,
    CheckRun,
    Environment,
    EnvironmentKind,
    EventKind,
    PhaseStage,
    RunStatus,
    StepStatus,
    Upgrade,
    UpgradeEvent,
    UpgradePhase,
    UpgradeStatus,
    UpgradeType,
)

STATUSES = [
    (UpgradeStatus.COMPLETED, 70),
    (UpgradeStatus.ROLLED_BACK, 8),
    (UpgradeStatus.FAILED, 3),
    (UpgradeStatus.CANCELLED, 9),
    (UpgradeStatus.DRAFT, 4),
    (UpgradeStatus.SCHEDULED, 3),
    (UpgradeStatus.IN_PROGRESS, 2),
    (UpgradeStatus.MONITORING, 1),
]
PHASES = [("Pre-Upgrade Checklist", PhaseStage.PRE), ("Upgrade Process", PhaseStage.DEPLOY),
          ("Upgrade Monitoring", PhaseStage.POST), ("Documentation Updates", PhaseStage.POST),
          ("Post-Upgrade Review", PhaseStage.POST)]  # fmt: skip


class Command(BaseCommand):
    help = "Generate a large upgrade history (default 10,000 upgrades x 50 steps)."

    def add_arguments(self, parser):
        parser.add_argument("--upgrades", type=int, default=10_000)
        parser.add_argument("--steps", type=int, default=50, help="Checklist steps per upgrade.")
        parser.add_argument("--batch", type=int, default=500, help="Upgrades per transaction.")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args, upgrades: int, steps: int, batch: int, seed: int, **options):
        rng = random.Random(seed)
        owner, _ = get_user_model().objects.get_or_create(username="history")
        environments = [
            Environment.objects.get_or_create(
                slug=slug, defaults={"name": f"History {slug}", "kind": kind}
            )[0]
            for slug, kind in (
                ("history-staging", EnvironmentKind.STAGING),
                ("history-production", EnvironmentKind.PRODUCTION),
            )
        ]
        statuses = [s for s, weight in STATUSES for _ in range(weight)]
        now = timezone.now()
        made = 0
        while made < upgrades:
            size = min(batch, upgrades - made)
            with transaction.atomic():
                self._batch(rng, size, made, steps, owner, environments, statuses, now)
            made += size
            self.stdout.write(f"\r{made}/{upgrades} upgrades", ending="")
            self.stdout.flush()
        self.stdout.write(f"\nMade {made} upgrades with {made * steps} checklist steps.")

    def _batch(self, rng, size, offset, steps, owner, environments, statuses, now):
        rows = []
        for n in range(size):
            kind = rng.choice(UpgradeType.values)
            created = now - timedelta(minutes=rng.randint(0, 3 * 365 * 24 * 60))
            status = rng.choice(statuses)
            rows.append(
                Upgrade(
                    upgrade_type=kind,
                    emergency_kind="security_patch" if kind == UpgradeType.EMERGENCY else "",
                    title=f"History upgrade {offset + n + 1}",
                    version_from="1.0.0",
                    version_to=f"1.{offset + n + 1}.0",
                    flag_key="history-flag" if kind == UpgradeType.FEATURE_FLAG else "",
                    environment=rng.choice(environments),
                    owner=owner,
                    risk=TYPE_PROFILES[kind]["risk"],
                    rollback_method=TYPE_PROFILES[kind]["rollback"],
                    status=status,
                    created_at=created,
                    started_at=created + timedelta(hours=1),
                    window_start=created if status == UpgradeStatus.SCHEDULED else None,
                )
            )
        made = Upgrade.objects.bulk_create(rows)
        phases = UpgradePhase.objects.bulk_create(
            UpgradePhase(upgrade=u, order=i + 1, title=title, stage=stage)
            for u in made
            for i, (title, stage) in enumerate(PHASES)
        )
        by_upgrade: dict[int, list[UpgradePhase]] = {}
        for phase in phases:
            by_upgrade.setdefault(phase.upgrade_id, []).append(phase)
        step_rows = []
        for upgrade in made:
            closed = upgrade.status in (UpgradeStatus.COMPLETED, UpgradeStatus.ROLLED_BACK)
            for i in range(steps):
                step_rows.append(
                    {
                        "upgrade_id": upgrade.pk,
                        "phase_id": by_upgrade[upgrade.pk][i * len(PHASES) // steps].pk,
                        "order": i + 1,
                        "title": f"Step {i + 1}",
                        "status": StepStatus.DONE
                        if closed or rng.random() < 0.3
                        else StepStatus.OPEN,
                        "required": i % 5 != 4,
                    }
                )
        _rows_insert(ChecklistStep, step_rows)
        UpgradeEvent.objects.bulk_create(
            UpgradeEvent(upgrade=u, kind=EventKind.CREATED, actor=owner, at=u.created_at,
                         to_value=UpgradeStatus.DRAFT, message="Generated history",
                         reacted_at=u.created_at)  # history: nothing left to react to
            for u in made
        )  # fmt: skip
        CheckRun.objects.bulk_create(
            CheckRun(upgrade=u, action="http_health", title="Verify deployment",
                     status=rng.choice([RunStatus.PASSED] * 9 + [RunStatus.FAILED]),
                     created_at=u.created_at, reason="generated")
            for u in made
        )  # fmt: skip


def _rows_insert(model, rows: list[dict]) -> None:
    """Insert plain rows (attname -> value; every other column takes its field's default).

    Half a million steps is most of the history: PostgreSQL takes them through COPY, several
    times faster than bulk_create's model instances and bound parameters."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    if connection.vendor != "postgresql":
        model.objects.bulk_create((model(**row) for row in rows), batch_size=5000)
        return
    defaults = {f.attname: f.get_db_prep_save(f.get_default(), connection) for f in fields}
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row.get(f.attname, defaults[f.attname]) for f in fields])
