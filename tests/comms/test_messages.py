"""Templates, drafts, sending and deliveries: the services, through locmem mail and a local
webhook receiver."""

from __future__ import annotations

import pytest

from comms import services
from comms.models import (
    Audience,
    AudienceKey,
    Channel,
    CommsEnvironmentSettings,
    CommsEvent,
    Delivery,
    DeliveryStatus,
    Message,
    MessageStatus,
    MessageTemplate,
    StatusUpdate,
    Subscriber,
)
from tests.comms.conftest import sync, upgrade_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    """The delivery ids handed to the broker (the async path itself is tested with a worker)."""
    from comms import tasks

    ids: list[int] = []
    monkeypatch.setattr(tasks.delivery_send_task, "delay", ids.append)
    return ids


def _draft(upgrade, key="pre_upgrade", by=None, **context):
    return services.message_draft_create(
        upgrade_id=upgrade.pk, template_key=key, context=upgrade_context(upgrade) | context,
        by=by, environment_key=upgrade.environment.slug,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key", "subject", "lines"),
    [
        ("pre_upgrade", "Scheduled Upgrade: 1.5.0 - ",
         ["Upgrade Details:", "- Type: Minor version", "- Duration: ", "- Impact: Checkout may be slow",
          "- Rollback Plan: Previous version deployment", "Contact: alice@example.com"]),
        ("progress", "Upgrade Progress: 1.5.0 - In Progress",
         ["Current Status: In Progress", "Progress: Deployment finished; verifying.",
          "ETA: 30 minutes", "Issues: None"]),
        ("post_upgrade", "Upgrade Completed: 1.5.0 - In Progress",
         ["Upgrade Status: In Progress", "Issues: None", "Next Steps: Watch the SLOs for a day.",
          "Contact: alice@example.com"]),
    ],
)  # fmt: skip
def test_seeded_template__rendered_with_a_real_upgrade__every_placeholder_filled(
    seeded, make_upgrade, manager, key, subject, lines
):
    upgrade = make_upgrade("minor")

    message = _draft(upgrade, key=key, by=manager)

    assert message.subject.startswith(subject)
    for line in lines:
        assert line in message.body
    assert "{{" not in message.subject + message.body and "[" not in message.body
    assert message.status == MessageStatus.DRAFT and message.created_by == manager
    template = MessageTemplate.objects.get(key=key)
    assert set(message.audiences.all()) == set(template.audiences.all())
    assert CommsEvent.objects.filter(kind="message_drafted", subject_id=message.pk).exists()


def test_seeded_templates__playbook_texts__placeholders_become_variables(seeded):
    pre = MessageTemplate.objects.get(key="pre_upgrade")
    assert pre.subject_template == "Scheduled Upgrade: {{ version_or_feature }} - {{ date_time }}"
    assert "- Rollback Plan: {{ rollback_plan }}\n\nContact: {{ contact }}" in pre.body_template
    assert (
        MessageTemplate.objects.count() == 7
    )  # the playbook's three per audience, and the reminder


def test_comms_seed__run_twice__creates_nothing_more_and_keeps_edits(seeded):
    MessageTemplate.objects.filter(key="progress").update(subject_template="Edited")

    created = services.comms_seed()

    assert created == {"audiences": 0, "templates": 0, "channels": 0}
    assert MessageTemplate.objects.get(key="progress").subject_template == "Edited"
    assert Channel.objects.filter(to_subscribers=True).count() == 1


def test_message_draft_create__empty_context__placeholders_read_as_a_dash(seeded):
    message = services.message_draft_create(
        upgrade_id=7, template_key="progress", context={}, by=None, environment_key="staging"
    )
    assert message.subject == "Upgrade Progress: — - —"
    assert "ETA: —" in message.body


def test_message_draft_create__unknown_template__invalid_input(seeded):
    with pytest.raises(services.InvalidInput, match="Unknown message template"):
        services.message_draft_create(
            upgrade_id=1, template_key="window_moved", context={}, by=None, environment_key="x"
        )


def test_message_update__sent_message__conflict(seeded, make_upgrade, manager, enqueued):
    message = _draft(make_upgrade())
    services.message_send(message=message, by=manager)
    with pytest.raises(services.Conflict):
        services.message_update(message=message, subject="x", body="y",
                                audience_keys=["internal"], by=manager)  # fmt: skip


def test_message_send__email_and_webhook__one_delivery_per_recipient_enqueued_on_commit(
    internal_channels, make_upgrade, manager, enqueued, django_capture_on_commit_callbacks
):
    message = _draft(make_upgrade(), key="progress")

    with django_capture_on_commit_callbacks(execute=True):
        services.message_send(message=message, by=manager)

    deliveries = list(Delivery.objects.filter(message=message))
    assert sorted(d.recipient for d in deliveries) == sorted(
        ["ops@example.com", "oncall@example.com", internal_channels[1].url]
    )
    assert {d.status for d in deliveries} == {DeliveryStatus.QUEUED}
    assert sorted(enqueued) == sorted(d.pk for d in deliveries)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENDING and message.sent_by == manager


def test_delivery_attempt__email_and_webhook__sent_and_recorded(
    internal_channels, make_upgrade, manager, enqueued, mailoutbox, receiver
):
    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)

    for delivery in Delivery.objects.filter(message=message):
        assert services.delivery_attempt(delivery_id=delivery.pk).status == "sent"

    assert sorted(m.to[0] for m in mailoutbox) == ["oncall@example.com", "ops@example.com"]
    assert mailoutbox[0].subject == message.subject and mailoutbox[0].body == message.body
    assert receiver.received[0]["subject"] == message.subject
    assert receiver.received[0]["upgrade_id"] == message.upgrade_id
    assert receiver.headers_seen[0]["X-Hook-Secret"] == "s3cret"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}
    assert CommsEvent.objects.filter(kind="delivery_sent").count() == 3


def test_delivery_attempt__run_twice__sent_once(
    internal_channels, make_upgrade, manager, enqueued, mailoutbox
):
    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)
    delivery = Delivery.objects.get(message=message, recipient="ops@example.com")

    first = services.delivery_attempt(delivery_id=delivery.pk)
    second = services.delivery_attempt(delivery_id=delivery.pk)

    assert (first.status, second.status) == ("sent", "skipped")
    assert [m.to for m in mailoutbox] == [["ops@example.com"]]
    with pytest.raises(services.Conflict, match="already been sent"):
        services.message_send(message=message, by=manager)
    assert Delivery.objects.filter(message=message).count() == 3


def test_delivery_attempt__receiver_fails_then_recovers__retried_with_backoff_then_sent(
    internal_channels, make_upgrade, manager, enqueued, receiver, settings
):
    settings.COMMS_RETRY_BASE_SECONDS = 10
    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)
    hook = Delivery.objects.get(message=message, channel=internal_channels[1])
    receiver.fail_with = 503

    first = services.delivery_attempt(delivery_id=hook.pk)
    second = services.delivery_attempt(delivery_id=hook.pk)
    hook.refresh_from_db()
    assert (first.status, first.retry_in, second.retry_in) == ("retry", 10, 20)
    assert hook.status == DeliveryStatus.QUEUED and hook.attempts == 2
    assert hook.last_error.startswith("HTTP 503") and hook.next_attempt_at is not None

    receiver.fail_with = None
    third = services.delivery_attempt(delivery_id=hook.pk)

    hook.refresh_from_db()
    assert third.status == "sent" and hook.status == DeliveryStatus.SENT and hook.attempts == 3
    assert hook.last_error == "" and len(receiver.received) == 1


def test_delivery_attempt__fails_every_time__failed_with_reason_and_retry_sends_it(
    internal_channels,
    make_upgrade,
    manager,
    enqueued,
    receiver,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.COMMS_DELIVERY_MAX_ATTEMPTS = 2
    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)
    for delivery in Delivery.objects.exclude(channel=internal_channels[1]):
        services.delivery_attempt(delivery_id=delivery.pk)
    hook = Delivery.objects.get(channel=internal_channels[1])
    receiver.fail_with = 500

    services.delivery_attempt(delivery_id=hook.pk)
    outcome = services.delivery_attempt(delivery_id=hook.pk)

    hook.refresh_from_db()
    message.refresh_from_db()
    assert outcome.status == "failed" and hook.status == DeliveryStatus.FAILED
    assert "HTTP 500: receiver is down" in hook.last_error
    assert message.status == MessageStatus.PARTIALLY_FAILED

    receiver.fail_with = None
    with django_capture_on_commit_callbacks(execute=True):
        services.delivery_retry(delivery=hook, by=manager)
    assert enqueued == [hook.pk]
    assert services.delivery_attempt(delivery_id=hook.pk).status == "sent"
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    with pytest.raises(services.Conflict, match="Only a failed delivery"):
        services.delivery_retry(delivery=hook, by=manager)


def test_delivery_attempt__receiver_unreachable__reason_names_the_connection_error(
    seeded, make_upgrade, manager, enqueued
):
    internal = Audience.objects.get(key=AudienceKey.INTERNAL)
    Channel.objects.create(audience=internal, name="Dead hook", kind="webhook",
                           url="http://127.0.0.1:9/hook")  # fmt: skip
    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)
    delivery = Delivery.objects.get(message=message)

    outcome = services.delivery_attempt(delivery_id=delivery.pk)

    delivery.refresh_from_db()
    assert outcome.status == "retry" and "ConnectError" in delivery.last_error


def test_message_draft_create__environment_auto_sends__sent_without_a_manager(
    internal_channels, make_upgrade, enqueued
):
    upgrade = make_upgrade()
    CommsEnvironmentSettings.objects.create(
        environment_key=upgrade.environment.slug, auto_send=True
    )

    message = _draft(upgrade, key="progress")

    assert message.status == MessageStatus.SENDING and message.sent_by is None
    assert Delivery.objects.filter(message=message).count() == 3


def test_message_send__external_audience__posted_to_the_upgrade_status_stream_and_subscribers(
    seeded, make_upgrade, manager, enqueued, mailoutbox, settings
):
    settings.MYCELIA_BASE_URL = "https://ops.example.com"
    upgrade = make_upgrade()
    sync(upgrade_id=upgrade.pk)
    confirmed = Subscriber.objects.create(email="fan@example.com", confirmed_at="2025-01-01T00:00Z")
    Subscriber.objects.create(email="pending@example.com")
    Subscriber.objects.create(email="elsewhere@example.com", confirmed_at="2025-01-01T00:00Z",
                              environment_keys=["production"])  # fmt: skip
    message = _draft(upgrade)

    services.message_send(message=message, by=manager)

    update = StatusUpdate.objects.get(message=message)
    assert update.body.startswith(message.subject) and update.status == "scheduled"
    delivery = Delivery.objects.get(message=message)
    assert (delivery.recipient, delivery.subscriber) == ("fan@example.com", confirmed)
    services.delivery_attempt(delivery_id=delivery.pk)
    mail = mailoutbox[0]
    link = f"https://ops.example.com/status/unsubscribe/{confirmed.token}"
    assert link in mail.body
    assert mail.extra_headers["List-Unsubscribe"] == f"<{link}>"
    assert mail.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_message_preview__subscribers_and_webhook__shows_exactly_what_goes_out(
    internal_channels, make_upgrade, enqueued
):
    message = _draft(make_upgrade(), key="progress")
    previews = {p["channel"].name: p for p in services.message_preview(message=message)}

    assert previews["Team chat"]["payload"]["body"] == message.body
    assert previews["Team mail"]["body"] == message.body
    assert previews["Team mail"]["recipients"] == ["ops@example.com", "oncall@example.com"]
    assert Message.objects.get(pk=message.pk).status == MessageStatus.DRAFT


def test_deliveries_sweep__claim_left_by_a_dead_worker__queued_again(
    internal_channels, make_upgrade, manager, enqueued
):
    from datetime import timedelta

    from django.utils import timezone

    message = _draft(make_upgrade(), key="progress")
    services.message_send(message=message, by=manager)
    delivery = Delivery.objects.filter(message=message).first()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.SENDING, claimed_at=timezone.now() - timedelta(hours=1)
    )
    Delivery.objects.exclude(pk=delivery.pk).update(created_at=timezone.now() - timedelta(hours=1))

    result = services.deliveries_sweep()

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED and result["requeued"] == 1
    assert set(enqueued) == set(
        Delivery.objects.filter(message=message).values_list("pk", flat=True)
    )
