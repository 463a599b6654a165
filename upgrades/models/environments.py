"""Mycelia environments that upgrades run against, and how to reach and operate them."""

from __future__ import annotations

import string
from collections.abc import Mapping

from django.core.validators import MinValueValidator
from django.db import models

from mycelia_ops.errors import BadInput
from upgrades.runners.prometheus import PrometheusAuth, secret_file_read


class EnvironmentKind(models.TextChoices):
    STAGING = "staging", "Staging"
    PRODUCTION = "production", "Production"


class Environment(models.Model):
    """A Mycelia installation that upgrades are run against."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=50, unique=True)
    kind = models.CharField(
        max_length=20, choices=EnvironmentKind.choices, default=EnvironmentKind.STAGING
    )
    base_url = models.URLField(blank=True, help_text="Where the Mycelia target answers HTTP.")
    health_path = models.CharField(max_length=200, default="/health")
    status_path = models.CharField(max_length=200, default="/ops/status.json")
    request_timeout_seconds = models.FloatField(default=5.0, validators=[MinValueValidator(0.1)])

    working_directory = models.CharField(
        max_length=500, blank=True, help_text="Where the environment's commands run."
    )
    command_env = models.JSONField(
        "command environment variables",
        default=dict,
        blank=True,
        help_text='Extra variables for the commands, e.g. {"MYCELIA_DEMO_STATE_DIR": "data/demo"}.',
    )
    config_directory = models.CharField(
        max_length=500, blank=True, help_text="The configuration folder archived before upgrades."
    )
    command_output_cap_bytes = models.PositiveIntegerField(default=64 * 1024)
    phase_messages = models.BooleanField(
        "draft a message when each phase finishes",
        default=False,
        help_text="Besides the playbook's messages (scheduled, started, rollback, ended), draft a "
        "progress update each time a checklist phase finishes.",
    )

    # The metrics source: SLO thresholds with a PromQL query are read from this Prometheus;
    # the others (and every threshold when it is blank) from the status document.
    # Not a URLField: Django's URL check refuses a bare host name such as http://prometheus:9090
    # (a usual name inside a cluster); the set-up service checks scheme and host instead.
    prometheus_url = models.CharField(
        "Prometheus URL",
        max_length=200,
        blank=True,
        help_text="Base URL of the Prometheus that holds this environment's metrics, e.g. "
        "http://prometheus:9090. Blank: SLOs are read from the status document only.",
    )
    prometheus_timeout_seconds = models.FloatField(
        "Prometheus timeout (seconds)", default=5.0, validators=[MinValueValidator(0.1)]
    )
    prometheus_bearer_token_file = models.CharField(
        "Prometheus bearer token file",
        max_length=500,
        blank=True,
        help_text="Path to a file holding a bearer token (read at each query, never shown).",
    )
    prometheus_username = models.CharField("Prometheus user name", max_length=150, blank=True)
    prometheus_password_file = models.CharField(
        "Prometheus password file",
        max_length=500,
        blank=True,
        help_text="Path to a file holding the basic-auth password (read at each query, never "
        "shown).",
    )

    public_status = models.BooleanField(
        "shown on the status page",
        null=True,
        blank=True,
        help_text="Whether this environment's upgrades, services and incidents reach the public "
        "status page, its feeds, JSON and subscribers. Unknown: by kind (production shown, "
        "staging not).",
    )

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def shown_on_status_page(self) -> bool:
        """The setting, or by kind when it was never set: production yes, staging no."""
        if self.public_status is not None:
            return self.public_status
        return self.kind == EnvironmentKind.PRODUCTION

    @property
    def uses_prometheus(self) -> bool:
        return bool(self.prometheus_url)

    def prometheus_auth(self) -> PrometheusAuth:
        """The credentials from their files; raises SecretFileError naming an unreadable file."""
        return PrometheusAuth(
            bearer_token=secret_file_read(self.prometheus_bearer_token_file),
            username=self.prometheus_username,
            password=secret_file_read(self.prometheus_password_file),
        )

    @property
    def health_url(self) -> str:
        return self.base_url.rstrip("/") + self.health_path

    @property
    def status_url(self) -> str:
        return self.base_url.rstrip("/") + self.status_path


class Operation(models.TextChoices):
    """The playbook's commands and hooks, by what they do."""

    DIAGNOSE = "diagnose", "Diagnostics (pnpm run diagnose)"
    SLO_CHECK = "slo_check", "SLO check (pnpm run ops:lint)"
    LOG_TAIL = "log_tail", "Log tail (pnpm run ops:tail)"
    UNIT_TESTS = "unit_tests", "Unit tests (pnpm test)"
    INTEGRATION_TESTS = "integration_tests", "Integration tests (pnpm test:integration)"
    SECURITY_SCAN = "security_scan", "Security scan (pnpm run sec:scan)"
    TEST_FLOW = "test_flow", "Critical paths (redemption --test-flow)"
    VERIFY_DATA = "verify_data", "Verify data (shared-kernel --verify-data)"
    DEPLOY = "deploy", "Deploy hook"
    ROLLBACK = "rollback", "Rollback hook"
    DB_BACKUP = "db_backup", "Database backup hook"
    DB_RESTORE = "db_restore", "Database restore hook"


class HookMode(models.TextChoices):
    COMMAND = "command", "Command"
    SSH = "ssh", "Command on a host (SSH)"
    WEBHOOK = "webhook", "Webhook (HTTP POST)"


class EnvironmentOperation(models.Model):
    """How one environment carries out one operation. Only administrators edit these (on the
    set-up pages): a command is an argument list, run without a shell."""

    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="operations"
    )
    operation = models.CharField(max_length=30, choices=Operation.choices)
    mode = models.CharField(max_length=10, choices=HookMode.choices, default=HookMode.COMMAND)
    argv = models.JSONField(
        default=list,
        blank=True,
        help_text='An argument list, run without a shell: ["pnpm", "run", "diagnose"]. '
        "{version}, {backup_path} and {output_path} are filled in where an action has them.",
    )
    host = models.ForeignKey(
        "upgrades.EnvironmentHost",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hooks",
        help_text="Where an SSH command runs (mode ssh).",
    )
    webhook_url = models.URLField(blank=True)
    webhook_secret_header = models.CharField(max_length=100, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    timeout_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.1)])

    class Meta:
        ordering = ["environment", "operation"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "operation"], name="one_hook_per_operation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.environment} · {self.get_operation_display()}"

    def argv_filled(self, values: Mapping[str, str], *, keep_missing: bool = False) -> list[str]:
        """The argument list with its {placeholders} filled from `values`, argument by argument.

        Raises HookArgumentError naming the argument when a brace is unbalanced or a placeholder
        has no value in this operation (a hook saved before the set-up form checked it, or from
        the admin); with keep_missing, an unknown placeholder stays as written (for display)."""
        filled = []
        for arg in self.argv:
            parts: list[str] = []
            try:
                pieces = list(string.Formatter().parse(str(arg)))
            except ValueError as error:
                raise HookArgumentError(
                    f"The argument “{arg}” has an unbalanced brace ({error}): write {{{{ or }}}} "
                    "for a brace."
                ) from None
            for literal, name, _spec, _conversion in pieces:
                parts.append(literal)
                if name is None:
                    continue
                if name in values:
                    parts.append(str(values[name]))
                elif keep_missing:
                    parts.append("{" + name + "}")
                else:
                    given = ", ".join(f"{{{n}}}" for n in values) or "none"
                    raise HookArgumentError(
                        f"The argument “{arg}” names {{{name}}}, which this operation does not "
                        f"give (it gives {given})."
                    )
            filled.append("".join(parts))
        return filled


class HookArgumentError(BadInput):
    """A hook's argument cannot be filled in; the message says which and why."""


class SloMetric(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate"
    LATENCY_P95_MS = "latency_p95_ms", "Latency p95 (ms)"
    AVAILABILITY = "availability", "Availability"


class SloThreshold(models.Model):
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="slo_thresholds"
    )
    metric = models.CharField(max_length=30, choices=SloMetric.choices)
    operator = models.CharField(
        max_length=2,
        choices=[("<=", "at most"), ("<", "under"), (">=", "at least"), (">", "over")],
        default="<=",
    )
    limit = models.FloatField()
    query = models.TextField(
        "PromQL query",
        blank=True,
        help_text="Read this figure from the environment's Prometheus with an instant query "
        'that returns one number, e.g. sum(rate(http_requests_total{code=~"5.."}[5m])) / '
        "sum(rate(http_requests_total[5m])). Blank: read it from the status document.",
    )

    class Meta:
        ordering = ["environment", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment", "metric"], name="one_threshold_per_metric"
            )
        ]

    def __str__(self) -> str:
        source = " (Prometheus)" if self.query else ""
        return f"{self.get_metric_display()} {self.operator} {self.limit}{source}"
