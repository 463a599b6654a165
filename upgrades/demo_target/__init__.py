"""A demo Mycelia system for Mycelia Ops to upgrade when no real one is at hand.

It has two halves that share one state file (see ``state.py``):

- ``server.py``: a small HTTP service with /health, /ops/status.json, /deploy, /rollback,
  /faults and /logs, started by ``python manage.py demo_target --port 8100``;
- ``cli.py``: stand-ins for the playbook's pnpm commands, run as
  ``python -m upgrades.demo_target <subcommand>``.

Fault switches (``health_failing``, ``error_rate_high``, ``slow``, ``garbage_json``,
``command_hangs``, ``command_fails``, ``deploy_fails``) make it misbehave on demand.
Nothing here imports Django, so the commands run from any shell.
"""

from __future__ import annotations
