"""What an evaluating process keeps in memory: flag definitions, reloaded only when the flag
revision changes, and evaluation counts, flushed to FlagEvaluationCount now and then rather
than written per request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from flags.evaluation import FlagDefinition
from flags.models import FlagEvaluationCount, FlagRevision, FlagState


class DefinitionCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision: str | None = None
        self._by_environment: dict[int, dict[str, FlagDefinition]] = {}

    def revision(self) -> str:
        row = FlagRevision.objects.filter(pk=1).values_list("revision", flat=True).first()
        return row or "none"

    def definitions(self, environment_id: int) -> tuple[str, dict[str, FlagDefinition]]:
        """(revision, {flag key: definition}) for one environment; one query when current."""
        revision = self.revision()
        if revision != self._revision:
            with self._lock:
                if revision != self._revision:
                    # Read after the revision: the data is at least as new as the revision.
                    self._by_environment = self._load()
                    self._revision = revision
        return revision, self._by_environment.get(environment_id, {})

    def clear(self) -> None:
        with self._lock:
            self._revision = None
            self._by_environment = {}

    @staticmethod
    def _load() -> dict[int, dict[str, FlagDefinition]]:
        loaded: dict[int, dict[str, FlagDefinition]] = {}
        rows = FlagState.objects.filter(flag__archived_at__isnull=True).values_list(
            "flag_id", "flag__key", "environment_id", "enabled", "rollout_percentage", "rules"
        )
        for flag_id, key, environment_id, enabled, percentage, rules in rows:
            loaded.setdefault(environment_id, {})[key] = FlagDefinition(
                key=key,
                enabled=enabled,
                rollout_percentage=percentage,
                rules=tuple(rules or ()),
                flag_id=flag_id,
                environment_id=environment_id,
            )
        return loaded


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class EvaluationCounter:
    """Counts per (flag, environment, hour) in memory; flushes when the buffer holds
    FLAGS_COUNTS_FLUSH_ENTRIES keys or is FLAGS_COUNTS_FLUSH_SECONDS old, and on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: Counter[tuple[int, int, datetime]] = Counter()
        self._since = time.monotonic()

    def record(self, flag_id: int, environment_id: int, n: int = 1) -> None:
        key = (flag_id, environment_id, _hour(timezone.now()))
        with self._lock:
            if not self._buffer:
                self._since = time.monotonic()  # age counts from the oldest buffered entry
            self._buffer[key] += n
            due = len(self._buffer) >= getattr(
                settings, "FLAGS_COUNTS_FLUSH_ENTRIES", 500
            ) or time.monotonic() - self._since >= getattr(
                settings, "FLAGS_COUNTS_FLUSH_SECONDS", 60
            )
        if due:
            self.flush()

    def pending(self) -> dict[tuple[int, int, datetime], int]:
        with self._lock:
            return dict(self._buffer)

    def discard(self) -> None:
        """Drop what is buffered (tests start from nothing)."""
        with self._lock:
            self._buffer = Counter()
            self._since = time.monotonic()

    def flush(self) -> int:
        """Add the buffered counts to the table; returns how many rows it touched."""
        with self._lock:
            taken, self._buffer = self._buffer, Counter()
            self._since = time.monotonic()
        written = 0
        for (flag_id, environment_id, hour), n in taken.items():
            try:
                _count_add(flag_id, environment_id, hour, n)
                written += 1
            except IntegrityError:
                # The flag was deleted meanwhile: its counts go with it.
                continue
        return written


def _count_add(flag_id: int, environment_id: int, hour: datetime, n: int) -> None:
    rows = FlagEvaluationCount.objects.filter(
        flag_id=flag_id, environment_id=environment_id, hour=hour
    )
    if rows.update(count=F("count") + n):
        return
    try:
        with transaction.atomic():
            FlagEvaluationCount.objects.create(
                flag_id=flag_id, environment_id=environment_id, hour=hour, count=n
            )
    except IntegrityError:
        # Another process created the hour's row first; add to it. Re-raises for a gone flag.
        if not rows.update(count=F("count") + n):
            raise


def counts_for_flag(flag_id: int, *, hours: int = 24) -> list[tuple[datetime, int]]:
    """Per-hour totals over all environments for the last `hours` hours, oldest first,
    including the not yet flushed counts of this process."""
    now_hour = _hour(timezone.now())
    start = now_hour - timedelta(hours=hours - 1)
    totals: Counter[datetime] = Counter()
    for hour, count in FlagEvaluationCount.objects.filter(
        flag_id=flag_id, hour__gte=start
    ).values_list("hour", "count"):
        totals[hour] += count
    for (pending_flag, _env, hour), count in counter.pending().items():
        if pending_flag == flag_id and hour >= start:
            totals[hour] += count
    return [(start + timedelta(hours=i), totals[start + timedelta(hours=i)]) for i in range(hours)]


definitions = DefinitionCache()
counter = EvaluationCounter()
