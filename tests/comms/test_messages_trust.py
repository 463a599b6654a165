"""Messages people can trust (issue 12, finding 4): "Sent" only when a delivery went out,
drafts that can be discarded with a reason, a preview that is the exact JSON sent, and an
Atom feed whose content is HTML."""

from __future__ import annotations

import html
import re
import threading
import xml.etree.ElementTree as ET
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from comms import services
from comms.models import (
    Audience,
    AudienceKey,
    Channel,
    ChannelKind,
    CommsEvent,
    Delivery,
    Message,
    MessageStatus,
    StatusMaintenance,
    StatusUpdate,
    Subscriber,
)
from tests.comms.conftest import upgrade_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued(monkeypatch):
    from comms import tasks

    ids: list[int] = []
    monkeypatch.setattr(tasks.delivery_send_task, "delay", ids.append)
    return ids


def _draft(upgrade, key="pre_upgrade", **context):
    return services.message_draft_create(
        upgrade_id=upgrade.pk, template_key=key, context=upgrade_context(upgrade) | context,
        by=None, environment_key=upgrade.environment.slug,
    )  # fmt: skip


# --- "Sent" only when a delivery went out -----------------------------------------------------


def test_notice_started__no_subscriber_channel_reaches_anyone__not_sent_never_sent(
    seeded, enqueued
):
    # Given the seeded subscribers' channel and not one confirmed subscriber
    # When the automatic "Maintenance started" notice goes out
    message = services.notice_send(
        template_key="window_started", upgrade_id=7, environment_key="production",
        context={"upgrade_title": "Upgrade to 1.5.0", "environment": "Production"},
        upgrade_title="Upgrade to 1.5.0", upgrade_url="",
    )  # fmt: skip

    # Then it says it reached no one, and why; it does not claim "Sent"
    message.refresh_from_db()
    assert message.status == MessageStatus.NOT_SENT
    assert message.deliveries.count() == 0
    assert "no confirmed subscriber" in message.not_sent_reason
    assert CommsEvent.objects.filter(kind="message_not_sent", subject_id=message.pk).exists()
    # and nothing later turns it into "Sent"
    services.message_status_refresh(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.NOT_SENT


def test_notice_ended__no_subscribers_channel_at_all__not_sent_no_channel_for_this_audience(
    seeded, enqueued
):
    Channel.objects.filter(to_subscribers=True).update(enabled=False)

    message = services.notice_send(
        template_key="window_ended", upgrade_id=7, environment_key="production",
        context={"upgrade_title": "Upgrade to 1.5.0", "status": "Completed"},
        upgrade_title="Upgrade to 1.5.0", upgrade_url="",
    )  # fmt: skip

    message.refresh_from_db()
    assert message.status == MessageStatus.NOT_SENT
    assert message.not_sent_reason.startswith("No channel for this audience")


def test_notice_started__a_confirmed_subscriber__sending_then_sent_once_delivered(
    seeded, enqueued, mailoutbox
):
    Subscriber.objects.create(email="reader@example.com", confirmed_at=timezone.now())

    message = services.notice_send(
        template_key="window_started", upgrade_id=7, environment_key="production",
        context={"upgrade_title": "Upgrade to 1.5.0"}, upgrade_title="Upgrade to 1.5.0",
        upgrade_url="",
    )  # fmt: skip

    assert message.status == MessageStatus.SENDING
    services.delivery_attempt(delivery_id=message.deliveries.get().pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT and len(mailoutbox) == 1


def test_message_send__audience_without_channel__not_sent_with_a_link_to_add_one(
    seeded, make_upgrade, manager, manager_client, enqueued
):
    # Given a draft for the users only, and no channel for users
    draft = _draft(make_upgrade())
    draft.audiences.set(Audience.objects.filter(key=AudienceKey.USERS))

    # When a manager sends it
    message = services.message_send(message=draft, by=manager)

    # Then it is "Not sent: no channel for this audience", and the page links to add one
    assert message.status == MessageStatus.NOT_SENT
    assert message.not_sent_reason.startswith("No channel for this audience (Users)")
    page = manager_client.get(message.get_absolute_url()).content.decode()
    assert "Not sent" in page and "no channel for this audience" in page
    assert "/comms/channels/new?audience=users" in page
    listing = manager_client.get("/comms/messages/").content.decode()
    assert "Not sent: No channel for this audience" in listing
    assert 'href="/comms/channels/"' in listing


def test_message_send__channel_with_no_addresses__not_sent_naming_the_channel(
    seeded, make_upgrade, manager, enqueued
):
    # The seeded "Team mail" channel of the internal team starts with no addresses
    draft = _draft(make_upgrade())
    draft.audiences.set(Audience.objects.filter(key=AudienceKey.INTERNAL))

    message = services.message_send(message=draft, by=manager)

    assert message.status == MessageStatus.NOT_SENT
    assert "“Team mail”: no addresses" in message.not_sent_reason


# --- discarding drafts ------------------------------------------------------------------------


def test_message_discard__with_a_reason__kept_struck_through_and_never_sent(
    seeded, make_upgrade, manager, manager_client, enqueued
):
    draft = _draft(make_upgrade())

    response = manager_client.post(
        f"/comms/messages/{draft.pk}/discard", {"reason": "Announced at the all-hands instead"}
    )

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == MessageStatus.DISCARDED
    assert (draft.discard_reason, draft.discarded_by) == (
        "Announced at the all-hands instead",
        manager,
    )
    event = CommsEvent.objects.get(kind="message_discarded", subject_id=draft.pk)
    assert (event.actor, event.from_state, event.to_state) == (manager, "draft", "discarded")
    listing = manager_client.get("/comms/messages/").content.decode()
    assert f"<del>{html.escape(draft.subject)}</del>" in listing
    assert "Announced at the all-hands instead" in listing
    with pytest.raises(services.Conflict, match="discarded"):
        services.message_send(message=draft, by=manager)
    assert not Delivery.objects.exists() and enqueued == []


def test_message_discard__no_reason_or_not_a_manager__refused_nothing_changed(
    seeded, make_upgrade, login, manager, stakeholder, outsider
):
    draft = _draft(make_upgrade())
    url = f"/comms/messages/{draft.pk}/discard"

    response = login(manager).post(url, {"reason": "  "})

    assert response.status_code == 400
    assert "Say why this draft is discarded" in response.content.decode()
    assert login(stakeholder).post(url, {"reason": "no"}).status_code == 403
    assert login(outsider).post(url, {"reason": "no"}).status_code == 403
    draft.refresh_from_db()
    assert draft.status == MessageStatus.DRAFT


def test_message_discard__sent_message__conflict(seeded, make_upgrade, manager, enqueued):
    message = services.message_send(message=_draft(make_upgrade()), by=manager)

    with pytest.raises(services.Conflict, match="only a draft can be discarded"):
        services.message_discard(message=message, reason="too late", by=manager)


def test_message_draft_create__newer_draft_for_the_same_upgrade__older_ones_discarded_naming_it(
    seeded, make_upgrade
):
    upgrade = make_upgrade()
    scheduled = _draft(upgrade, key="pre_upgrade")
    other_upgrade = _draft(make_upgrade(), key="pre_upgrade")

    started = services.message_draft_create(
        upgrade_id=upgrade.pk, template_key="progress", context=upgrade_context(upgrade),
        by=None, environment_key="staging", moment="started",
    )  # fmt: skip

    scheduled.refresh_from_db()
    other_upgrade.refresh_from_db()
    assert scheduled.status == MessageStatus.DISCARDED
    assert f"#{started.pk}" in scheduled.discard_reason
    assert other_upgrade.status == MessageStatus.DRAFT
    assert started.status == MessageStatus.DRAFT and started.moment == "started"


# --- the preview is what is sent --------------------------------------------------------------


class RawReceiver(ThreadingHTTPServer):
    """Keeps the bytes of every POST as they arrived."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RawHandler)
        self.bodies: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _RawHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        server: RawReceiver = self.server  # type: ignore[assignment]
        server.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def raw_receiver():
    server = RawReceiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize("kind", [ChannelKind.WEBHOOK, ChannelKind.SLACK, ChannelKind.TEAMS])
def test_message_page__webhook_preview__the_exact_json_body_that_is_sent(
    seeded, make_upgrade, manager, manager_client, raw_receiver, enqueued, kind
):
    # Given a chat channel for the internal team and a draft with quotes and an apostrophe
    Channel.objects.create(
        audience=Audience.objects.get(key=AudienceKey.INTERNAL), name="Team chat", kind=kind,
        url=raw_receiver.url,
    )  # fmt: skip
    draft = _draft(make_upgrade(), key="progress", issues='The "checkout" page\'s <b>cache</b>')
    draft.audiences.set(Audience.objects.filter(key=AudienceKey.INTERNAL))

    # When the manager reads the preview, then sends it
    page = manager_client.get(draft.get_absolute_url()).content.decode()
    (shown,) = re.findall(r'<pre class="log" data-role="webhook-body"[^>]*>(.*?)</pre>', page, re.S)
    services.message_send(message=draft, by=manager)
    services.delivery_attempt(delivery_id=Delivery.objects.get(message=draft).pk)

    # Then what was shown is, byte for byte, what the receiver got: JSON, not a Python repr
    assert raw_receiver.bodies == [html.unescape(shown).encode("utf-8")]
    assert "'subject':" not in html.unescape(shown)


# --- the Atom feed carries HTML ---------------------------------------------------------------


def test_status_feed__update_with_lines_and_markup__atom_summary_is_escaped_html(client, seeded):
    # Given a public update whose text has paragraphs, a line break and characters HTML
    # gives meaning to
    maintenance = StatusMaintenance.objects.create(
        upgrade_id=3, title="Upgrade to 1.5.0", environment_key="production",
        environment_name="Production", lifecycle="in_progress", status="in_progress",
        is_public=True, window_start=timezone.now() - timedelta(minutes=5),
        window_end=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    StatusUpdate.objects.create(
        maintenance=maintenance, status="in_progress",
        body="Upgrade Progress: 1.5.0 - In Progress\n\nCurrent Status: In Progress\n"
             "Issues: <script>alert(1)</script> & more",
    )  # fmt: skip

    response = client.get("/status/feed.atom")

    # Then an XML parser reads the feed, the summary is type="html", and its text is HTML:
    # paragraphs and a line break, the update's own markup escaped as text
    assert response.status_code == 200
    root = ET.fromstring(response.content)
    ns = {"atom": "http://www.w3.org/2005/Atom"}
    (summary,) = root.findall("atom:entry/atom:summary", ns)
    assert summary.get("type") == "html"
    content = summary.text
    assert content.count("<p>") == 2 and "<br>" in content
    assert "Current Status: In Progress<br>Issues:" in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in content
    assert "<script>" not in content
    assert "\n" not in content.strip().replace("</p>\n\n<p>", "</p><p>")


# --- the preview on a fresh `make run` --------------------------------------------------------


def test_message_page__fresh_demo_seed__preview_shows_every_audience_channel(
    tmp_path, settings, manager, login
):
    import io

    from django.core.management import call_command

    from tests.conftest import drive
    from upgrades.models import Environment
    from upgrades.services import upgrade_create

    # Given what `make run` does on a fresh data folder: seed the playbook and the demo
    settings.DATA_DIR = tmp_path
    call_command("seed", "--demo", "--demo-url=http://127.0.0.1:9", stdout=io.StringIO())
    production = Environment.objects.get(slug="production")
    upgrade = upgrade_create(
        upgrade_type="minor", title="Upgrade to 1.5.0", environment=production, owner=manager,
        by=manager, version_from="1.4.2", version_to="1.5.0", window_start=timezone.now(),
    )  # fmt: skip

    # When the upgrade is scheduled and a manager opens its draft
    drive(upgrade, manager, to="scheduled")
    draft = Message.objects.get(upgrade_id=upgrade.pk, moment="scheduled")
    page = login(manager).get(draft.get_absolute_url()).content.decode()

    # Then each of the three audiences has a channel in the preview, and it shows the text
    assert 'data-role="no-channel"' not in page
    assert "release-team@example.com" in page and "mycelia-users@example.com" in page
    assert "Status page subscribers" in page and "Unsubscribe: " in page
    assert page.count(html.escape(draft.body.splitlines()[0])) >= 3


def test_seed_demo__run_again_after_a_manager_edit__channels_neither_duplicated_nor_reset(
    tmp_path, settings, manager
):
    import io

    from django.core.management import call_command

    settings.DATA_DIR = tmp_path
    out = io.StringIO()
    call_command("seed", "--demo", "--demo-url=http://127.0.0.1:9", stdout=out)
    assert "Demo message channels: Demo: release team inbox, Demo: users announcement list" in (
        out.getvalue()
    )
    inbox = Channel.objects.get(name="Demo: release team inbox")
    services.channel_save(channel=inbox, data={"recipients": "me@example.com"}, by=manager)
    count = Channel.objects.count()

    call_command("seed", "--demo", "--demo-url=http://127.0.0.1:9", stdout=io.StringIO())

    inbox.refresh_from_db()
    assert Channel.objects.count() == count
    assert inbox.recipient_list() == ["me@example.com"]
    assert {c.audience.key for c in Channel.objects.select_related("audience")} == {
        "internal", "external", "users"
    }  # fmt: skip
