"""Channels: a release manager sets up where each audience's messages go, and switches channels
off and on; stakeholders see them; every change is on the record (who, when, from what to what).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from comms import services
from comms.exceptions import InvalidInput
from comms.models import (
    Audience,
    AudienceKey,
    Channel,
    ChannelKind,
    CommsEvent,
    Delivery,
    DeliveryStatus,
    Message,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
EMAIL_FORM = {
    "audience": "internal", "name": "On-call mail", "kind": "email",
    "recipients": "ops@example.com\noncall@example.com, ops@example.com",
    "environment_keys": "staging, production", "enabled": "yes",
}  # fmt: skip
WEBHOOK_FORM = {
    "audience": "users", "name": "Users chat", "kind": "webhook",
    "url": "https://chat.example.com/hooks/abc", "secret_header_name": "X-Hook-Secret",
    "secret_header_value": "top-s3cret", "environment_keys": "", "enabled": "yes",
}  # fmt: skip


def events(channel: Channel) -> list[CommsEvent]:
    return list(
        CommsEvent.objects.filter(subject_type="channel", subject_id=channel.pk).order_by("id")
    )


@pytest.fixture
def team_chat(seeded) -> Channel:
    return Channel.objects.create(
        audience=Audience.objects.get(key=AudienceKey.INTERNAL), name="Team chat",
        kind=ChannelKind.WEBHOOK, url="https://chat.example.com/hooks/team",
        secret_header_name="X-Hook-Secret", secret_header_value="old-s3cret",
    )  # fmt: skip


# --- creating --------------------------------------------------------------------------------


def test_channel_new__email_channel__created_with_clean_addresses_and_recorded(
    seeded, manager_client, manager
):
    assert manager_client.get("/comms/channels/new").status_code == 200

    response = manager_client.post("/comms/channels/new", EMAIL_FORM)

    channel = Channel.objects.get(name="On-call mail")
    assert response.status_code == 302 and response["Location"].endswith(f"#channel-{channel.pk}")
    assert channel.recipient_list() == ["ops@example.com", "oncall@example.com"]
    assert channel.environment_keys == ["staging", "production"] and channel.enabled
    [event] = events(channel)
    assert (event.kind, event.actor, event.to_state) == ("channel_created", manager, "enabled")


def test_channel_new__webhook_channel__created_with_its_secret_header(seeded, manager_client):
    response = manager_client.post("/comms/channels/new", {**WEBHOOK_FORM, "enabled": ""})

    assert response.status_code == 302
    channel = Channel.objects.get(name="Users chat")
    assert (channel.kind, channel.url, channel.audience.key) == (
        "webhook", "https://chat.example.com/hooks/abc", "users",
    )  # fmt: skip
    assert (channel.secret_header_name, channel.secret_header_value) == (
        "X-Hook-Secret", "top-s3cret",
    )  # fmt: skip
    assert not channel.enabled and events(channel)[0].to_state == "disabled"
    assert "top-s3cret" not in json.dumps(events(channel)[0].detail)


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({**EMAIL_FORM, "name": "  "}, "no name"),
        ({**EMAIL_FORM, "audience": "users", "recipients": ""}, "at least one recipient address"),
        ({**EMAIL_FORM, "recipients": "ops@example.com, not-an-address"}, "not-an-address"),
        ({**EMAIL_FORM, "audience": "nobody"}, "Choose the audience"),
        ({**EMAIL_FORM, "kind": "pigeon"}, "email, webhook, Slack or Microsoft Teams"),
        ({**WEBHOOK_FORM, "url": ""}, "needs the URL"),
        ({**WEBHOOK_FORM, "url": "ftp://files.example.com/in"}, "ftp://files.example.com/in"),
        ({**WEBHOOK_FORM, "secret_header_value": ""}, "the value is missing"),
        ({**WEBHOOK_FORM, "secret_header_name": ""}, "the name is missing"),
        ({**WEBHOOK_FORM, "secret_header_name": "X Secret"}, "not a valid header name"),
    ],
)
def test_channel_new__invalid_input__400_naming_the_problem_and_nothing_written(
    seeded, manager_client, form, problem
):
    before = (Channel.objects.count(), CommsEvent.objects.count())

    response = manager_client.post("/comms/channels/new", form)

    html = response.content.decode()
    assert response.status_code == 400 and problem in html and 'role="alert"' in html
    assert "top-s3cret" not in html  # the page never echoes a secret
    assert (Channel.objects.count(), CommsEvent.objects.count()) == before


def test_channel_save__environment_keys_not_strings__refused(seeded, manager):
    data = {"audience": "internal", "name": "Mail", "kind": "email",
            "recipients": "ops@example.com", "environment_keys": "staging"}  # fmt: skip
    with pytest.raises(InvalidInput, match="list of environment keys"):
        services.channel_save(channel=None, data=data, by=manager)
    with pytest.raises(InvalidInput, match="list of environment keys"):
        services.channel_save(channel=None, data={**data, "environment_keys": [1]}, by=manager)
    assert not Channel.objects.filter(name="Mail").exists()


def test_channel_new__subscribers_channel__needs_no_addresses(seeded, manager_client):
    form = {**EMAIL_FORM, "recipients": "", "to_subscribers": "yes", "audience": "external"}
    assert manager_client.post("/comms/channels/new", form).status_code == 302
    assert Channel.objects.get(name="On-call mail").to_subscribers


# --- editing ---------------------------------------------------------------------------------


def test_channel_edit__form__never_shows_the_secret(team_chat, manager_client):
    html = manager_client.get(f"/comms/channels/{team_chat.pk}/edit").content.decode()
    assert "Team chat" in html and "X-Hook-Secret" in html and "old-s3cret" not in html


def test_channel_edit__new_url_and_secret__records_field_names_not_the_secret(
    team_chat, manager_client, manager
):
    form = {
        "audience": "internal", "name": "Team chat", "kind": "webhook",
        "url": "https://chat.example.com/hooks/new", "secret_header_name": "X-Hook-Secret",
        "secret_header_value": "new-s3cret", "environment_keys": "production",
    }  # fmt: skip

    response = manager_client.post(f"/comms/channels/{team_chat.pk}/edit", form)

    assert response.status_code == 302
    team_chat.refresh_from_db()
    assert (team_chat.url, team_chat.secret_header_value) == (
        "https://chat.example.com/hooks/new", "new-s3cret",
    )  # fmt: skip
    [event] = events(team_chat)
    assert (event.kind, event.actor) == ("channel_updated", manager)
    assert (event.from_state, event.to_state) == ("enabled", "enabled")
    assert event.detail["changed"] == ["url", "environment_keys"]
    assert event.detail["secret_changed"] is True
    recorded = json.dumps(event.detail)
    assert "s3cret" not in recorded and "secret_header_value" not in recorded


def test_channel_edit__blank_secret__keeps_the_stored_one(team_chat, manager_client):
    form = {"audience": "internal", "name": "Team chat (ops)", "kind": "webhook",
            "url": team_chat.url, "secret_header_name": "X-Hook-Secret",
            "secret_header_value": ""}  # fmt: skip

    assert manager_client.post(f"/comms/channels/{team_chat.pk}/edit", form).status_code == 302

    team_chat.refresh_from_db()
    assert (team_chat.name, team_chat.secret_header_value) == ("Team chat (ops)", "old-s3cret")
    assert events(team_chat)[0].detail["changed"] == ["name"]


def test_channel_edit__nothing_changed__nothing_recorded(team_chat, manager):
    data = {"name": "Team chat", "url": team_chat.url}
    services.channel_save(channel=team_chat, data=data, by=manager)
    assert events(team_chat) == []


def test_channel_edit__invalid_address__400_and_channel_unchanged(seeded, manager_client):
    mail = Channel.objects.get(name="Team mail")
    form = {"audience": "internal", "name": "Team mail", "kind": "email",
            "recipients": "ops@example.com\nops@@example"}  # fmt: skip

    response = manager_client.post(f"/comms/channels/{mail.pk}/edit", form)

    assert response.status_code == 400 and "ops@@example" in response.content.decode()
    mail.refresh_from_db()
    assert mail.recipients == "" and events(mail)[-1].kind == "channel_seeded"


# --- on and off ------------------------------------------------------------------------------


def test_channel_disable__htmx__returns_the_row_and_records_from_to(
    team_chat, manager_client, manager
):
    # The browser asked "Disable Team chat?" (hx-confirm) before sending this.
    response = manager_client.post(
        f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "false"}, headers=HTMX
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<tr id="channel-{team_chat.pk}"') and "<html" not in html
    assert "Disabled" in html and ">Enable<" in html
    team_chat.refresh_from_db()
    assert not team_chat.enabled
    [event] = events(team_chat)
    assert (event.kind, event.actor, event.from_state, event.to_state) == (
        "channel_disabled", manager, "enabled", "disabled",
    )  # fmt: skip

    response = manager_client.post(
        f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "true"}, headers=HTMX
    )
    assert response.status_code == 200 and "Enabled" in response.content.decode()
    assert [(e.from_state, e.to_state) for e in events(team_chat)] == [
        ("enabled", "disabled"), ("disabled", "enabled"),
    ]  # fmt: skip


def test_channel_enable__already_enabled__nothing_recorded(team_chat, manager_client, manager):
    response = manager_client.post(
        f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "true"}, headers=HTMX
    )
    assert response.status_code == 200
    assert events(team_chat) == []
    assert services.channel_set_enabled(channel=team_chat, enabled=True, by=manager) is False


def test_channel_disable__plain_post_without_confirm__400_with_the_reason(
    team_chat, manager_client
):
    # Without JavaScript there is no dialog: the "Sure" checkbox must be ticked.
    response = manager_client.post(f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "false"})

    assert response.status_code == 400 and "was not disabled" in response.content.decode()
    team_chat.refresh_from_db()
    assert team_chat.enabled and events(team_chat) == []


def test_channel_disable__plain_post_confirmed__disabled_and_back_to_the_list(
    team_chat, manager_client
):
    response = manager_client.post(
        f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "false", "confirm": "yes"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/comms/channels/#channel-{team_chat.pk}"
    team_chat.refresh_from_db()
    assert not team_chat.enabled and events(team_chat)[0].to_state == "disabled"


def test_channel_enabled__neither_true_nor_false__400(team_chat, manager_client):
    response = manager_client.post(f"/comms/channels/{team_chat.pk}/enabled", {"enabled": "on"})
    assert response.status_code == 400 and "enabled=true" in response.content.decode()


# --- who may do what -------------------------------------------------------------------------


def test_channel_list__manager__grouped_by_audience_with_controls(team_chat, manager_client):
    html = manager_client.get("/comms/channels/").content.decode()
    assert "Internal team" in html and "Team chat" in html and "chat.example.com" in html
    assert "/hooks/team" not in html  # a webhook URL can hold a token: the host only
    assert "Status page subscribers" in html and "New channel" in html
    assert 'hx-confirm="Disable Team chat?' in html and 'name="confirm"' in html


def test_channel_list__stakeholder__reads_without_controls_and_cannot_write(
    team_chat, stakeholder_client
):
    response = stakeholder_client.get("/comms/channels/")

    html = response.content.decode()
    assert response.status_code == 200 and "Team chat" in html
    assert "New channel" not in html and "Disable" not in html and "/edit" not in html
    assert stakeholder_client.get("/comms/channels/new").status_code == 403
    assert stakeholder_client.post("/comms/channels/new", EMAIL_FORM).status_code == 403
    edit = f"/comms/channels/{team_chat.pk}/edit"
    assert stakeholder_client.get(edit).status_code == 403
    assert stakeholder_client.post(edit, {**WEBHOOK_FORM, "name": "x"}).status_code == 403
    toggle = f"/comms/channels/{team_chat.pk}/enabled"
    assert stakeholder_client.post(toggle, {"enabled": "false"}, headers=HTMX).status_code == 403
    team_chat.refresh_from_db()
    assert team_chat.enabled and team_chat.name == "Team chat" and events(team_chat) == []


def test_channel_pages__outsider_and_stranger__turned_away(team_chat, login, outsider, client):
    outsider_client = login(outsider)
    assert outsider_client.get("/comms/channels/").status_code == 403
    assert outsider_client.post(f"/comms/channels/{team_chat.pk}/enabled",
                                {"enabled": "false"}).status_code == 403  # fmt: skip
    assert client.get("/comms/channels/").status_code == 302
    assert client.post("/comms/channels/new", EMAIL_FORM).status_code == 302
    assert not Channel.objects.filter(name="On-call mail").exists()


def test_channel_pages__unknown_id__404(seeded, manager_client):
    assert manager_client.get("/comms/channels/9999/edit").status_code == 404
    assert manager_client.post("/comms/channels/9999/edit", EMAIL_FORM).status_code == 404
    assert manager_client.post("/comms/channels/9999/enabled", {"enabled": "true"}).status_code == (
        404
    )


# --- the list's cost -------------------------------------------------------------------------


def _channels_with_deliveries(count: int) -> None:
    internal = Audience.objects.get(key=AudienceKey.INTERNAL)
    message = Message.objects.create(
        upgrade_id=1, template_key="pre_upgrade", subject="S", body="B"
    )
    for n in range(count):
        channel = Channel.objects.create(audience=internal, name=f"Mail {n}", kind="email",
                                         recipients=f"team{n}@example.com")  # fmt: skip
        Delivery.objects.create(message=message, channel=channel, recipient=f"team{n}@example.com",
                                status=DeliveryStatus.FAILED, last_error="HTTP 500")  # fmt: skip


def test_channel_list__last_delivery__status_shown(seeded, manager_client):
    _channels_with_deliveries(1)
    html = manager_client.get("/comms/channels/").content.decode()
    assert 'class="badge failed">Failed' in html and "None yet" in html


def test_channel_list__query_count__does_not_grow_with_channels(
    seeded, manager_client, django_assert_max_num_queries
):
    _channels_with_deliveries(2)
    manager_client.get("/comms/channels/")  # the session and user warm up alike for both
    with CaptureQueriesContext(connection) as few:
        manager_client.get("/comms/channels/")

    _channels_with_deliveries(10)
    with CaptureQueriesContext(connection) as many:
        assert "Mail 9" in manager_client.get("/comms/channels/").content.decode()

    assert len(many) == len(few)
    with django_assert_max_num_queries(8):
        manager_client.get("/comms/channels/")


def test_channel_writes__no_csrf_token__refused(team_chat, manager):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    toggle = f"/comms/channels/{team_chat.pk}/enabled"
    assert client.post(toggle, {"enabled": "false"}, headers=HTMX).status_code == 403
    assert client.post("/comms/channels/new", EMAIL_FORM).status_code == 403
    team_chat.refresh_from_db()
    assert team_chat.enabled


def test_channel_new__internal_mail_without_addresses__kept_for_reminders(seeded, manager_client):
    # Reminders go through the internal team's mail channel to the one person they are for
    form = {**EMAIL_FORM, "recipients": "", "name": "Reminders"}
    assert manager_client.post("/comms/channels/new", form).status_code == 302
    assert Channel.objects.get(name="Reminders").recipient_list() == []


def test_delivery__channel_switched_off_after_queueing__not_sent_and_kept_for_retry(
    team_chat, manager, mailoutbox
):
    from comms.models import Delivery, DeliveryStatus, Message

    message = Message.objects.create(
        upgrade_id=1, template_key="progress", subject="Upgrade tonight", body="Mycelia 2.4"
    )
    delivery = Delivery.objects.create(
        message=message, channel=team_chat, recipient=team_chat.url, status=DeliveryStatus.QUEUED
    )
    assert services.channel_set_enabled(channel=team_chat, enabled=False, by=manager)

    outcome = services.delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert outcome.status == DeliveryStatus.FAILED
    assert delivery.status == DeliveryStatus.FAILED
    assert "switched off" in delivery.last_error and "Team chat" in delivery.last_error
    assert CommsEvent.objects.filter(
        kind="delivery_failed", subject_id=delivery.pk, to_state=DeliveryStatus.FAILED
    ).exists()
