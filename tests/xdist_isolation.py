"""Each pytest-xdist worker gets a broker database and a data folder of its own.

Loaded with `-p tests.xdist_isolation` (pyproject's addopts), so it runs before pytest-django
imports the settings: the settings then read the worker's own values from the environment, and
so do the Celery workers, web servers and `make run` processes the tests start. pytest-django
already gives each worker its own test database (a `_gw0` suffix).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse, urlunparse

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in a worker only


def _own_redis_db(url: str, number: int) -> str:
    # Worker N uses database base+1+N, so none shares a queue with another or with the base.
    parsed = urlparse(url)
    base = int(parsed.path.strip("/") or 0)
    if base + 1 + number > 15:
        raise SystemExit(
            f"pytest-xdist worker {number} would use Redis database {base + 1 + number}; Redis "
            "has 16 by default: run fewer workers (TEST_WORKERS) or a lower broker database."
        )
    return urlunparse(parsed._replace(path=f"/{base + 1 + number}"))


if _WORKER.startswith("gw"):
    _number = int(_WORKER[2:])
    _root = Path(__file__).resolve().parents[1]
    _base_dir = Path(os.environ.get("MYCELIA_DATA_DIR") or _root / "data")
    os.environ["MYCELIA_DATA_DIR"] = str(_base_dir / f"xdist-{_WORKER}")
    if os.environ.get("MEDIA_ROOT"):
        os.environ["MEDIA_ROOT"] = str(Path(os.environ["MEDIA_ROOT"]) / f"xdist-{_WORKER}")
    _broker = os.environ.get("CELERY_BROKER_URL", "")
    if _broker.startswith(("redis://", "rediss://")):
        os.environ["CELERY_BROKER_URL"] = _own_redis_db(_broker, _number)
