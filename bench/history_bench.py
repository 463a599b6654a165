"""How the pages hold up under a long history: 10,000 upgrades and 500,000 checklist steps in
PostgreSQL. Prints, per page, the SQL queries one request makes and its p50/p95 time, side by
side with a minimal Django view timed in the same run.

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


def _ensure_database(url: str) -> None:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    import psycopg

    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrades", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="Timed requests per page.")
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
    if have < args.upgrades:
        print(f"Generating {args.upgrades - have} upgrades (once; the database is kept)...")
        subprocess.run(
            [*manage, "generate_history", "--upgrades", str(args.upgrades - have),
             "--steps", str(args.steps)],
            check=True, env=env, cwd=ROOT,
        )  # fmt: skip
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
