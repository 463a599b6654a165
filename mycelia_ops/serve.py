"""The web server: `python -m mycelia_ops.serve`. One definition, used by `make run`, the
Procfile, the Docker image and `make bench`, so the benchmark measures what production runs.

Granian (a Rust HTTP server) rather than gunicorn: HTTP/1.1 keep-alive and HTTP parsing outside
the interpreter leave the two CPUs to Django. Mycelia's services call OFREP on every request of
theirs; under gunicorn's sync workers every one of those calls paid for a new TCP connection and
a Python HTTP parser (`make bench` measured both: see bench/README.md).

Settings from the environment:
  HOST (0.0.0.0), PORT (8000)
  WEB_WORKERS (2)        processes
  WEB_THREADS (2)        Python threads per process running requests. Two measured best for
                         OFREP latency (`make bench --threads N`), and a slow page or a
                         download then holds up only one of them
  WEB_ACCESS_LOG (false) one line per request on stdout

SIGTERM or SIGINT stops it within WORKERS_KILL_TIMEOUT_SECONDS and a little: a worker that does
not stop by then (one still starting ignores the signal) is killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mycelia_ops.env import env_bool, env_int, env_str

ROOT = Path(__file__).resolve().parent.parent
WORKERS_KILL_TIMEOUT_SECONDS = 3


def server_options() -> dict[str, object]:
    """Granian's keyword arguments, from the environment."""
    from granian.constants import Interfaces

    workers = env_int("WEB_WORKERS", 2)
    threads = env_int("WEB_THREADS", 2)
    if workers < 1 or threads < 1:
        raise SystemExit("WEB_WORKERS and WEB_THREADS must be at least 1.")
    return {
        "target": "mycelia_ops.wsgi:application",
        "address": env_str("HOST", "0.0.0.0"),
        "port": env_int("PORT", 8000),
        "interface": Interfaces.WSGI,
        "workers": workers,
        "blocking_threads": threads,
        "websockets": False,
        "log_access": env_bool("WEB_ACCESS_LOG", False),
        "respawn_failed_workers": True,
        # A worker that has not stopped this many seconds after SIGTERM is killed. Without it
        # granian waits forever for a worker that got the signal while it was still starting.
        "workers_kill_timeout": WORKERS_KILL_TIMEOUT_SECONDS,
        "working_dir": ROOT,
    }


def main() -> int:
    from granian import Granian

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mycelia_ops.settings")
    sys.path.insert(0, str(ROOT))
    Granian(**server_options()).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
