"""A hundred concurrent flips of one flag end in the state its history ends in."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from flags import services
from flags.models import FlagEvent, FlagState, Via

pytestmark = pytest.mark.django_db(transaction=True)

FLIPS = 100
WORKERS = 16  # below PostgreSQL's connection limit; still many flips in flight at once


@pytest.fixture(autouse=True)
def _needs_real_database():
    if connection.vendor != "postgresql":
        pytest.skip(
            "SQLite serialises writers on one file lock; row locks are tested on PostgreSQL"
        )


def test_flag_set_state__hundred_concurrent_flips__state_equals_last_event(manager):
    production = services.flag_environment_ensure(key="production", name="Production")
    flag = services.flag_create(key="busy", by=manager, via=Via.UI)
    barrier = threading.Barrier(WORKERS)
    wishes = [random.Random(i).random() < 0.5 for i in range(FLIPS)]

    def flip(index: int) -> bool:
        if index < WORKERS:
            barrier.wait()
        try:
            return services.flag_set_state(
                flag=flag, environment=production, on=wishes[index], by=manager, via=Via.API
            ).changed
        finally:
            connections.close_all()

    with ThreadPoolExecutor(WORKERS) as pool:
        changed = list(pool.map(flip, range(FLIPS)))

    state = FlagState.objects.get(flag=flag, environment=production)
    events = list(FlagEvent.objects.filter(flag=flag, environment=production).order_by("id"))
    assert len(events) == sum(changed) == state.version
    assert state.enabled == events[-1].after["enabled"]
    # Each change starts from where the previous one ended: no lost update in the history.
    for previous, event in zip(events, events[1:], strict=False):
        assert event.before["enabled"] == previous.after["enabled"] != event.after["enabled"]
        assert event.after["version"] == previous.after["version"] + 1
