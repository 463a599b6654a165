"""Slack and Microsoft Teams incoming webhooks as channel kinds, each sent in its own format
and checked by a local receiver that answers 400 to a body of the wrong shape, as Slack
("invalid_blocks") and Teams do."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comms import services
from comms.models import Audience, AudienceKey, Channel, ChannelKind, Delivery, DeliveryStatus
from tests.comms.conftest import upgrade_context

pytestmark = pytest.mark.django_db


# --- what each service accepts ----------------------------------------------------------------

SLACK_BLOCK_TYPES = {"header", "section", "context", "divider"}
# Slack's mrkdwn: a raw < only opens a link, <http...|label>; & and > only as entities.
_SLACK_LINK = re.compile(r"<https?://[^|>\s]+\|[^>]*>")


def slack_problems(document: object) -> list[str]:
    """What Slack's chat.postMessage / incoming webhook would refuse in `document`."""
    if not isinstance(document, dict):
        return ["not a JSON object"]
    problems = []
    if not isinstance(document.get("text"), str) or not document["text"].strip():
        problems.append("no top-level text (the notification fallback)")
    blocks = document.get("blocks")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
        return problems + ["blocks is not a list of 1 to 50 blocks"]
    for i, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in SLACK_BLOCK_TYPES:
            problems.append(f"block {i}: unknown type {kind!r}")
        elif kind == "header":
            text = block.get("text", {})
            if text.get("type") != "plain_text" or not 0 < len(text.get("text", "")) <= 150:
                problems.append(f"block {i}: a header takes plain_text of 1 to 150 characters")
        elif kind == "section":
            text = block.get("text", {})
            if text.get("type") not in ("mrkdwn", "plain_text"):
                problems.append(f"block {i}: section text type")
            elif not 0 < len(text.get("text", "")) <= 3000:
                problems.append(f"block {i}: section text of 1 to 3000 characters")
            elif "<" in _SLACK_LINK.sub("", text["text"]):
                problems.append(f"block {i}: an unescaped < in mrkdwn")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"block {i}: context takes 1 to 10 elements")
    return problems


TEAMS_ELEMENT_TYPES = {"TextBlock", "FactSet", "ColumnSet", "Container", "Image"}


def teams_problems(document: object) -> list[str]:
    """What a Teams incoming webhook would refuse: a message with one Adaptive Card."""
    if not isinstance(document, dict) or document.get("type") != "message":
        return ['not {"type": "message", ...}']
    attachments = document.get("attachments")
    if not isinstance(attachments, list) or len(attachments) != 1:
        return ["attachments is not a list of one card"]
    attachment = attachments[0]
    problems = []
    if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        problems.append("contentType is not an Adaptive Card")
    card = attachment.get("content") or {}
    if card.get("type") != "AdaptiveCard":
        problems.append("content is not an AdaptiveCard")
    if card.get("version") != "1.4":
        problems.append("the card is not version 1.4")
    if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
        problems.append("no $schema")
    body = card.get("body")
    if not isinstance(body, list) or not body:
        return problems + ["the card has no body"]
    for i, element in enumerate(body):
        if element.get("type") not in TEAMS_ELEMENT_TYPES:
            problems.append(f"body {i}: unknown element {element.get('type')!r}")
        elif element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
            problems.append(f"body {i}: a TextBlock without text")
        elif element["type"] == "FactSet" and not all(
            isinstance(f.get("title"), str) and isinstance(f.get("value"), str)
            for f in element.get("facts", [])
        ):
            problems.append(f"body {i}: facts need a title and a value")
    for action in card.get("actions", []):
        if action.get("type") != "Action.OpenUrl" or not action.get("url", "").startswith("http"):
            problems.append("an action that is not an OpenUrl with a URL")
    return problems


class ShapeReceiver(ThreadingHTTPServer):
    """200 for a body of the right shape, 400 with the problems otherwise; keeps both."""

    def __init__(self, check: Callable[[object], list[str]]) -> None:
        super().__init__(("127.0.0.1", 0), _ShapeHandler)
        self.check = check
        self.accepted: list[dict] = []
        self.refused: list[list[str]] = []
        self.content_types: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/webhook"


class _ShapeHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        server: ShapeReceiver = self.server  # type: ignore[assignment]
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server.content_types.append(self.headers.get("Content-Type", ""))
        try:
            document = json.loads(raw)
        except ValueError:
            problems = ["not JSON"]
        else:
            problems = server.check(document)
        if problems:
            server.refused.append(problems)
            self.send_response(400)
            self.end_headers()
            self.wfile.write("; ".join(problems).encode())
            return
        server.accepted.append(document)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receive():
    servers = []

    def start(check: Callable[[object], list[str]]) -> ShapeReceiver:
        server = ShapeReceiver(check)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        servers.append((server, thread))
        return server

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def enqueued(monkeypatch):
    from comms import tasks

    ids: list[int] = []
    monkeypatch.setattr(tasks.delivery_send_task, "delay", ids.append)
    return ids


def _send_through(kind: str, url: str, upgrade, manager, **context) -> Delivery:
    channel = services.channel_save(
        channel=None,
        data={"audience": AudienceKey.INTERNAL, "name": f"Team {kind}", "kind": kind, "url": url},
        by=manager,
    )
    draft = services.message_draft_create(
        upgrade_id=upgrade.pk, template_key="progress",
        context=upgrade_context(upgrade) | context, by=None, environment_key="staging",
    )  # fmt: skip
    draft.audiences.set(Audience.objects.filter(key=AudienceKey.INTERNAL))
    services.message_send(message=draft, by=manager)
    delivery = Delivery.objects.get(message=draft, channel=channel)
    services.delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    return delivery


# A body to test the formats' limits and escapes: markup, an ampersand, and more than a
# Slack section holds.
AWKWARD_ISSUES = "Cache <b>warm-up</b> & retries > 3. " + "Slow page. " * 400


def test_slack_channel__message__block_kit_payload_accepted_by_the_receiver(
    seeded, make_upgrade, manager, receive, enqueued
):
    slack = receive(slack_problems)

    delivery = _send_through(ChannelKind.SLACK, slack.url, make_upgrade(), manager,
                             issues=AWKWARD_ISSUES)  # fmt: skip

    assert slack.refused == [] and delivery.status == DeliveryStatus.SENT, delivery.last_error
    (document,) = slack.accepted
    assert document["text"] == delivery.message.subject
    assert document["blocks"][0]["text"]["text"] == delivery.message.subject
    sections = [b["text"]["text"] for b in document["blocks"] if b["type"] == "section"]
    assert len(sections) >= 2  # the long body split over sections
    assert "Cache &lt;b&gt;warm-up&lt;/b&gt; &amp; retries &gt; 3." in "".join(sections)
    context = document["blocks"][-1]["elements"][0]["text"]
    assert context.startswith(f"<{delivery.message.upgrade_url}|")
    assert slack.content_types == ["application/json; charset=utf-8"]


def test_teams_channel__message__adaptive_card_accepted_by_the_receiver(
    seeded, make_upgrade, manager, receive, enqueued
):
    teams = receive(teams_problems)

    delivery = _send_through(ChannelKind.TEAMS, teams.url, make_upgrade(), manager,
                             issues=AWKWARD_ISSUES)  # fmt: skip

    assert teams.refused == [] and delivery.status == DeliveryStatus.SENT, delivery.last_error
    (document,) = teams.accepted
    card = document["attachments"][0]["content"]
    texts = [e["text"] for e in card["body"] if e["type"] == "TextBlock"]
    assert texts[0] == delivery.message.subject
    assert "Current Status: In Progress" in texts
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the upgrade", "url": delivery.message.upgrade_url}
    ]


@pytest.mark.parametrize(
    ("kind", "check"), [(ChannelKind.SLACK, teams_problems), (ChannelKind.TEAMS, slack_problems)]
)
def test_chat_receivers__the_other_service_format__refused_and_recorded(
    seeded, make_upgrade, manager, receive, enqueued, kind, check, settings
):
    # The receivers do check: a Slack body sent to a Teams hook (and the reverse) is refused,
    # and the delivery records why
    settings.COMMS_DELIVERY_MAX_ATTEMPTS = 1
    receiver = receive(check)

    delivery = _send_through(kind, receiver.url, make_upgrade(), manager)

    assert receiver.refused and delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error.startswith("HTTP 400")


# --- the channel form -------------------------------------------------------------------------

CHAT_FORM = {"name": "Ops chat", "audience": "internal", "enabled": "yes"}


def test_channel_form__new__offers_slack_and_teams(seeded, manager_client):
    page = manager_client.get("/comms/channels/new").content.decode()

    assert 'value="slack"' in page and "Slack incoming webhook" in page
    assert 'value="teams"' in page and "Microsoft Teams incoming webhook" in page


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"kind": "slack", "url": ""}, "A Slack incoming webhook channel needs the URL"),
        ({"kind": "slack", "url": "hooks.slack.com/services/T0"},
         "is not a valid http:// or https:// URL for the Slack incoming webhook"),
        ({"kind": "teams", "url": ""}, "A Microsoft Teams incoming webhook channel needs the URL"),
        ({"kind": "teams", "url": "https://example.webhook.office.com/x", "to_subscribers": "yes"},
         "only an email channel can mail the status page subscribers"),
    ],
)  # fmt: skip
def test_channel_form__chat_kind_with_a_problem__400_naming_it_and_nothing_saved(
    seeded, manager_client, form, says
):
    response = manager_client.post("/comms/channels/new", CHAT_FORM | form)

    assert response.status_code == 400
    assert says in response.content.decode().replace("&#x27;", "'")
    assert not Channel.objects.filter(name="Ops chat").exists()


@pytest.mark.parametrize("kind", ["slack", "teams"])
def test_channel_form__chat_kind_with_its_url__saved_and_listed(seeded, manager_client, kind):
    url = "https://hooks.slack.com/services/T0/B0/x" if kind == "slack" else (
        "https://example.webhook.office.com/webhookb2/x"
    )  # fmt: skip

    response = manager_client.post("/comms/channels/new", CHAT_FORM | {"kind": kind, "url": url})

    assert response.status_code == 302
    channel = Channel.objects.get(name="Ops chat")
    assert (channel.kind, channel.url, channel.recipient_list()) == (kind, url, [url])
    listing = manager_client.get("/comms/channels/").content.decode()
    assert channel.get_kind_display() in listing
