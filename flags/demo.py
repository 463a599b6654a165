"""Flags for `manage.py seed --demo`: a few in the demo environments, so the flags page, the
OFREP endpoints and a feature-flag upgrade have something to show on a fresh install."""

from __future__ import annotations

from typing import Any

from flags import services
from flags.models import Flag, FlagEnvironment, Via

# key, description, tags, {environment key: (on, rollout %)}
DEMO_FLAGS: list[tuple[str, str, str, dict[str, tuple[bool, int]]]] = [
    ("new-checkout", "The rewritten checkout flow.", "demo,checkout",
     {"staging": (True, 100), "production": (False, 100)}),
    ("search-v2", "Search backed by the new index.", "demo,search",
     {"staging": (True, 100), "production": (True, 25)}),
    ("dark-mode", "Dark colour scheme in the web app.", "demo,ui",
     {"staging": (True, 100), "production": (True, 100)}),
]  # fmt: skip


def demo_flags_seed(*, by: Any | None) -> list[str]:
    """Create the demo flags that do not exist yet (flags already there are left as people set
    them); returns the keys created."""
    environments = {e.key: e for e in FlagEnvironment.objects.all()}
    created: list[str] = []
    for key, description, tags, states in DEMO_FLAGS:
        if Flag.objects.filter(key=key).exists():
            continue
        flag = services.flag_create(key=key, description=description, tags=tags, by=by, via=Via.CLI)
        for environment_key, (on, percentage) in states.items():
            environment = environments.get(environment_key)
            if environment is None:
                continue
            if percentage != 100:
                services.flag_set_targeting(
                    flag=flag, environment=environment, rollout_percentage=percentage, rules=[],
                    by=by, via=Via.CLI, reason="Demo data",
                )  # fmt: skip
            if on:
                services.flag_set_state(
                    flag=flag, environment=environment, on=True, by=by, via=Via.CLI,
                    reason="Demo data",
                )  # fmt: skip
        created.append(key)
    return created
