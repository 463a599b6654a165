"""A release manager sets up a channel and switches it off in real Chromium: the form, the
confirmation dialog, and the row changing in place."""

from __future__ import annotations

import pytest

from comms import services
from comms.models import Channel, CommsEvent
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_channels__manager_adds_a_webhook_then_disables_it__row_changes_in_place(new_page, manager):
    services.comms_seed()
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    sign_in(page, manager.username, PASSWORD)

    # Given a new webhook channel for the internal team, made through the form
    page.goto("/comms/channels/new?audience=internal")
    page.fill("input[name=name]", "Ops chat")
    page.check("input[name=kind][value=webhook]")
    page.fill("input[name=url]", "https://chat.example.com/hooks/ops")
    page.get_by_role("button", name="Create channel").click()
    page.wait_for_selector("h1:text-is('Channels')")
    channel = Channel.objects.get(name="Ops chat")
    row = page.locator(f"#channel-{channel.pk}")
    assert "chat.example.com" in row.inner_text() and "Enabled" in row.inner_text()
    page.evaluate("window.__noReload = 'still here'")

    # When the manager disables it and confirms the dialog
    row.get_by_role("button", name="Disable").click()

    # Then the row says so without a reload, and the change is recorded
    page.wait_for_selector(f"#channel-{channel.pk} >> text=Disabled")
    assert dialogs and "Disable Ops chat?" in dialogs[0]
    assert page.evaluate("window.__noReload") == "still here"
    channel.refresh_from_db()
    assert not channel.enabled
    event = CommsEvent.objects.get(kind="channel_disabled", subject_id=channel.pk)
    assert (event.actor, event.from_state, event.to_state) == (manager, "enabled", "disabled")
