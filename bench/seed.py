"""Seed the benchmark database: 20 flags in "production" and an evaluation token.

Run as `python -m bench.seed` from the repository root with DJANGO_SETTINGS_MODULE set, after
migrating. Prints one JSON object: {"token": ..., "flags": [...], "single": ...}.
"""

from __future__ import annotations

import json
from typing import Any

# (key, on, rollout percentage, rules): 6 static on, 5 off, 5 split, 4 with targeting rules.
FLAGS: list[tuple[str, bool, int, list[dict[str, Any]]]] = [
    ("search-v2", True, 100, []),
    ("dark-mode", True, 100, []),
    ("fast-export", True, 100, []),
    ("audit-log", True, 100, []),
    ("new-nav", True, 100, []),
    ("inline-help", True, 100, []),
    ("legacy-reports", False, 100, []),
    ("beta-billing", False, 100, []),
    ("ai-summary", False, 30, []),
    ("bulk-import", False, 100, [{"attribute": "plan", "operator": "in", "values": ["pro"]}]),
    ("old-editor", False, 100, []),
    ("checkout-v2", True, 50, []),
    ("smart-retry", True, 10, []),
    ("live-chat", True, 25, []),
    ("price-test", True, 75, []),
    ("edge-cache", True, 5, []),
    (
        "eu-banner",
        True,
        100,
        [{"attribute": "country", "operator": "in", "values": ["nl", "de", "fr", "be"]}],
    ),
    (
        "pro-dashboard",
        True,
        20,
        [
            {"attribute": "email", "operator": "equals", "value": "qa@example.com"},
            {"attribute": "plan", "operator": "in", "values": ["pro", "enterprise"]},
        ],
    ),
    (
        "mobile-upsell",
        True,
        40,
        [{"attribute": "plan", "operator": "not_in", "values": ["free"], "variant": False}],
    ),
    (
        "kill-switch",
        True,
        100,
        [{"attribute": "country", "operator": "equals", "value": "xx", "variant": False}],
    ),
]
SINGLE_FLAG = "pro-dashboard"  # rules and a rollout: the single endpoint does real work


def seed() -> dict[str, Any]:
    from django.contrib.auth.models import Group, User

    from flags import services
    from flags.models import ApiTokenScope, Via
    from mycelia_ops.roles import STAKEHOLDERS

    production = services.flag_environment_ensure(key="production", name="Production")
    user = User.objects.create_user(username="bench", email="bench@example.com")
    user.groups.add(Group.objects.get_or_create(name=STAKEHOLDERS)[0])
    for key, on, percentage, rules in FLAGS:
        flag = services.flag_create(key=key, by=user, via=Via.CLI, tags="bench")
        if percentage != 100 or rules:
            services.flag_set_targeting(
                flag=flag,
                environment=production,
                rollout_percentage=percentage,
                rules=rules,
                by=user,
                via=Via.CLI,
            )
        if on:
            services.flag_set_state(
                flag=flag, environment=production, on=True, by=user, via=Via.CLI
            )
    _token, plaintext = services.api_token_create(
        user=user, name="bench", scope=ApiTokenScope.EVALUATION, environment=production
    )
    return {"token": plaintext, "flags": [f[0] for f in FLAGS], "single": SINGLE_FLAG}


if __name__ == "__main__":
    import django

    django.setup()
    print(json.dumps(seed()))
