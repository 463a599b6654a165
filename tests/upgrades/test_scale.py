"""A long history costs no extra queries: the list, the dashboard and an upgrade page make the
same number of queries with ten times the upgrades. (`make bench-history` times them with
10,000 upgrades and 500,000 steps.)"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from upgrades.models import Upgrade


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


def test_pages__ten_times_the_history__same_number_of_queries(
    manager_client, make_upgrade, manager
):
    from upgrades import services

    # One upgrade in flight, so every section of the dashboard has rows at both sizes
    services.upgrade_transition(
        upgrade=make_upgrade("minor"), transition="start", by=manager, override_reason="x"
    )
    call_command("generate_history", upgrades=20, steps=10, stdout=io.StringIO())
    middle = Upgrade.objects.order_by("id")[10]
    pages = ["/upgrades/", "/upgrades/?page=2", "/upgrades/dashboard/", f"/upgrades/{middle.pk}/"]
    small = [_queries(manager_client, page) for page in pages]

    call_command("generate_history", upgrades=200, steps=10, seed=8, stdout=io.StringIO())
    large = [_queries(manager_client, page) for page in pages]

    assert Upgrade.objects.count() == 221
    assert large == small


def test_pages__ten_thousand_upgrades_half_a_million_steps__fixed_queries(
    manager_client, make_upgrade, manager
):
    """The issue's big data set, in PostgreSQL as in CI: the same query counts as a small one."""
    from django.db import connection as db

    from upgrades import services
    from upgrades.models import ChecklistStep

    if db.vendor != "postgresql":
        pytest.skip("the 10,000-upgrade history is built in PostgreSQL (CI); SQLite is too slow")
    services.upgrade_transition(
        upgrade=make_upgrade("minor"), transition="start", by=manager, override_reason="x"
    )
    call_command("generate_history", upgrades=20, steps=50, stdout=io.StringIO())
    middle = Upgrade.objects.order_by("id")[10]
    pages = ["/upgrades/", "/upgrades/?page=3", "/upgrades/dashboard/", f"/upgrades/{middle.pk}/"]
    small = [_queries(manager_client, page) for page in pages]

    call_command("generate_history", upgrades=9_980, steps=50, seed=9, stdout=io.StringIO())
    assert Upgrade.objects.count() == 10_001
    assert ChecklistStep.objects.count() >= 500_000
    large = [_queries(manager_client, page) for page in pages + ["/upgrades/?page=400"]]
    assert large == [*small, small[1]]
