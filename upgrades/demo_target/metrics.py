"""The demo Mycelia's Prometheus metrics (GET /metrics), moved by its fault switches.

The demo has no real traffic, so each scrape plays the traffic since the previous one: every
service answers ``REQUESTS_PER_SECOND`` requests a second, a share of them 5xx at the service's
error rate, with latencies around its p95. The figures come from ``services_now`` (the same
fixed numbers as the status document), so ``error_rate_high`` raises the 5xx counter rate and
``slow`` moves the latency histogram. Counting is deterministic (fractions carried over), so a
test can rely on the ratio:

    sum(rate(http_requests_total{code=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))
    histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1m])))
"""

from __future__ import annotations

import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from upgrades.demo_target.state import services_now

REQUESTS_PER_SECOND = 40
MAX_CATCH_UP_SECONDS = 60.0  # a scrape after a long pause plays at most this much traffic
SLOW_SHARE = 0.04  # the share of requests at the p95 (the rest take half as long)
BUCKETS = (0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text format every Prometheus 2.x reads


class DemoMetrics:
    """One server's metrics; thread-safe (the HTTP server answers scrapes on many threads)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "http_requests",
            "Requests the demo Mycelia answered, by service and status code.",
            ["service", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "How long the demo Mycelia took to answer, by service.",
            ["service"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.faults = Gauge(
            "mycelia_demo_fault", "Fault switches of the demo (1 on).", ["fault"],
            registry=self.registry,
        )  # fmt: skip
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._carry: dict[tuple[str, str], float] = {}

    def _take(self, key: tuple[str, str], amount: float) -> int:
        """Whole requests out of ``amount``, the fraction kept for the next scrape."""
        total = self._carry.get(key, 0.0) + amount
        whole = int(total)
        self._carry[key] = total - whole
        return whole

    def advance(self, state: dict[str, Any]) -> None:
        """Play the traffic since the last call at the figures the faults give now."""
        with self._lock:
            now = time.monotonic()
            elapsed = min(max(now - self._last, 0.0), MAX_CATCH_UP_SECONDS)
            self._last = now
            for service in services_now(state):
                name = service["name"]
                served = REQUESTS_PER_SECOND * elapsed
                errors = self._take((name, "5xx"), served * service["error_rate"])
                fine = self._take((name, "2xx"), served * (1 - service["error_rate"]))
                if errors:
                    self.requests.labels(service=name, code="500").inc(errors)
                if fine:
                    self.requests.labels(service=name, code="200").inc(fine)
                # Make sure both series exist from the first scrape (rate() needs them).
                self.requests.labels(service=name, code="500")
                self.requests.labels(service=name, code="200")
                p95 = service["latency_p95_ms"] / 1000
                slow = self._take((name, "slow"), (errors + fine) * SLOW_SHARE)
                histogram = self.duration.labels(service=name)
                for _ in range(slow):
                    histogram.observe(p95)
                for _ in range(max(errors + fine - slow, 0)):
                    histogram.observe(p95 / 2)
            for fault, value in state["faults"].items():
                if isinstance(value, bool):
                    self.faults.labels(fault=fault).set(1 if value else 0)

    def exposition(self, state: dict[str, Any]) -> bytes:
        self.advance(state)
        return generate_latest(self.registry)
