"""Tasks of the set-up pages: ids in, one service call each (registered by upgrades/tasks.py)."""

from __future__ import annotations

from celery import shared_task

from upgrades.services.hook_tests import TASK_NAME, hook_test_execute


@shared_task(name=TASK_NAME, acks_late=True, ignore_result=True)
def hook_test_execute_task(test_id: int) -> str:
    # Late acks: a message delivered again finds its test claimed and does nothing.
    return hook_test_execute(test_id=test_id)
