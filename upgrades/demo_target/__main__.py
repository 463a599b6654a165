"""``python -m upgrades.demo_target <subcommand>``: see cli.py."""

from __future__ import annotations

import sys

from upgrades.demo_target.cli import main

if __name__ == "__main__":
    sys.exit(main())
