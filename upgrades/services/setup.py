"""Setting Mycelia Ops up on its own pages: environments, their hooks and SLO thresholds, the
playbook's templates and common issues. Administrators only (the views check the role); every
change writes a SetupEvent in the same transaction, and no secret is ever written there.

People (invitations, roles, service accounts): services/people.py.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction

from comms import services as comms_services
from mycelia_ops.errors import BadInput, Conflict
from upgrades.models import (
    CommonIssue,
    Environment,
    EnvironmentKind,
    EnvironmentOperation,
    HookMode,
    Operation,
    PhaseStage,
    PlaybookPhase,
    PlaybookStep,
    PlaybookTemplate,
    SetupEvent,
    SetupSubject,
    SloMetric,
    SloThreshold,
    StepKind,
    Upgrade,
)
from upgrades.services.environments import environment_flags_sync
from upgrades.services.playbook import playbook_seed

PLACEHOLDERS = frozenset({"version", "backup_path", "output_path"})
CHECK_CONFIG_KEYS = frozenset(
    {
        "method",
        "path",
        "expected_status",
        "json_path",
        "condition",
        "fail_condition",
        "timeout",
        "retries",
        "interval",
        "count",
        "failure_limit",
    }
)
ISSUE_ACTIONS = frozenset({"rollback_flag", "rollback_version", "log_tail"})
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
SLUG = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")
ENVIRONMENT_FIELDS = (
    "name",
    "slug",
    "kind",
    "base_url",
    "health_path",
    "status_path",
    "request_timeout_seconds",
    "public_status",
    "working_directory",
    "config_directory",
    "command_env",
    "prometheus_url",
    "prometheus_timeout_seconds",
    "prometheus_bearer_token_file",
    "prometheus_username",
    "prometheus_password_file",
)
PROMETHEUS_SECRET_FIELDS = ("prometheus_bearer_token_file", "prometheus_password_file")


# --- history ---------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def setup_record(
    *,
    by: Any,
    subject: str,
    obj: Any,
    label: str,
    verb: str,
    environment: Environment | None = None,
    changes: Iterable[tuple[str, Any, Any]] = (),
) -> list[SetupEvent]:
    """Write the history of one change: one row per field changed, or one row for the whole
    change when no field is named (created, removed, ...). Callers pass no secret values."""
    common = {
        "actor": by if getattr(by, "pk", None) else None,
        "subject": subject,
        "object_id": getattr(obj, "pk", None),
        "label": label[:300],
        "environment": environment,
        "verb": verb,
    }
    rows = [
        SetupEvent(**common, field=field, from_value=_shown(old), to_value=_shown(new))
        for field, old, new in changes
    ] or [SetupEvent(**common)]
    return SetupEvent.objects.bulk_create(rows)


def _diff(obj: Any, data: dict[str, Any], fields: Iterable[str]) -> list[tuple[str, Any, Any]]:
    """Set `fields` of `obj` from `data` and return what changed, as (label, old, new)."""
    changed = []
    for name in fields:
        if name not in data:
            continue
        old, new = getattr(obj, name), data[name]
        if old != new:
            setattr(obj, name, new)
            label = str(obj._meta.get_field(name).verbose_name)
            changed.append((label, _display(obj, name, old), _display(obj, name, new)))
    return changed


def _display(obj: Any, name: str, value: Any) -> Any:
    field = obj._meta.get_field(name)
    if field.choices and value not in (None, ""):
        return dict(field.flatchoices).get(value, value)
    if name == "public_status" and value is None:
        return "by kind"
    return value


def _full_clean(obj: Any, *, exclude: Iterable[str] = ()) -> None:
    """The model's own validation, turned into a 400 naming the first field that is wrong."""
    try:
        obj.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        field, messages = next(iter(error.message_dict.items()))
        label = field if field == "__all__" else obj._meta.get_field(field).verbose_name
        raise BadInput(f"{str(label).capitalize()}: {' '.join(messages)}", field=field) from None


# --- environments ----------------------------------------------------------------------------


def environment_save(
    *, environment: Environment | None, by: Any, data: dict[str, Any]
) -> Environment:
    """Create an environment (environment=None) or change one; the flag environment of the same
    key is created or renamed with it. `data` holds ENVIRONMENT_FIELDS (any subset on a change).
    """
    creating = environment is None
    environment = environment or Environment()
    data = {key: data[key] for key in ENVIRONMENT_FIELDS if key in data}
    for key in ("name", "slug", "base_url", "health_path", "status_path", "prometheus_url",
                "prometheus_username", *PROMETHEUS_SECRET_FIELDS):  # fmt: skip
        if isinstance(data.get(key), str):
            data[key] = data[key].strip()
    if "name" in data and not data["name"]:
        raise BadInput("Give the environment a name, e.g. “Production”.", field="name")
    if "slug" in data:
        if not SLUG.match(data["slug"] or ""):
            raise BadInput(
                "The key is lower-case letters, digits and single dashes, e.g. “production”: "
                "flags and the API name the environment by it.",
                field="slug",
            )
        if data["slug"] != environment.slug and not creating and _used(environment):
            raise BadInput(
                f"The key of {environment.name} cannot change: upgrades use it, and its flags "
                f"live under “{environment.slug}”.",
                field="slug",
            )
    if "kind" in data and data["kind"] not in EnvironmentKind.values:
        raise BadInput("Choose staging or production.", field="kind")
    for key in ("health_path", "status_path"):
        if key in data and not str(data[key]).startswith("/"):
            raise BadInput(
                f"The {key.replace('_', ' ')} starts with a slash, e.g. “/health”.", field=key
            )
    if "command_env" in data:
        env = data["command_env"]
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) and isinstance(v, str)
            for k, v in env.items()
        ):
            raise BadInput(
                "Command variables are NAME=value lines; a name is letters, digits and _.",
                field="command_env",
            )
    if data.get("base_url"):
        try:
            URLValidator(schemes=["http", "https"])(data["base_url"])
        except ValidationError:
            raise BadInput(
                "The base URL is an http(s) address, e.g. https://mycelia.example.com.",
                field="base_url",
            ) from None
    _prometheus_check(environment, data)
    for key, label in (("name", "name"), ("slug", "key")):
        if key in data:
            clash = Environment.objects.filter(**{key: data[key]}).exclude(pk=environment.pk)
            if clash.exists():
                raise BadInput(f"Another environment has the {label} “{data[key]}”.", field=key)
    with transaction.atomic():
        changes = _diff(environment, data, ENVIRONMENT_FIELDS)
        _full_clean(environment)
        if creating or changes:
            environment.save()
            setup_record(
                by=by,
                subject=SetupSubject.ENVIRONMENT,
                obj=environment,
                label=environment.name,
                environment=environment,
                verb="created" if creating else "changed",
                changes=[] if creating else changes,
            )
    environment_flags_sync(environment=environment)
    return environment


def _used(environment: Environment) -> bool:
    return Upgrade.objects.filter(environment=environment).exists()


def environment_delete(*, environment: Environment, by: Any) -> None:
    if _used(environment):
        raise Conflict(
            f"{environment.name} has upgrades: it stays, so their history keeps its place."
        )
    with transaction.atomic():
        setup_record(
            by=by,
            subject=SetupSubject.ENVIRONMENT,
            obj=environment,
            label=environment.name,
            verb="removed",
        )
        environment.delete()


# --- hooks -----------------------------------------------------------------------------------


def hook_label(hook: EnvironmentOperation) -> str:
    """“Deploy hook”, “Diagnostics (pnpm run diagnose) hook”: the operation, named as a hook."""
    label = hook.get_operation_display()
    return label if label.lower().endswith("hook") else f"{label} hook"


def argv_problem(argv: Any) -> str:
    """Why an argument list cannot be a hook's command ("" when it can)."""
    if not isinstance(argv, list) or not argv:
        return "A command hook needs a command: one argument a line, the program first."
    if not all(isinstance(arg, str) for arg in argv):
        return "Every argument is text."
    if not argv[0].strip():
        return "The program (the first line) cannot be blank."
    for arg in argv:
        if "\x00" in arg:
            return "An argument holds a NUL character."
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(arg) if name is not None]
        except ValueError as error:
            return f"“{arg}” has an unbalanced brace ({error}); write {{{{ or }}}} for a brace."
        unknown = [name for name in names if name not in PLACEHOLDERS]
        if unknown:
            return (
                f"“{arg}” names {{{unknown[0]}}}; the placeholders are "
                + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                + "."
            )
    return ""


def hook_save(
    *,
    environment: Environment,
    hook: EnvironmentOperation | None,
    by: Any,
    data: dict[str, Any],
) -> EnvironmentOperation:
    """Create or change one hook. `webhook_secret` is write-only: absent or None keeps the
    secret, "" clears it. The history says "set"/"cleared", never the value."""
    creating = hook is None
    hook = hook or EnvironmentOperation(environment=environment)
    operation = data.get("operation", hook.operation)
    if operation not in Operation.values:
        raise BadInput("Choose what the hook does (diagnostics, deploy, ...).", field="operation")
    clash = environment.operations.filter(operation=operation).exclude(pk=hook.pk)
    if clash.exists():
        raise BadInput(
            f"{environment.name} has a “{Operation(operation).label}” hook already: change "
            "that one.",
            field="operation",
        )
    mode = data.get("mode", hook.mode)
    if mode not in HookMode.values:
        raise BadInput("A hook is a command, a command on a host (SSH) or a webhook.", field="mode")
    values: dict[str, Any] = {"operation": operation, "mode": mode, "host": None}
    if mode == HookMode.SSH:
        host = data.get("host", hook.host)
        host_id = getattr(host, "pk", host)
        host = environment.hosts.filter(pk=host_id).first() if host_id else None
        if host is None:
            raise BadInput(
                f"Choose the host it runs on (one of {environment.name}'s hosts; add one first).",
                field="host",
            )
        values["host"] = host
    if "timeout_seconds" in data:
        timeout = data["timeout_seconds"]
        if not isinstance(timeout, int | float) or not 0.1 <= timeout <= 24 * 3600:
            raise BadInput(
                "The time limit is between 0.1 seconds and 24 hours.", field="timeout_seconds"
            )
        values["timeout_seconds"] = float(timeout)
    if mode in (HookMode.COMMAND, HookMode.SSH):
        argv = data.get("argv", hook.argv)
        problem = argv_problem(argv)
        if problem:
            raise BadInput(problem, field="argv")
        values["argv"] = argv
    else:
        url = (data.get("webhook_url", hook.webhook_url) or "").strip()
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError:
            raise BadInput(
                "A webhook hook needs the http(s) address to POST to.", field="webhook_url"
            ) from None
        values["webhook_url"] = url
    header = (data.get("webhook_secret_header", hook.webhook_secret_header) or "").strip()
    if header and not HEADER_NAME.match(header):
        raise BadInput(
            "The secret's header is a header name such as X-Deploy-Token (no spaces or colons).",
            field="webhook_secret_header",
        )
    values["webhook_secret_header"] = header
    secret = data.get("webhook_secret")
    secret_change = ""
    if secret is not None and secret != hook.webhook_secret:
        if len(secret) > 200:
            raise BadInput("The secret is longer than 200 characters.", field="webhook_secret")
        secret_change = "set" if secret else "cleared"
        hook.webhook_secret = secret
    if mode == HookMode.WEBHOOK and bool(header) != bool(hook.webhook_secret):
        raise BadInput(
            "Give both the secret's header and the secret, or neither.",
            field="webhook_secret" if header else "webhook_secret_header",
        )
    with transaction.atomic():
        changes = _diff(hook, values, values.keys())
        if secret_change:
            changes.append(("webhook secret", "" if secret_change == "set" else "set",
                            secret_change))  # fmt: skip
        if creating or changes:
            hook.save()
            setup_record(
                by=by,
                subject=SetupSubject.HOOK,
                obj=hook,
                label=f"{environment.name} · {hook_label(hook)}",
                environment=environment,
                verb="created" if creating else "changed",
                changes=[] if creating else changes,
            )
    return hook


def hook_delete(*, hook: EnvironmentOperation, by: Any) -> None:
    with transaction.atomic():
        setup_record(
            by=by,
            subject=SetupSubject.HOOK,
            obj=hook,
            label=f"{hook.environment.name} · {hook_label(hook)}",
            environment=hook.environment,
            verb="removed",
        )
        hook.delete()


def _prometheus_check(environment: Environment, data: dict[str, Any]) -> None:
    """The metrics source's settings: an http(s) URL, a timeout, secrets only as file paths."""
    if data.get("prometheus_url"):
        parts = urlsplit(str(data["prometheus_url"]))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise BadInput(
                "The Prometheus URL is an http(s) address, e.g. http://prometheus:9090.",
                field="prometheus_url",
            )
    timeout = data.get("prometheus_timeout_seconds")
    if timeout is not None and (not isinstance(timeout, int | float) or not 0.1 <= timeout <= 120):
        raise BadInput(
            "The Prometheus timeout is between 0.1 and 120 seconds.",
            field="prometheus_timeout_seconds",
        )
    for key in PROMETHEUS_SECRET_FIELDS:
        if data.get(key) and not str(data[key]).startswith(("/", "~")):
            raise BadInput(
                "Give the path of a file holding the secret (e.g. /run/secrets/prometheus), "
                "never the secret itself: it is not stored.",
                field=key,
            )
    names = ("prometheus_bearer_token_file", "prometheus_username", "prometheus_password_file")
    merged = {k: data.get(k, getattr(environment, k)) for k in names}
    if merged["prometheus_bearer_token_file"] and (
        merged["prometheus_username"] or merged["prometheus_password_file"]
    ):
        raise BadInput(
            "Prometheus takes a bearer token or a user name and password, not both.",
            field="prometheus_bearer_token_file",
        )
    if bool(merged["prometheus_username"]) != bool(merged["prometheus_password_file"]):
        raise BadInput(
            "Basic auth needs both the user name and the password file.",
            field="prometheus_password_file",
        )


def slo_save(
    *,
    environment: Environment,
    by: Any,
    limits: dict[str, tuple[str, float | None]],
    queries: dict[str, str] | None = None,
) -> None:
    """Set the SLO thresholds: metric -> (operator, limit); a limit of None removes one.
    ``queries`` (metric -> PromQL) reads a figure from the environment's Prometheus."""
    queries = queries or {}
    for metric, (operator, limit) in limits.items():
        if metric not in SloMetric.values:
            raise BadInput(f"Unknown SLO metric “{metric}”.", field=metric)
        if operator not in ("<=", "<", ">=", ">"):
            raise BadInput(
                "A threshold is “at most”, “under”, “at least” or “over”.",
                field=f"{metric}_operator",
            )
        if queries.get(metric) and not environment.prometheus_url:
            raise BadInput(
                f"{environment.name} has no Prometheus URL: set it above before giving a query.",
                field=f"{metric}_query",
            )
        if queries.get(metric) and limit is None:
            raise BadInput("A query needs a limit to hold it to.", field=metric)
        if limit is not None and (limit < 0 or (metric != SloMetric.LATENCY_P95_MS and limit > 1)):
            raise BadInput(
                f"{SloMetric(metric).label} is a fraction between 0 and 1 (0.999 for 99.9 %)."
                if metric != SloMetric.LATENCY_P95_MS
                else "Latency is a number of milliseconds, 0 or more.",
                field=metric,
            )
    existing = {t.metric: t for t in environment.slo_thresholds.all()}
    with transaction.atomic():
        for metric, (operator, limit) in limits.items():
            row = existing.get(metric)
            label = f"{environment.name} · {SloMetric(metric).label}"
            query = queries.get(metric, row.query if row else "") if limit is not None else ""
            before = f"{row.operator} {row.limit:g}" if row else ""
            before += f" from {row.query}" if row and row.query else ""
            after = f"{operator} {limit:g}" if limit is not None else ""
            after += f" from {query}" if query else ""
            if before == after:
                continue
            if limit is None:
                row.delete()
            elif row:
                row.operator, row.limit, row.query = operator, limit, query
                row.save(update_fields=["operator", "limit", "query"])
            else:
                row = SloThreshold.objects.create(
                    environment=environment, metric=metric, operator=operator, limit=limit,
                    query=query,
                )  # fmt: skip
            setup_record(
                by=by,
                subject=SetupSubject.SLO,
                obj=row if limit is not None else None,
                label=label,
                environment=environment,
                verb="changed",
                changes=[("threshold", before or "none", after or "none")],
            )


# --- playbook templates ----------------------------------------------------------------------


def playbook_load(*, by: Any) -> int:
    """Load the playbook's templates, common issues and message templates where they are missing
    (what `manage.py seed` does; nothing that exists is changed). Returns the templates written."""
    written = playbook_seed(reset=False)
    comms_services.comms_seed()
    if written:
        setup_record(by=by, subject=SetupSubject.TEMPLATE, obj=None, verb="loaded",
                     label=f"The playbook's templates ({written})")  # fmt: skip
    return written


def template_save(*, template: PlaybookTemplate, by: Any, data: dict[str, Any]) -> None:
    data = {k: (v or "").strip() for k, v in data.items()}
    if "name" in data and not data["name"]:
        raise BadInput("Give the template a name.", field="name")
    with transaction.atomic():
        changes = _diff(template, data, ("name", "description", "rollback_procedure"))
        if changes:
            _full_clean(template)
            template.save()
            setup_record(by=by, subject=SetupSubject.TEMPLATE, obj=template,
                         label=template.name, verb="changed", changes=changes)  # fmt: skip


def phase_save(
    *, template: PlaybookTemplate, phase: PlaybookPhase | None, by: Any, data: dict[str, Any]
) -> PlaybookPhase:
    creating = phase is None
    phase = phase or PlaybookPhase(template=template)
    title = (data.get("title", phase.title) or "").strip()
    if not title:
        raise BadInput("Give the phase a title, e.g. “Pre-upgrade checks”.", field="title")
    if data.get("stage", phase.stage) not in PhaseStage.values:
        raise BadInput("Choose the stage the phase belongs to.", field="stage")
    order = data.get("order")
    if order is None:
        order = phase.order if not creating else _next_order(template.phases.all())
    if not isinstance(order, int) or order < 0:
        raise BadInput("The order is a whole number, 0 or more.", field="order")
    if template.phases.filter(order=order).exclude(pk=phase.pk).exists():
        raise BadInput(f"Another phase of this template is number {order}.", field="order")
    values = {"title": title, "stage": data.get("stage", phase.stage), "order": order}
    with transaction.atomic():
        changes = _diff(phase, values, values.keys())
        if creating or changes:
            phase.save()
            setup_record(by=by, subject=SetupSubject.PHASE, obj=phase,
                         label=f"{template.name} · {phase.title}",
                         verb="created" if creating else "changed",
                         changes=[] if creating else changes)  # fmt: skip
    return phase


def _next_order(rows) -> int:
    return max((row.order for row in rows), default=0) + 1


def phase_delete(*, phase: PlaybookPhase, by: Any) -> None:
    with transaction.atomic():
        setup_record(by=by, subject=SetupSubject.PHASE, obj=phase,
                     label=f"{phase.template.name} · {phase.title}", verb="removed")  # fmt: skip
        phase.delete()


def step_save(
    *, phase: PlaybookPhase, step: PlaybookStep | None, by: Any, data: dict[str, Any]
) -> PlaybookStep:
    creating = step is None
    step = step or PlaybookStep(phase=phase)
    values: dict[str, Any] = {}
    for key in ("title", "section", "description", "commands"):
        if key in data:
            values[key] = (data[key] or "").strip()
    if not values.get("title", step.title):
        raise BadInput("Give the step a title.", field="title")
    kind = data.get("kind", step.kind)
    if kind not in StepKind.values:
        raise BadInput("Choose the kind of step.", field="kind")
    values["kind"] = kind
    operation = data.get("operation", step.operation) or ""
    if operation and operation not in Operation.values:
        raise BadInput("Choose one of the environment's hooks, or none.", field="operation")
    if kind == StepKind.COMMAND and not operation:
        raise BadInput("A command step runs one of the environment's hooks: choose it.",
                       field="operation")  # fmt: skip
    values["operation"] = operation
    config = data.get("check_config", step.check_config)
    if not isinstance(config, dict):
        raise BadInput("Check settings are a JSON object, e.g. {\"retries\": 3}.",
                       field="check_config")  # fmt: skip
    unknown = sorted(set(config) - CHECK_CONFIG_KEYS)
    if unknown:
        raise BadInput(
            f"Unknown check setting “{unknown[0]}”; the settings are "
            + ", ".join(sorted(CHECK_CONFIG_KEYS))
            + ".",
            field="check_config",
        )
    values["check_config"] = config
    values["required"] = bool(data.get("required", step.required))
    order = data.get("order")
    if order is None:
        order = step.order if not creating else _next_order(phase.steps.all())
    if not isinstance(order, int) or order < 0:
        raise BadInput("The order is a whole number, 0 or more.", field="order")
    values["order"] = order
    with transaction.atomic():
        changes = _diff(step, values, values.keys())
        if creating or changes:
            _full_clean(step)
            step.save()
            setup_record(by=by, subject=SetupSubject.STEP, obj=step,
                         label=f"{phase.template.name} · {phase.title} · {step.title}",
                         verb="created" if creating else "changed",
                         changes=[] if creating else changes)  # fmt: skip
    return step


def step_delete(*, step: PlaybookStep, by: Any) -> None:
    with transaction.atomic():
        setup_record(by=by, subject=SetupSubject.STEP, obj=step,
                     label=f"{step.phase.template.name} · {step.phase.title} · {step.title}",
                     verb="removed")  # fmt: skip
        step.delete()


# --- common issues ---------------------------------------------------------------------------


def common_issue_save(*, issue: CommonIssue | None, by: Any, data: dict[str, Any]) -> CommonIssue:
    creating = issue is None
    issue = issue or CommonIssue()
    values: dict[str, Any] = {}
    for key in ("title", "issue", "symptoms", "solution"):
        if key in data:
            values[key] = (data[key] or "").strip()
    for key, label in (("title", "a title"), ("issue", "the issue"), ("solution", "a solution")):
        if not values.get(key, getattr(issue, key)):
            raise BadInput(f"Give {label}.", field=key)
    applies = data.get("applies_to", issue.applies_to)
    allowed = set(StepKind.values) | set(Operation.values) | {"deploy", "rollback", "backup"}
    bad = [a for a in applies if a not in allowed]
    if not applies or bad:
        raise BadInput(
            (f"“{bad[0]}” is not a step kind or action. " if bad else "")
            + "Name the step kinds or actions it applies to, e.g. http_health, deploy.",
            field="applies_to",
        )
    values["applies_to"] = list(applies)
    actions = data.get("actions", issue.actions)
    bad = [a for a in actions if a not in ISSUE_ACTIONS]
    if bad:
        raise BadInput(
            f"“{bad[0]}” is not an action; choose from " + ", ".join(sorted(ISSUE_ACTIONS)) + ".",
            field="actions",
        )
    values["actions"] = list(actions)
    if "order" in data:
        values["order"] = data["order"]
    with transaction.atomic():
        changes = _diff(issue, values, values.keys())
        if creating or changes:
            _full_clean(issue)
            issue.save()
            setup_record(by=by, subject=SetupSubject.COMMON_ISSUE, obj=issue, label=issue.title,
                         verb="created" if creating else "changed",
                         changes=[] if creating else changes)  # fmt: skip
    return issue


def common_issue_delete(*, issue: CommonIssue, by: Any) -> None:
    with transaction.atomic():
        setup_record(by=by, subject=SetupSubject.COMMON_ISSUE, obj=issue, label=issue.title,
                     verb="removed")  # fmt: skip
        issue.delete()
