"""Evaluation makes no query while the definitions are unchanged, and a flip is seen by every
process within a second (the revision is looked up at most every half second)."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from flags import runtime, services


@pytest.fixture
def half_second(settings):
    settings.FLAGS_REVISION_CHECK_SECONDS = 0.5
    runtime.definitions.clear()


def test_revision__steady_stream__no_query_between_checks(db, half_second):
    runtime.definitions.environment(1)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(50):
            runtime.definitions.environment(1)
    assert len(queries) == 0


def test_revision__flag_flipped_elsewhere__seen_within_a_second(
    db, half_second, manager, monkeypatch
):
    environment = services.flag_environment_ensure(key="production", name="Production")
    flag = services.flag_create(key="fast-path", by=manager, via="cli")
    revision, _ = runtime.definitions.environment(environment.pk)
    services.flag_set_state(flag=flag, environment=environment, on=True, by=manager, via="cli")
    # Controlled clock: 0.6 s pass for the runtime without the test waiting for them.
    later = time.monotonic() + 0.6
    monkeypatch.setattr(runtime.time, "monotonic", lambda: later)
    new_revision, flags = runtime.definitions.environment(environment.pk)
    assert new_revision != revision
    assert flags.by_key["fast-path"].enabled
