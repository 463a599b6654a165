"""The pages and endpoints, tried by a release manager, a stakeholder, an outsider and a
stranger."""

from __future__ import annotations

import pytest

from comms import services
from comms.models import CommsEvent, Delivery, DeliveryStatus, MessageStatus, Subscriber
from tests.comms.conftest import sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(seeded):
    return services.message_draft_create(
        upgrade_id=1, template_key="pre_upgrade", by=None, environment_key="staging",
        context={"version_or_feature": "1.5.0", "date_time": "1 Jun 2025 10:00 UTC"},
    )  # fmt: skip


def test_status_page__anyone__shows_upgrades_and_polls_every_5s(client, seeded):
    sync(upgrade_id=1, status="in_progress", phase_title="Deploy", progress_percent=40)
    sync(upgrade_id=2, status="scheduled")
    sync(upgrade_id=3, status="draft", title="Secret draft")

    response = client.get("/status/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Upgrade to 1.5.1" in html and "Deploy" in html and "40%" in html
    assert "Upgrade to 1.5.2" in html and "Secret draft" not in html
    # (static/js/app.js holds polls while the tab is hidden: no eval'd filter under the CSP)
    assert 'hx-trigger="every 5s"' in html


def test_status_page__htmx_poll__only_the_live_partial(client, seeded):
    sync(upgrade_id=1, status="in_progress")
    response = client.get("/status/?part=live", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="live"') and "<html" not in html


@pytest.mark.parametrize("who", ["anonymous", "outsider", "stakeholder"])
def test_status_page__private_setting__viewers_only(request, settings, seeded, who):
    settings.STATUS_PAGE_PUBLIC = False
    client = (
        request.getfixturevalue(f"{who}_client")
        if who != "anonymous"
        else request.getfixturevalue("client")
    )
    expected = {"anonymous": 302, "outsider": 403, "stakeholder": 200}[who]
    assert client.get("/status/").status_code == expected
    assert client.get("/status/api/v2/summary.json").status_code == expected


def test_status_api__public__json_with_cors(client, seeded):
    response = client.get("/status/api/v2/status.json")
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == "*"
    assert response.json()["status"]["indicator"] == "none"
    summary = client.get("/status/api/v2/summary.json").json()
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}


def test_status_api__query_count__pinned(client, seeded, django_assert_max_num_queries):
    for upgrade_id in range(1, 6):
        sync(upgrade_id=upgrade_id, status="in_progress")
    with django_assert_max_num_queries(12):
        client.get("/status/api/v2/summary.json")


def test_status_feed__updates__atom_entries(client, seeded):
    sync(upgrade_id=1, status="scheduled")
    sync(upgrade_id=1, status="in_progress")
    response = client.get("/status/feed.atom")
    body = response.content.decode()
    assert response.status_code == 200 and response["Content-Type"].startswith(
        "application/atom+xml"
    )
    assert body.count("<entry>") == 2 and "The upgrade is in progress." in body


def test_subscribe__confirm__unsubscribe_one_click(client, seeded, mailoutbox,
                                                 django_capture_on_commit_callbacks, monkeypatch):  # fmt: skip
    from comms import tasks

    monkeypatch.setattr(tasks.subscriber_confirmation_send_task, "delay",
                        lambda pk: services.subscriber_confirmation_send(subscriber_id=pk))  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/status/subscribe", {"email": "Fan@Example.com", "environment": ["staging"]}
        )
    assert response.status_code == 302
    subscriber = Subscriber.objects.get(email="fan@example.com")
    assert subscriber.confirmed_at is None and subscriber.environment_keys == ["staging"]
    assert f"/status/confirm/{subscriber.token}" in mailoutbox[0].body

    assert client.get(f"/status/confirm/{subscriber.token}").status_code == 200
    subscriber.refresh_from_db()
    assert subscriber.is_active

    # RFC 8058: the mail client POSTs without a CSRF token
    csrf_client = type(client)(enforce_csrf_checks=True)
    response = csrf_client.post(f"/status/unsubscribe/{subscriber.token}",
                                {"List-Unsubscribe": "One-Click"})  # fmt: skip
    assert response.status_code == 200
    subscriber.refresh_from_db()
    assert not subscriber.is_active
    assert client.get(f"/status/unsubscribe/{subscriber.token}").status_code == 200


@pytest.fixture
def confirmed_subscriber(seeded):
    subscriber = services.subscriber_subscribe(
        email="fan@example.com", environment_keys=[], component_keys=[]
    )
    return services.subscriber_confirm(token=subscriber.token)


def test_unsubscribe__get_as_a_mail_scanner_would__asks_and_changes_nothing(
    client, confirmed_subscriber
):
    # When a link scanner follows the unsubscribe link in a mail
    response = client.get(f"/status/unsubscribe/{confirmed_subscriber.token}")

    # Then the page asks, with a button that POSTs back to the same link, and nothing changed
    html = response.content.decode()
    assert response.status_code == 200 and "Unsubscribe?" in html
    assert f'<form method="post" action="/status/unsubscribe/{confirmed_subscriber.token}">' in html
    confirmed_subscriber.refresh_from_db()
    assert confirmed_subscriber.is_active
    assert not CommsEvent.objects.filter(kind="subscriber_unsubscribed").exists()


def test_unsubscribe__post_from_the_page__unsubscribed_and_recorded(client, confirmed_subscriber):
    response = client.post(f"/status/unsubscribe/{confirmed_subscriber.token}")

    assert response.status_code == 200 and "Unsubscribed" in response.content.decode()
    confirmed_subscriber.refresh_from_db()
    assert not confirmed_subscriber.is_active
    assert CommsEvent.objects.filter(kind="subscriber_unsubscribed").count() == 1
    # A later GET says it is done, and offers no button
    html = client.get(f"/status/unsubscribe/{confirmed_subscriber.token}").content.decode()
    assert "Unsubscribed" in html and "<form" not in html.split("<main")[1]


def test_unsubscribe__rfc8058_one_click_post_without_csrf__unsubscribed(
    client, confirmed_subscriber
):
    csrf_client = type(client)(enforce_csrf_checks=True)
    response = csrf_client.post(
        f"/status/unsubscribe/{confirmed_subscriber.token}",
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    confirmed_subscriber.refresh_from_db()
    assert not confirmed_subscriber.is_active


def test_unsubscribe__unknown_token__404_on_get_and_post(client, seeded):
    assert client.get("/status/unsubscribe/not-a-token").status_code == 404
    assert client.post("/status/unsubscribe/not-a-token").status_code == 404


def test_subscribe__bad_email_or_token__400_and_404(client, seeded):
    assert client.post("/status/subscribe", {"email": "nope"}).status_code == 400
    assert client.get("/status/confirm/not-a-token").status_code == 404
    assert client.get("/status/unsubscribe/not-a-token").status_code == 404


def test_message_list__roles__readers_read_outsiders_turned_away(
    draft, login, manager, stakeholder, outsider, client, django_assert_max_num_queries
):
    manager_client, stakeholder_client = login(manager), login(stakeholder)
    outsider_client = login(outsider)
    with django_assert_max_num_queries(10):
        assert draft.subject in manager_client.get("/comms/messages/").content.decode()
    assert stakeholder_client.get("/comms/messages/").status_code == 200
    assert outsider_client.get("/comms/messages/").status_code == 403
    assert client.get("/comms/messages/").status_code == 302


def test_message_detail__stakeholder__reads_without_edit_or_send(draft, stakeholder_client):
    html = stakeholder_client.get(f"/comms/messages/{draft.pk}/").content.decode()
    assert draft.subject in html and "Save draft" not in html and ">Send<" not in html
    assert (
        stakeholder_client.post(f"/comms/messages/{draft.pk}/send", {"confirm": "yes"}).status_code
        == 403
    )
    assert stakeholder_client.get("/comms/messages/999/").status_code == 404


def test_message_edit_and_send__manager__saved_then_sent_with_confirmation(
    draft, manager_client, manager, internal_channels
):
    response = manager_client.post(f"/comms/messages/{draft.pk}/edit", {
        "subject": "Scheduled Upgrade: 1.5.0 - tomorrow", "body": "Edited body",
        "audience": ["internal"],
    })  # fmt: skip
    assert response.status_code == 302
    draft.refresh_from_db()
    assert (draft.body, draft.edited_by) == ("Edited body", manager)
    preview = manager_client.get(f"/comms/messages/{draft.pk}/").content.decode()
    assert "Edited body" in preview and "ops@example.com" in preview

    asked = manager_client.post(f"/comms/messages/{draft.pk}/send")
    assert asked.status_code == 200 and "Send this message?" in asked.content.decode()
    draft.refresh_from_db()
    assert draft.status == MessageStatus.DRAFT

    assert (
        manager_client.post(f"/comms/messages/{draft.pk}/send", {"confirm": "yes"}).status_code
        == 302
    )
    draft.refresh_from_db()
    assert draft.status == MessageStatus.SENDING and draft.deliveries.count() == 3
    again = manager_client.post(f"/comms/messages/{draft.pk}/send", {"confirm": "yes"})
    assert again.status_code == 409 and "already been sent" in again.content.decode()


def test_message_edit__empty_subject__400_with_message(draft, manager_client):
    response = manager_client.post(f"/comms/messages/{draft.pk}/edit",
                                   {"subject": " ", "body": "x", "audience": ["internal"]})  # fmt: skip
    assert response.status_code == 400 and "subject is empty" in response.content.decode()


def test_delivery_retry__failed_delivery__queued_again_from_the_page(
    draft, login, manager, internal_channels, stakeholder
):
    manager_client, stakeholder_client = login(manager), login(stakeholder)
    draft.audiences.set(draft.audiences.filter(key="internal"))
    services.message_send(message=draft, by=manager)
    delivery = Delivery.objects.filter(message=draft).first()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.FAILED, last_error="HTTP 500"
    )

    assert stakeholder_client.post(f"/comms/deliveries/{delivery.pk}/retry").status_code == 403
    response = manager_client.post(
        f"/comms/deliveries/{delivery.pk}/retry", headers={"HX-Request": "true"}
    )

    assert response.status_code == 200 and 'id="deliveries"' in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.QUEUED
    assert manager_client.post(f"/comms/deliveries/{delivery.pk}/retry").status_code == 409
    assert manager_client.post("/comms/deliveries/9999/retry").status_code == 404


def test_incident_resolve__manager_only(seeded, login, manager, stakeholder):
    manager_client, stakeholder_client = login(manager), login(stakeholder)
    sync(upgrade_id=1, status="in_progress")
    sync(upgrade_id=1, status="rolled_back")
    # A rollback drafts the incident; a release manager publishes it before it can be resolved
    draft = services.status_incident_draft(upgrade_id=1, lifecycle="rolled_back")
    services.status_incident_publish(
        incident_id=draft.pk, name=draft.name, body=draft.body, impact=draft.impact,
        status=draft.status, by=manager,
    )  # fmt: skip
    assert stakeholder_client.post("/status/incidents/1/resolve").status_code == 403
    assert manager_client.post("/status/incidents/1/resolve", {"body": "Fixed"}).status_code == 302
    assert manager_client.post("/status/incidents/1/resolve").status_code == 409
