"""Forms of the set-up pages: they parse the shape of the input (a number, a list, JSON); the
services in services/setup.py and services/people.py decide what is allowed."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from flags.models import ApiTokenScope, FlagEnvironment
from upgrades.models import (
    EnvironmentHost,
    EnvironmentKind,
    HookMode,
    InvitedRole,
    Operation,
    PhaseStage,
    SloMetric,
    StepKind,
)

PUBLIC_CHOICES = [
    ("", "By kind (production shown, staging not)"),
    ("yes", "Shown"),
    ("no", "Not shown"),
]


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class EnvironmentForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(
        label="Key", max_length=50,
        help_text="Lower-case, e.g. production. Flags and the API name the environment by it; "
        "its flag environment has the same key.",
    )  # fmt: skip
    kind = forms.ChoiceField(choices=EnvironmentKind.choices)
    base_url = forms.CharField(
        label="Base URL", max_length=200, required=False,
        help_text="Where the Mycelia target answers HTTP, e.g. https://mycelia.example.com.",
    )  # fmt: skip
    health_path = forms.CharField(max_length=200, initial="/health")
    status_path = forms.CharField(max_length=200, initial="/ops/status.json")
    request_timeout_seconds = forms.FloatField(
        label="Timeout (seconds)", min_value=0.1, max_value=600, initial=5.0
    )
    public_status = forms.ChoiceField(
        label="Shown on the status page", choices=PUBLIC_CHOICES, required=False
    )
    prometheus_url = forms.CharField(
        label="Prometheus URL", max_length=200, required=False,
        help_text="Optional metrics source, e.g. http://prometheus:9090: SLO thresholds with a "
        "PromQL query are read from it. Blank: the status document only.",
    )  # fmt: skip
    prometheus_timeout_seconds = forms.FloatField(
        label="Prometheus timeout (seconds)",
        min_value=0.1,
        max_value=120,
        initial=5.0,
        required=False,
    )
    prometheus_bearer_token_file = forms.CharField(
        label="Prometheus bearer token file", max_length=500, required=False,
        help_text="Where the worker reads the token: a file path (a mounted secret, e.g. "
        "/run/secrets/prometheus_token). Never paste the token: it is not stored.",
    )  # fmt: skip
    prometheus_username = forms.CharField(
        label="Prometheus user name", max_length=150, required=False,
        help_text="For basic auth, with the password file below.",
    )  # fmt: skip
    prometheus_password_file = forms.CharField(
        label="Prometheus password file", max_length=500, required=False,
        help_text="A file path holding the basic-auth password (never the password itself).",
    )  # fmt: skip
    working_directory = forms.CharField(
        max_length=500, required=False, help_text="Where its command hooks run, on the worker."
    )
    config_directory = forms.CharField(
        max_length=500, required=False,
        help_text="The configuration folder archived before upgrades.",
    )  # fmt: skip
    command_env = forms.CharField(
        label="Command variables", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="NAME=value, one a line; given to every command hook.",
    )  # fmt: skip

    def clean_prometheus_timeout_seconds(self) -> float:
        value = self.cleaned_data.get("prometheus_timeout_seconds")
        return 5.0 if value is None else value

    def clean_public_status(self) -> bool | None:
        return {"yes": True, "no": False}.get(self.cleaned_data.get("public_status") or "")

    def clean_command_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for line in _lines(self.cleaned_data.get("command_env", "")):
            name, sep, value = line.partition("=")
            if not sep:
                raise forms.ValidationError(f"“{line}” is not NAME=value.")
            env[name.strip()] = value.strip()
        return env

    @staticmethod
    def initial_from(environment) -> dict[str, Any]:
        return {
            **{f: getattr(environment, f) for f in (
                "name", "slug", "kind", "base_url", "health_path", "status_path",
                "request_timeout_seconds", "working_directory", "config_directory",
                "prometheus_url", "prometheus_timeout_seconds", "prometheus_bearer_token_file",
                "prometheus_username", "prometheus_password_file")},
            "public_status": {True: "yes", False: "no"}.get(environment.public_status, ""),
            "command_env": "\n".join(f"{k}={v}" for k, v in environment.command_env.items()),
        }  # fmt: skip


class HookForm(forms.Form):
    operation = forms.ChoiceField(label="What it does", choices=Operation.choices)
    mode = forms.ChoiceField(label="How", choices=HookMode.choices, widget=forms.RadioSelect)
    argv = forms.CharField(
        label="Command", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One argument a line, the program first; run without a shell. "
        "{version}, {backup_path} and {output_path} are filled in where an action has them.",
    )  # fmt: skip
    host = forms.ModelChoiceField(
        label="Run on host", queryset=EnvironmentHost.objects.none(), required=False,
        empty_label="Choose a host…",
        help_text="For a command on a host (SSH): one of this environment's hosts.",
    )  # fmt: skip
    webhook_url = forms.CharField(label="Webhook URL", max_length=200, required=False)
    webhook_secret_header = forms.CharField(
        label="Secret's header", max_length=100, required=False,
        help_text="e.g. X-Deploy-Token",
    )  # fmt: skip
    webhook_secret = forms.CharField(
        label="Secret", max_length=200, required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: leave blank to keep the one set.",
    )  # fmt: skip
    clear_secret = forms.BooleanField(label="Clear the secret", required=False)
    timeout_seconds = forms.FloatField(label="Time limit (seconds)", min_value=0.1, initial=60)

    def __init__(self, *args: Any, environment: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if environment is not None:
            self.fields["host"].queryset = environment.hosts.all()

    def clean_argv(self) -> list[str]:
        # Each line is one argument exactly as written: nothing is split or quoted by a shell.
        return [line.rstrip("\r") for line in (self.cleaned_data.get("argv") or "").splitlines()
                if line.strip()]  # fmt: skip

    def service_data(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        clear = data.pop("clear_secret", False)
        secret = data.pop("webhook_secret", "")
        if clear:
            data["webhook_secret"] = ""
        elif secret:
            data["webhook_secret"] = secret
        return data


class HostForm(forms.Form):
    address = forms.CharField(
        max_length=255, help_text="A host name or IP address, e.g. app1.mycelia.internal."
    )
    port = forms.IntegerField(min_value=1, max_value=65535, initial=22)
    user = forms.CharField(max_length=100, help_text="The account the commands run as.")
    host_key = forms.CharField(
        label="Host's public key", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One line, e.g. from ssh-keyscan -t ed25519 app1.mycelia.internal or the "
        "host's /etc/ssh/ssh_host_ed25519_key.pub. Checked on every connection: a host that "
        "shows another key is refused.",
    )  # fmt: skip
    private_key_file = forms.CharField(
        label="Private key", max_length=500,
        help_text="Where the worker reads it: a file path (a mounted secret, e.g. "
        "/run/secrets/mycelia_ssh_key) or a variable ending in _FILE that holds the path (e.g. "
        "MYCELIA_SSH_KEY_FILE). Never paste the key: it is not stored.",
    )  # fmt: skip
    working_directory = forms.CharField(
        label="Working folder", max_length=500, required=False,
        help_text="Where commands run on the host; blank: the user's home.",
    )  # fmt: skip

    @staticmethod
    def initial_from(host: Any) -> dict[str, Any]:
        return {
            name: getattr(host, name)
            for name in ("address", "port", "user", "host_key", "private_key_file",
                         "working_directory")
        }  # fmt: skip


SLO_OPERATORS = [("<=", "at most"), ("<", "under"), (">=", "at least"), (">", "over")]


class SloForm(forms.Form):
    def __init__(self, *args: Any, thresholds: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        thresholds = thresholds or {}
        for metric, label in SloMetric.choices:
            row = thresholds.get(metric)
            self.fields[f"{metric}_operator"] = forms.ChoiceField(
                label=f"{label}: bound", choices=SLO_OPERATORS,
                initial=row.operator if row else (">=" if metric == "availability" else "<="),
            )  # fmt: skip
            self.fields[metric] = forms.FloatField(
                label=label, required=False, initial=row.limit if row else None,
                help_text="Milliseconds." if metric == SloMetric.LATENCY_P95_MS
                else "A fraction: 0.01 is 1 %, 0.999 is 99.9 %. Blank: no threshold.",
            )  # fmt: skip
            self.fields[f"{metric}_query"] = forms.CharField(
                label=f"{label}: PromQL query", required=False,
                widget=forms.Textarea(attrs={"rows": 2}), initial=row.query if row else "",
                help_text="Optional: read it from the environment's Prometheus, an instant query "
                "returning one number" + (" (in ms: multiply seconds by 1000)"
                if metric == SloMetric.LATENCY_P95_MS else "") + ". Blank: the status document.",
            )  # fmt: skip

    def queries(self) -> dict[str, str]:
        return {m: self.cleaned_data.get(f"{m}_query", "").strip() for m in SloMetric.values}

    def limits(self) -> dict[str, tuple[str, float | None]]:
        return {
            metric: (self.cleaned_data[f"{metric}_operator"], self.cleaned_data[metric])
            for metric in SloMetric.values
        }


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    rollback_procedure = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))


class PhaseForm(forms.Form):
    title = forms.CharField(max_length=200)
    stage = forms.ChoiceField(choices=PhaseStage.choices)
    order = forms.IntegerField(min_value=0, required=False, help_text="Blank: after the others.")


class StepForm(forms.Form):
    title = forms.CharField(max_length=300)
    section = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=StepKind.choices)
    operation = forms.ChoiceField(
        label="Hook it runs", required=False, choices=[("", "None")] + list(Operation.choices)
    )
    check_config = forms.CharField(
        label="Check settings (JSON)", required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text='e.g. {"path": "/health", "expected_status": 200, "retries": 3}',
    )  # fmt: skip
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    commands = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The playbook's commands, for reference.",
    )  # fmt: skip
    required = forms.BooleanField(required=False, initial=True)
    order = forms.IntegerField(min_value=0, required=False, help_text="Blank: after the others.")

    def clean_check_config(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("check_config") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not JSON: {error.msg} (line {error.lineno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('Check settings are a JSON object: {"key": value}.')
        return value


class CommonIssueForm(forms.Form):
    title = forms.CharField(max_length=200)
    issue = forms.CharField(max_length=300)
    symptoms = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    solution = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), help_text="One step a line."
    )
    applies_to = forms.CharField(
        label="Applies to", help_text="Step kinds and actions, comma-separated: http_health, deploy"
    )
    actions = forms.CharField(
        label="One-click actions", required=False,
        help_text="Comma-separated: rollback_flag, rollback_version, log_tail",
    )  # fmt: skip
    order = forms.IntegerField(min_value=0, initial=0)

    def clean_applies_to(self) -> list[str]:
        return [p.strip() for p in self.cleaned_data["applies_to"].split(",") if p.strip()]

    def clean_actions(self) -> list[str]:
        return [p.strip() for p in (self.cleaned_data.get("actions") or "").split(",") if p.strip()]


class InviteForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=InvitedRole.choices, initial=InvitedRole.RELEASE_MANAGER)


class RolesForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=InvitedRole.choices, required=False, widget=forms.CheckboxSelectMultiple
    )


class ServiceAccountForm(forms.Form):
    username = forms.CharField(label="Name", max_length=150, help_text="e.g. ci-pipeline")
    role = forms.ChoiceField(
        choices=[(InvitedRole.RELEASE_MANAGER, "Release manager (may act)"),
                 (InvitedRole.STAKEHOLDER, "Stakeholder (reads only)")],
    )  # fmt: skip
    description = forms.CharField(max_length=300, required=False)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="e.g. release pipeline")
    scope = forms.ChoiceField(choices=ApiTokenScope.choices)
    environment = forms.ChoiceField(
        label="Flag environment (evaluation tokens)", required=False, choices=()
    )

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["environment"].choices = [("", "—")] + [
            (e.key, e.name) for e in FlagEnvironment.objects.all()
        ]


class SignUpForm(forms.Form):
    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"})
    )
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password_again = forms.CharField(
        label="Password again", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data
