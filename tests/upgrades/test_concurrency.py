"""Two release managers working on one upgrade at once never lose each other's ticks."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from upgrades import services
from upgrades.models import EventKind, StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _run_together(*jobs):
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def wrap(job):
        try:
            barrier.wait()
            job()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=wrap, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


@pytest.fixture(autouse=True)
def _needs_real_database():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are exercised on PostgreSQL, as in CI")


def test_ticks__two_managers_on_many_steps_at_once__all_kept(make_upgrade, manager, second_manager):
    upgrade = make_upgrade("minor")
    steps = list(upgrade.steps.filter(phase__stage="pre").order_by("id")[:20])
    alice_steps, dave_steps = steps[::2], steps[1::2]

    _run_together(
        lambda: [services.step_complete(step=s, by=manager) for s in alice_steps],
        lambda: [services.step_complete(step=s, by=second_manager) for s in dave_steps],
    )

    done = dict(upgrade.steps.filter(status=StepStatus.DONE).values_list("pk", "completed_by"))
    assert done == {s.pk: manager.pk for s in alice_steps} | {
        s.pk: second_manager.pk for s in dave_steps
    }
    assert upgrade.events.filter(kind=EventKind.STEP_DONE).count() == len(steps)


def test_tick__same_step_by_two_managers_at_once__done_once_and_recorded_once(
    make_upgrade, manager, second_manager
):
    upgrade = make_upgrade("minor")
    step = upgrade.steps.first()
    _run_together(
        lambda: services.step_complete(step=step, by=manager),
        lambda: services.step_complete(step=step, by=second_manager),
    )
    step.refresh_from_db()
    assert step.status == StepStatus.DONE
    events = step.events.filter(kind=EventKind.STEP_DONE)
    assert events.count() == 1
    assert events.get().actor_id == step.completed_by_id
