from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model

from upgrades.models import EmergencyKind, Environment, Risk, UpgradeType


class UpgradeCreateForm(forms.Form):
    upgrade_type = forms.ChoiceField(label="Type", choices=UpgradeType.choices)
    emergency_kind = forms.ChoiceField(
        label="Emergency kind",
        choices=[("", "—"), *EmergencyKind.choices],
        required=False,
        help_text="Emergencies only.",
    )
    title = forms.CharField(max_length=200)
    environment = forms.ModelChoiceField(queryset=Environment.objects.all(), empty_label=None)
    version_from = forms.CharField(max_length=50, required=False, label="Version from")
    version_to = forms.CharField(max_length=50, required=False, label="Version to")
    flag_key = forms.CharField(
        max_length=100,
        required=False,
        label="Feature flag",
        help_text="Feature flag upgrades only.",
    )
    risk = forms.ChoiceField(
        choices=[("", "Playbook default for the type"), *Risk.choices],
        required=False,
        help_text="The playbook's rating for the type is the floor; you may raise it.",
    )
    window_start = forms.DateTimeField(
        required=False,
        label="Maintenance window start",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    window_minutes = forms.IntegerField(
        required=False, min_value=1, label="Expected duration (minutes)"
    )


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
