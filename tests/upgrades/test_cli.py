"""The upgrade lifecycle from the terminal obeys the same table as the page and the API."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tests.conftest import drive


def test_cli__show__lists_next_action_and_refusals_with_reasons(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    out = io.StringIO()
    call_command("upgrade", str(upgrade.pk), "--as", manager.username, stdout=out)
    text = out.getvalue()
    assert "Next: Deploy" in text
    assert "no  begin_monitoring (Nothing has been deployed yet" in text


def test_cli__refused_action__fails_with_the_reason_and_changes_nothing(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    with pytest.raises(CommandError, match="Nothing has been deployed yet.*HTTP 409"):
        call_command("upgrade", str(upgrade.pk), "begin_monitoring", "--as", manager.username)
    upgrade.refresh_from_db()
    assert upgrade.status == "in_progress"


def test_cli__allowed_action__is_carried_out_and_recorded(make_upgrade, manager):
    upgrade = drive(make_upgrade("minor"), manager, to="in_progress")
    out = io.StringIO()
    call_command(
        "upgrade", str(upgrade.pk), "mark_failed", "--as", manager.username,
        "--reason", "build broken", stdout=out,
    )  # fmt: skip
    upgrade.refresh_from_db()
    assert upgrade.status == "failed"
    assert upgrade.events.filter(to_value="failed", actor=manager).exists()


def test_cli__stakeholder__is_refused(make_upgrade, manager, stakeholder):
    upgrade = make_upgrade("minor")
    with pytest.raises(CommandError, match="Only release managers"):
        call_command("upgrade", str(upgrade.pk), "cancel", "--as", stakeholder.username,
                     "--reason", "x")  # fmt: skip
