"""Settings for the benchmark server: the product's settings, plus the baseline view's URL.

Only ROOT_URLCONF differs, so the product's urls.py stays untouched and the baseline view runs
behind the same middleware, database settings and server as OFREP. DEBUG is off whatever the
environment says: a benchmark with DEBUG on measures query logging, not the product.
"""

from __future__ import annotations

from mycelia_ops.settings import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.urls"
MYCELIA_BENCH_BASELINE = True
