"""A long history costs no extra queries: the list, the dashboard and an upgrade page make the
same number of queries with ten times the upgrades. (`make bench-history` times them with
10,000 upgrades and 500,000 steps.)"""

from __future__ import annotations

import io

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
