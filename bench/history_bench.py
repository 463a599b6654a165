"""How the pages hold up under a long history: 10,000 upgrades and 500,000 checklist steps in
PostgreSQL. Prints, per page, the SQL queries one request makes and its p50/p95 time, side by
side with a minimal Django view timed in the same run.

Then the public status page, every Statuspage v2 endpoint, the feed, the calendar and the
history page, as an anonymous visitor sees them: once against an empty database (the same
schema in `<name>_empty`, only today's few maintenances and services) and once with 10,000 past
upgrades and 40,000 status updates behind the same today (manage.py generate_status_history),
side by side in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mycelia_history make bench-history

The database is created and filled (manage.py generate_history) when it holds fewer upgrades
than --upgrades; it is kept for the next run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _ensure_database(url: str, *, fresh: bool = False) -> None:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    import psycopg

    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


STATUS_PATHS = [
    ("status page", "/status/"),
    ("status page, live poll", "/status/?part=live"),
    ("status.json", "/status/api/v2/status.json"),
    ("summary.json", "/status/api/v2/summary.json"),
    ("components.json", "/status/api/v2/components.json"),
    ("incidents.json", "/status/api/v2/incidents.json"),
    ("incidents/unresolved.json", "/status/api/v2/incidents/unresolved.json"),
    ("scheduled-maintenances.json", "/status/api/v2/scheduled-maintenances.json"),
    ("…/upcoming.json", "/status/api/v2/scheduled-maintenances/upcoming.json"),
    ("…/active.json", "/status/api/v2/scheduled-maintenances/active.json"),
    ("feed.atom", "/status/feed.atom"),
    ("calendar.ics", "/status/calendar.ics"),
    ("history (this month)", "/status/history/"),
    ("summary.json, 304", "/status/api/v2/summary.json#304"),
]


def _measure(client, path: str, requests: int) -> tuple[int, list[float], int, int]:
    """(queries, timings in ms, status, bytes) of GET path, after 3 warm-ups."""
    from django.db import connection

    headers = {}
    if path.endswith("#304"):
        path = path.removesuffix("#304")
        headers["If-None-Match"] = client.get(path)["ETag"]
    if "part=live" in path:
        headers["HX-Request"] = "true"
    for _ in range(3):
        client.get(path, headers=headers)
    queries: list[str] = []

    def count(execute, sql, params, many, context, queries=queries):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path, headers=headers)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        again = client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        assert again.status_code == response.status_code
    return len(queries), timings, response.status_code, len(response.content)


def _status_today() -> None:
    """Today's status, the same in both databases: services of a shown environment, one
    maintenance running, one scheduled, one rolled back yesterday with a published incident."""
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.utils import timezone

    from comms import services
    from comms.models import StatusIncident, StatusMaintenance

    services.comms_seed()  # the subscriber notices' templates
    # Made afresh on every run, so both databases hold exactly the same today.
    StatusMaintenance.objects.filter(upgrade_id__in=[900_001, 900_002, 900_003]).delete()

    document = {"version": "1.5.0", "services": [
        {"name": name, "status": "healthy", "error_rate": 0.001, "latency_p95_ms": 120,
         "availability": 0.9995} for name in ("api", "redemption", "ledger")
    ]}  # fmt: skip
    services.status_health_record(environment_key="production", environment_name="Production",
                                  document=document, error="", public=True)  # fmt: skip
    now = timezone.now()

    def sync(upgrade_id: int, status: str, start, end) -> None:
        services.status_maintenance_sync(
            upgrade_id=upgrade_id, title=f"Bench upgrade {upgrade_id}", type_label="Minor version",
            environment_key="production", environment_name="Production", public=True,
            status=status, window_start=start, window_end=end, progress_percent=40,
            phase_title="Upgrade Process", url="",
        )  # fmt: skip

    sync(900_001, "in_progress", now - timedelta(minutes=10), now + timedelta(minutes=50))
    sync(900_002, "scheduled", now + timedelta(days=1), now + timedelta(days=1, hours=1))
    yesterday = now - timedelta(days=1)
    sync(900_003, "in_progress", yesterday, yesterday + timedelta(hours=1))
    sync(900_003, "rolled_back", yesterday, yesterday + timedelta(hours=1))
    incident = services.status_incident_draft(upgrade_id=900_003, lifecycle="rolled_back")
    if incident and incident.is_draft:
        by = User.objects.get_or_create(username="bench-manager")[0]
        services.status_incident_publish(incident_id=incident.pk, name=incident.name,
                                         body=incident.body, impact="minor", status="monitoring",
                                         by=by)  # fmt: skip
    assert StatusIncident.objects.filter(published_at__isnull=False).exists()


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _use_database(name: str) -> None:
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name


def status_bench(url: str, requests: int, upgrades: int) -> None:
    """The status endpoints against an empty database and a 10,000-upgrade one, same run."""
    from django.test import Client

    from comms.management.commands.generate_status_history import status_history_generate
    from comms.models import StatusMaintenance, StatusUpdate

    full_name = urlparse(url).path.lstrip("/")
    empty_url = url.rsplit("/", 1)[0] + f"/{full_name}_empty"
    _ensure_database(empty_url, fresh=True)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], check=True, cwd=ROOT,
                   env={**os.environ, "DATABASE_URL": empty_url})  # fmt: skip
    sizes = {}
    for label, name in (("empty", f"{full_name}_empty"), ("history", full_name)):
        _use_database(name)
        if label == "history":
            status_history_generate(count=upgrades, updates_each=4)
        _status_today()
        _analyze()  # the planner's statistics, as autovacuum keeps them on a live database
        sizes[label] = (StatusMaintenance.objects.count(), StatusUpdate.objects.count())
    # Rounds that alternate between the two databases, so a busy moment of the machine falls
    # on both columns alike.
    client = Client()  # an anonymous visitor, as the crowd is
    results: dict[str, dict[str, list]] = {"empty": {}, "history": {}}
    rounds = 4
    for _ in range(rounds):
        for label, name in (("empty", f"{full_name}_empty"), ("history", full_name)):
            _use_database(name)
            for _label, path in STATUS_PATHS:
                q, timings, status, size = _measure(client, path, max(1, requests // rounds))
                kept = results[label].setdefault(path, [q, [], status, size])
                kept[1].extend(timings)
    _use_database(full_name)
    (e_m, e_u), (h_m, h_u) = sizes["empty"], sizes["history"]
    print(f"\nStatus page, anonymous: an empty database ({e_m} maintenances, {e_u} updates: "
          f"today only) beside the same today after {h_m - e_m} past upgrades and "
          f"{h_u - e_u} updates; {rounds} alternating rounds, {requests} timed requests "
          f"per endpoint and database.\n")  # fmt: skip
    print(f"{'endpoint':28} {'queries':>9} {'p50 ms':>13} {'p95 ms':>13} {'KiB':>11}")
    print(f"{'':28} {'empty/10k':>9} {'empty / 10k':>13} {'empty / 10k':>13} {'empty/10k':>11}")
    for label, path in STATUS_PATHS:
        q0, t0, s0, b0 = results["empty"][path]
        q1, t1, s1, b1 = results["history"][path]
        p50 = f"{statistics.median(t0):.1f} / {statistics.median(t1):.1f}"
        p95 = f"{statistics.quantiles(t0, n=20)[-1]:.1f} / {statistics.quantiles(t1, n=20)[-1]:.1f}"
        kib = f"{b0 / 1024:.0f}/{b1 / 1024:.0f}"
        code = "" if s0 == s1 == 200 else f"  ({s0}/{s1})"
        print(f"{label:28} {f'{q0}/{q1}':>9} {p50:>13} {p95:>13} {kib:>11}{code}")
    print("\nTarget: the same queries and about the same time with 10,000 past upgrades as with "
          "none; answers that list 'the newest 50' (incidents, scheduled maintenances, a month "
          "of history, a month of windows in the calendar) are bigger only because there is "
          "more recent past to list, and stop growing at their limit.")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrades", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="Timed requests per page.")
    parser.add_argument("--status-only", action="store_true", help="Only the status endpoints.")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        print("Set DATABASE_URL to a PostgreSQL database (it is created if missing).")
        return 2
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import warnings

    warnings.filterwarnings("ignore", message="No directory at")
    _ensure_database(url)
    manage = [sys.executable, str(ROOT / "manage.py")]
    env = {**os.environ}
    subprocess.run([*manage, "migrate", "-v", "0"], check=True, env=env, cwd=ROOT)

    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from mycelia_ops.roles import RELEASE_MANAGERS
    from upgrades.models import ChecklistStep, Upgrade

    have = Upgrade.objects.count()
    if have < args.upgrades and not args.status_only:
        print(f"Generating {args.upgrades - have} upgrades (once; the database is kept)...")
        subprocess.run(
            [*manage, "generate_history", "--upgrades", str(args.upgrades - have),
             "--steps", str(args.steps)],
            check=True, env=env, cwd=ROOT,
        )  # fmt: skip
    if args.status_only:
        status_bench(url, args.requests, args.upgrades)
        return 0
    upgrades, steps = Upgrade.objects.count(), ChecklistStep.objects.count()
    user, _ = User.objects.get_or_create(username="bench-manager")
    user.groups.add(Group.objects.get_or_create(name=RELEASE_MANAGERS)[0])
    client = Client()
    client.force_login(user)
    middle = Upgrade.objects.order_by("id")[upgrades // 2]
    pages = [
        ("baseline (minimal view)", "/bench/baseline"),
        ("upgrades list, page 1", "/upgrades/"),
        ("upgrades list, page 200", "/upgrades/?page=200"),
        ("upgrades list, filtered", "/upgrades/?type=major&status=completed"),
        ("dashboard", "/upgrades/dashboard/"),
        (f"upgrade page ({middle.steps.count()} steps)", f"/upgrades/{middle.pk}/"),
        ("upgrade report", f"/upgrades/{middle.pk}/report/"),
    ]
    print(f"\n{upgrades} upgrades, {steps} checklist steps in PostgreSQL; "
          f"{args.requests} timed requests per page after 3 warm-ups.\n")  # fmt: skip
    print(f"{'page':32} {'queries':>7} {'p50 ms':>8} {'p95 ms':>8} {'x baseline':>10}")
    base_p50 = None
    for label, path in pages:
        for _ in range(3):
            assert client.get(path).status_code == 200, path
        queries: list[str] = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            client.get(path)
        timings = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        p50 = statistics.median(timings)
        p95 = statistics.quantiles(timings, n=20)[-1]
        base_p50 = base_p50 or p50
        print(f"{label:32} {len(queries):>7} {p50:>8.1f} {p95:>8.1f} {p50 / base_p50:>10.1f}")
    print("\nTarget: every page well under a second (p95), with a fixed number of queries.")
    status_bench(url, args.requests, args.upgrades)
    return 0


if __name__ == "__main__":
    sys.exit(main())
