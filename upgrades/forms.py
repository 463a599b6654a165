from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q

from mycelia_ops.roles import RELEASE_MANAGERS
from mycelia_ops.validation import BadInput, clean_text
from upgrades.models import EmergencyKind, Environment, Risk, UpgradeType

MAX_WINDOW_MINUTES = 60 * 24 * 14
DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


def _datetime_input() -> forms.DateTimeInput:
    # The browser's date-and-time picker; the value it shows must be in its own format.
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL)


def checked_text(value: Any, *, field: str, max_length: int, label: str) -> str:
    """Text a database, a hash and a page can take, or a ValidationError for the field: no
    lone surrogates or control characters, and no U+FFFD (what a request body that was not
    UTF-8 turns into when it is read)."""
    try:
        value = clean_text(value, field=field, max_length=max_length)
    except BadInput as exc:
        raise ValidationError(exc.message.replace(f"'{field}'", label)) from None
    if "\ufffd" in value:
        raise ValidationError(
            f"{label} holds characters that did not arrive as UTF-8 text (shown as �): retype them."
        )
    return value.strip()


def checked_moment(value: datetime | None, *, label: str) -> datetime | None:
    if value is not None and not 2000 <= value.year <= 2100:
        raise ValidationError(f"{label} must be between the years 2000 and 2100.")
    return value


def _minutes_field() -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_WINDOW_MINUTES,
        label="Expected duration (minutes)",
        error_messages={
            "min_value": "The expected duration is between 1 minute and 14 days (20160 minutes).",
            "max_value": "The expected duration is between 1 minute and 14 days (20160 minutes).",
            "invalid": "Give the expected duration as a whole number of minutes.",
        },
    )


def _flag_input() -> forms.TextInput:
    # Offers the flags that exist (the page renders <datalist id="flag-keys">).
    return forms.TextInput(attrs={"list": "flag-keys", "autocomplete": "off"})


class _UpgradeDetailsForm(forms.Form):
    """The rules the create and edit forms share: safe text, sane dates, bounded numbers. The
    upgrade rules themselves (versions, flags) are the service's; the view puts its refusal on
    the field it names."""

    def clean_title(self) -> str:
        return checked_text(self.cleaned_data["title"], field="title", max_length=200,
                            label="The title")  # fmt: skip

    def clean_description(self) -> str:
        return checked_text(self.cleaned_data.get("description", ""), field="description",
                            max_length=5000, label="The description")  # fmt: skip

    def clean_version_from(self) -> str:
        return checked_text(self.cleaned_data["version_from"], field="version_from",
                            max_length=50, label="The version")  # fmt: skip

    def clean_version_to(self) -> str:
        return checked_text(self.cleaned_data["version_to"], field="version_to", max_length=50,
                            label="The version")  # fmt: skip

    def clean_flag_key(self) -> str:
        return checked_text(self.cleaned_data["flag_key"], field="flag_key", max_length=100,
                            label="The flag")  # fmt: skip

    def clean_window_start(self) -> datetime | None:
        return checked_moment(self.cleaned_data["window_start"], label="The window start")


class UpgradeCreateForm(_UpgradeDetailsForm):
    upgrade_type = forms.ChoiceField(label="Type", choices=UpgradeType.choices)
    emergency_kind = forms.ChoiceField(
        label="Emergency kind",
        choices=[("", "—"), *EmergencyKind.choices],
        required=False,
        help_text="Emergencies only.",
    )
    title = forms.CharField(max_length=200)
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), empty_label=None)
    version_from = forms.CharField(
        max_length=50, required=False, label="Version from",
        help_text="The version running now, e.g. 1.4.2 (minor, major and emergency upgrades).",
    )  # fmt: skip
    version_to = forms.CharField(
        max_length=50, required=False, label="Version to",
        help_text="Minor keeps the major number and goes up; major raises it.",
    )  # fmt: skip
    flag_key = forms.CharField(
        max_length=100,
        required=False,
        label="Feature flag",
        help_text="Feature flag upgrades only: a flag that exists (start typing to pick one).",
        widget=_flag_input(),
    )
    risk = forms.ChoiceField(
        choices=[("", "Playbook default for the type"), *Risk.choices],
        required=False,
        help_text="The playbook's rating for the type is the floor; you may raise it.",
    )
    window_start = forms.DateTimeField(
        required=False, label="Maintenance window start", widget=_datetime_input()
    )
    window_minutes = _minutes_field()


def release_managers():
    return (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name=RELEASE_MANAGERS) | Q(is_superuser=True))
        .distinct()
        .order_by("username")
    )


class UpgradeEditForm(_UpgradeDetailsForm):
    """An upgrade's details until its deployment starts. A flag upgrade has no versions and a
    version upgrade no flag: those fields are left out."""

    title = forms.CharField(max_length=200)
    description = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )
    version_from = forms.CharField(max_length=50, required=False, label="Version from")
    version_to = forms.CharField(
        max_length=50, required=False, label="Version to",
        help_text="Minor keeps the major number and goes up; major raises it.",
    )  # fmt: skip
    flag_key = forms.CharField(
        max_length=100, label="Feature flag", widget=_flag_input(),
        help_text="A flag that exists in the environment.",
    )  # fmt: skip
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), empty_label=None)
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(), empty_label=None,
        help_text="Release managers only.",
    )  # fmt: skip
    window_start = forms.DateTimeField(
        required=False, label="Maintenance window start", widget=_datetime_input()
    )
    window_minutes = _minutes_field()

    def __init__(self, *args: Any, upgrade: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {name: getattr(upgrade, name) for name in self.base_fields if name != "owner"},
        )
        kwargs["initial"].setdefault("owner", upgrade.owner_id)
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = release_managers()
        drop = (
            ("version_from", "version_to")
            if upgrade.upgrade_type == UpgradeType.FEATURE_FLAG
            else ("flag_key",)
        )
        for name in drop:
            del self.fields[name]

    def changes(self) -> dict[str, Any]:
        """The cleaned values as `upgrade_edit`'s changes (it records only what differs)."""
        return {name: self.cleaned_data[name] for name in self.fields}


class FreezeForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="E.g. “Friday afternoons” or “Black Friday”.")
    reason = forms.CharField(
        max_length=2000, widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Shown wherever the freeze refuses a deployment.",
    )  # fmt: skip
    environments = forms.ModelMultipleChoiceField(
        queryset=Environment.objects.all(), widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose the environments the freeze covers."},
    )  # fmt: skip
    starts_at = forms.DateTimeField(label="Starts", widget=_datetime_input())
    ends_at = forms.DateTimeField(label="Ends", widget=_datetime_input())
    weekly = forms.BooleanField(
        required=False, label="Repeat every week",
        help_text="The same span each week, e.g. Friday 12:00 to Monday 06:00.",
    )  # fmt: skip

    def clean_name(self) -> str:
        return checked_text(self.cleaned_data["name"], field="name", max_length=200,
                            label="The name")  # fmt: skip

    def clean_reason(self) -> str:
        return checked_text(self.cleaned_data["reason"], field="reason", max_length=2000,
                            label="The reason")  # fmt: skip

    def clean_starts_at(self) -> datetime | None:
        return checked_moment(self.cleaned_data["starts_at"], label="The start")

    def clean_ends_at(self) -> datetime | None:
        return checked_moment(self.cleaned_data["ends_at"], label="The end")


class StepUpdateForm(forms.Form):
    assignee = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
        required=False,
    )
    due_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    evidence_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class FollowUpForm(forms.Form):
    title = forms.CharField(max_length=300)
    owner = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True).order_by("username")
    )
    due_at = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
