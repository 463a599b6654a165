from __future__ import annotations

from typing import Any

from django import forms

from flags.evaluation import RuleError, rules_validate
from flags.models import ApiTokenScope, FlagEnvironment, validate_flag_key
from mycelia_ops.validation import BadInput, parse_json_body


class FlagCreateForm(forms.Form):
    key = forms.CharField(
        label="Name",
        max_length=100,
        validators=[validate_flag_key],
        help_text="Lowercase letters, digits, '-', '_' and '.', e.g. new-checkout.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. checkout, beta")


class TargetingForm(forms.Form):
    rollout_percentage = forms.IntegerField(label="Rollout %", min_value=0, max_value=100)
    rules = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        required=False,
        help_text='JSON list, checked in order, e.g. [{"attribute": "country", "operator": "in", '
        '"values": ["nl"], "variant": true}]',
    )
    reason = forms.CharField(required=False, max_length=500)

    def clean_rules(self) -> list[dict[str, Any]]:
        raw = self.cleaned_data["rules"].strip()
        if not raw:
            return []
        try:
            # A list of rules is 3 levels deep: far deeper input is refused before it is parsed
            # into something that could exhaust the stack (a 20,000-deep list, say).
            return rules_validate(parse_json_body(raw, max_depth=8, what="The rules text"))
        except BadInput as exc:
            raise forms.ValidationError(exc.message) from exc
        except RuleError as exc:
            raise forms.ValidationError(str(exc)) from exc


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where it is used, e.g. checkout-service")
    scope = forms.ChoiceField(choices=ApiTokenScope.choices, initial=ApiTokenScope.USER)
    environment = forms.ModelChoiceField(
        queryset=FlagEnvironment.objects.all(),
        required=False,
        to_field_name="key",
        help_text="Only for evaluation tokens.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope, environment = data.get("scope"), data.get("environment")
        if scope == ApiTokenScope.EVALUATION and environment is None:
            self.add_error("environment", "An evaluation token needs an environment.")
        if scope == ApiTokenScope.USER and environment is not None:
            self.add_error(
                "environment", "A user token acts in every environment: leave this empty."
            )
        return data
