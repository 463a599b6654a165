"""Settings for the benchmark server: the product's settings, plus the baseline view's URL.

Only ROOT_URLCONF differs, so the product's urls.py stays untouched and the baseline view runs
behind the same middleware, database settings and server as OFREP. DEBUG is off whatever the
environment says: a benchmark with DEBUG on measures query logging, not the product.

MYCELIA_BENCH_CONN_MAX_AGE (the runner's --conn-max-age) overrides the database's CONN_MAX_AGE,
to measure what persistent connections would change; unset, the product's value stands.
"""

from __future__ import annotations

import os

from mycelia_ops.settings import *  # noqa: F403
from mycelia_ops.settings import DATABASES

DEBUG = False
ROOT_URLCONF = "bench.urls"
MYCELIA_BENCH_BASELINE = True

if os.environ.get("MYCELIA_BENCH_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["MYCELIA_BENCH_CONN_MAX_AGE"])
