"""What an evaluating process keeps in memory: flag definitions, reloaded only when the flag
revision changes; evaluation counts, flushed to FlagEvaluationCount now and then rather than
written per request; and the API tokens OFREP has just checked, for a second or so."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from flags.evaluation import (
    KEY_MISSING,
    FlagDefinition,
    Outcome,
    context_free_outcome,
    decide,
    evaluation_failed,
    resolution_of,
)
from flags.models import ApiToken, FlagEvaluationCount, FlagRevision, FlagState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvironmentFlags:
    """One environment's live flags at one revision, in the shapes evaluation wants them."""

    by_key: dict[str, FlagDefinition]
    # Sorted by key. Each with the OFREP JSON of its answer when that is the same for every
    # valid context (off, or on for everyone or no one), else None: decide per request.
    ordered: tuple[tuple[FlagDefinition, str | None], ...] = ()
    # (flag id, environment id) of each flag in `ordered`: what a bulk evaluation counts when
    # none of its answers is an error.
    counted: tuple[tuple[int, int], ...] = ()

    # The OFREP JSON of each (flag, outcome) seen so far: a flag has only a few outcomes (a
    # rule matched, in or out of its rollout, a missing key), so each is serialised once.
    _fragments: dict[tuple[str, Outcome], str] = field(default_factory=dict, compare=False)

    def fragment(self, definition: FlagDefinition, outcome: Outcome) -> str:
        """json.dumps(resolution_of(definition, outcome).as_ofrep()), remembered."""
        memo_key = (definition.key, outcome)
        fragment = self._fragments.get(memo_key)
        if fragment is None:
            fragment = json.dumps(resolution_of(definition, outcome).as_ofrep())
            self._fragments[memo_key] = fragment
        return fragment

    def answer(
        self, definition: FlagDefinition, context: dict[str, Any]
    ) -> tuple[str, Outcome | None]:
        """One flag's OFREP JSON for a valid context, and its outcome (None: the stored
        definition could not be evaluated, and the JSON says so)."""
        try:
            outcome = decide(definition, context)
        except Exception:  # a malformed stored rule must not take the endpoint down
            logger.exception("Evaluating flag %s failed", definition.key)
            return json.dumps(evaluation_failed(definition.key).as_ofrep()), None
        return self.fragment(definition, outcome), outcome

    def bulk_answers(
        self, context: dict[str, Any]
    ) -> tuple[list[str], tuple[tuple[int, int], ...]]:
        """Every flag's OFREP JSON for a valid context, in key order, and the (flag id,
        environment id) pairs to count: those whose answer is not an error."""
        parts: list[str] = []
        failed: list[int] = []
        for position, (definition, fragment) in enumerate(self.ordered):
            if fragment is None:
                fragment, outcome = self.answer(definition, context)
                if outcome is None or outcome == KEY_MISSING:
                    failed.append(position)
            parts.append(fragment)
        if not failed:
            return parts, self.counted  # the same tuple each time: the counter's key as it is
        return parts, tuple(pair for i, pair in enumerate(self.counted) if i not in failed)

    @classmethod
    def build(cls, by_key: dict[str, FlagDefinition]) -> EnvironmentFlags:
        flags = cls(by_key=by_key)
        ordered = []
        for key in sorted(by_key):
            outcome = context_free_outcome(by_key[key])
            fragment = None if outcome is None else flags.fragment(by_key[key], outcome)
            ordered.append((by_key[key], fragment))
        # The answers worked out here stay remembered in the instance that serves.
        return cls(
            by_key=by_key,
            ordered=tuple(ordered),
            counted=tuple((d.flag_id, d.environment_id) for d, _ in ordered),
            _fragments=flags._fragments,
        )


NO_FLAGS = EnvironmentFlags(by_key={})


class DefinitionCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revision: str | None = None
        self._by_environment: dict[int, EnvironmentFlags] = {}
        self._checked_at = 0.0

    def revision(self) -> str:
        """The current revision. Looked up at most every FLAGS_REVISION_CHECK_SECONDS (0.5 s by
        default) per process, so a flip takes effect everywhere within a second while a steady
        stream of evaluations makes no query at all in between."""
        ttl = getattr(settings, "FLAGS_REVISION_CHECK_SECONDS", 0.5)
        now = time.monotonic()
        if ttl > 0 and self._revision is not None and now - self._checked_at < ttl:
            return self._revision
        revision = self._revision_query()
        self._checked_at = now
        return revision

    def _revision_query(self) -> str:
        # One plain query: no queryset to build and compile on the hot path.
        table = connection.ops.quote_name(FlagRevision._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT revision FROM {table} WHERE id = %s", [1])
            row = cursor.fetchone()
        return (row[0] if row else None) or "none"

    def definitions(self, environment_id: int) -> tuple[str, dict[str, FlagDefinition]]:
        """(revision, {flag key: definition}) for one environment; one query when current."""
        revision, flags = self.environment(environment_id)
        return revision, flags.by_key

    def environment(self, environment_id: int) -> tuple[str, EnvironmentFlags]:
        """(revision, the environment's flags); one query when current."""
        revision = self.revision()
        if revision != self._revision:
            with self._lock:
                if revision != self._revision:
                    # Read after the revision: the data is at least as new as the revision.
                    self._by_environment = {
                        env: EnvironmentFlags.build(by_key) for env, by_key in self._load().items()
                    }
                    self._revision = revision
        return revision, self._by_environment.get(environment_id, NO_FLAGS)

    def clear(self) -> None:
        with self._lock:
            self._revision = None
            self._by_environment = {}
            self._checked_at = 0.0

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
    FLAGS_COUNTS_FLUSH_ENTRIES keys or is FLAGS_COUNTS_FLUSH_SECONDS old, and on demand.

    The buffer is keyed by the whole group of flags one request evaluated: a bulk evaluation of
    every flag costs one increment, not one per flag. Groups are spread into per-flag counts
    when read or flushed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: Counter[tuple[tuple[tuple[int, int], ...], datetime]] = Counter()
        self._size = 0  # per-flag entries the buffer holds, groups spread out
        self._since = time.monotonic()

    def record(self, flag_id: int, environment_id: int, n: int = 1) -> None:
        self.record_many(((flag_id, environment_id),), n)

    def record_many(self, flags: Iterable[tuple[int, int]], n: int = 1) -> None:
        """Count one evaluation (or n) of each (flag id, environment id)."""
        group = flags if isinstance(flags, tuple) else tuple(flags)
        if not group:
            return
        hour = _hour(timezone.now())
        with self._lock:
            if not self._buffer:
                self._since = time.monotonic()  # age counts from the oldest buffered entry
            key = (group, hour)
            if key not in self._buffer:
                self._size += len(group)
            self._buffer[key] += n
            size, since = self._size, self._since
        if size >= getattr(settings, "FLAGS_COUNTS_FLUSH_ENTRIES", 500) or (
            time.monotonic() - since >= getattr(settings, "FLAGS_COUNTS_FLUSH_SECONDS", 60)
        ):
            self.flush()

    @staticmethod
    def _per_flag(
        buffer: Counter[tuple[tuple[tuple[int, int], ...], datetime]],
    ) -> Counter[tuple[int, int, datetime]]:
        counts: Counter[tuple[int, int, datetime]] = Counter()
        for (group, hour), n in buffer.items():
            for flag_id, environment_id in group:
                counts[(flag_id, environment_id, hour)] += n
        return counts

    def pending(self) -> dict[tuple[int, int, datetime], int]:
        with self._lock:
            return dict(self._per_flag(self._buffer))

    def discard(self) -> None:
        """Drop what is buffered (tests start from nothing)."""
        with self._lock:
            self._buffer, self._size = Counter(), 0
            self._since = time.monotonic()

    def flush(self) -> int:
        """Add the buffered counts to the table in one transaction; returns how many rows it
        touched."""
        with self._lock:
            taken, self._buffer, self._size = self._buffer, Counter(), 0
            self._since = time.monotonic()
        written = 0
        with transaction.atomic():
            for (flag_id, environment_id, hour), n in self._per_flag(taken).items():
                try:
                    with transaction.atomic():
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


class TokenCache:
    """Tokens that passed every check of OFREP's authentication, kept for `seconds` (setting
    FLAGS_TOKEN_CACHE_SECONDS, 1 by default) so that a client's stream of evaluations does not
    query the token and its user's roles each time. A revoked token, a deactivated user or a
    lost role takes effect within those seconds in every process. Keyed by the token's SHA-256,
    never by the token itself; only live tokens are kept, so unknown ones cannot fill it."""

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, ApiToken]] = {}

    @staticmethod
    def _key(plaintext: str) -> str:
        return hashlib.sha256(plaintext.encode()).hexdigest()

    @staticmethod
    def _seconds() -> float:
        return float(getattr(settings, "FLAGS_TOKEN_CACHE_SECONDS", 1.0))

    def get(self, plaintext: str) -> ApiToken | None:
        entry = self._entries.get(self._key(plaintext))
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, plaintext: str, token: ApiToken) -> None:
        seconds = self._seconds()
        if seconds <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.MAX_ENTRIES:
                    self._entries.clear()
            self._entries[self._key(plaintext)] = (now + seconds, token)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}


definitions = DefinitionCache()
counter = EvaluationCounter()
tokens = TokenCache()
