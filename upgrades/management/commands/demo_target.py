"""Run the demo Mycelia's HTTP service in the foreground (``make run`` starts it too)."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand

from upgrades.demo_target.server import serve
from upgrades.demo_target.state import STATE_DIR_ENV


class Command(BaseCommand):
    help = "Run the demo Mycelia target (an HTTP service with fault switches) until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8100, help="Port (default 8100).")
        parser.add_argument("--host", default="127.0.0.1", help="Address (default 127.0.0.1).")
        parser.add_argument(
            "--state-dir",
            default=None,
            help="State directory (default $MYCELIA_DEMO_STATE_DIR, else DATA_DIR/demo_target).",
        )
        parser.add_argument(
            "--secret",
            default=None,
            help="Shared secret for /deploy and /rollback (default $MYCELIA_DEMO_SECRET).",
        )

    def handle(
        self, *args, port: int, host: str, state_dir: str | None, secret: str | None, **options
    ):
        # The same folder `seed --demo` points the demo environment's commands at.
        state_dir = state_dir or os.environ.get(STATE_DIR_ENV) or settings.DATA_DIR / "demo_target"
        serve(host=host, port=port, state_dir=state_dir, secret=secret)
