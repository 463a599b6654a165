"""Point an environment at the demo Mycelia: its commands, hooks, config folder and SLO."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings

from upgrades.models import (
    Environment,
    EnvironmentOperation,
    Operation,
    SloMetric,
    SloThreshold,
)

# The demo's stand-ins for the playbook's pnpm commands and deployment hooks.
DEMO_OPERATIONS: dict[str, tuple[list[str], float]] = {
    Operation.DIAGNOSE: (["diagnose"], 30),
    Operation.SLO_CHECK: (["ops-lint"], 30),
    Operation.LOG_TAIL: (["ops-tail", "--lines", "200"], 30),
    Operation.UNIT_TESTS: (["test-integration"], 60),
    Operation.INTEGRATION_TESTS: (["test-integration"], 60),
    Operation.SECURITY_SCAN: (["sec-scan"], 60),
    Operation.TEST_FLOW: (["test-flow"], 60),
    Operation.VERIFY_DATA: (["verify-data"], 30),
    Operation.DEPLOY: (["deploy", "{version}"], 60),
    Operation.ROLLBACK: (["rollback"], 60),
    Operation.DB_BACKUP: (["db-backup", "{output_path}"], 60),
    Operation.DB_RESTORE: (["db-restore", "{backup_path}"], 60),
}
DEMO_SLO = (
    (SloMetric.ERROR_RATE, "<=", 0.01),
    (SloMetric.LATENCY_P95_MS, "<=", 500),
    (SloMetric.AVAILABILITY, ">=", 0.999),
)
DEMO_CONFIG_FILES = {
    "mycelia.toml": "[server]\nport = 3000\n\n[features]\nnew-checkout = false\n",
    "slo.toml": "error_rate = 0.01\nlatency_p95_ms = 500\navailability = 0.999\n",
}


def demo_environment_configure(
    *, environment: Environment, state_dir: Path, timeout_scale: float = 1.0
) -> Environment:
    """Give an environment the demo's operations (commands run without a shell), a config
    folder to back up, and the SLO thresholds the demo's figures are held to.

    Only what is missing is added: a field left blank, an operation or a threshold with no row.
    What exists, perhaps edited by a manager, is kept, so `make run` (which seeds on every
    start) never undoes an edit."""
    config_dir = state_dir / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name, content in DEMO_CONFIG_FILES.items():
        if not (config_dir / name).exists():
            (config_dir / name).write_text(content)
    defaults = {
        "working_directory": str(settings.BASE_DIR),
        "config_directory": str(config_dir),
        "command_env": {"MYCELIA_DEMO_STATE_DIR": str(state_dir)},
    }
    blank = [field for field in defaults if not getattr(environment, field)]
    for field in blank:
        setattr(environment, field, defaults[field])
    if blank:
        environment.save(update_fields=blank)
    base = [sys.executable, "-m", "upgrades.demo_target"]
    for operation, (args, timeout) in DEMO_OPERATIONS.items():
        EnvironmentOperation.objects.get_or_create(
            environment=environment,
            operation=operation,
            defaults={"argv": base + args, "timeout_seconds": timeout * timeout_scale},
        )
    for metric, operator, limit in DEMO_SLO:
        SloThreshold.objects.get_or_create(
            environment=environment, metric=metric, defaults={"operator": operator, "limit": limit}
        )
    return environment
