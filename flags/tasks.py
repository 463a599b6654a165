from __future__ import annotations

from celery import shared_task

from flags import runtime


@shared_task
def flag_evaluation_counts_flush_task() -> int:
    """Write this worker's buffered evaluation counts. Web processes flush their own buffers by
    size and age; schedule this with beat for the processes that evaluate inside workers."""
    return runtime.counter.flush()
