"""What a delivery sends, built the same way for the preview and for the wire."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from comms.models import ChannelKind, Message, Subscriber


def site_url(path: str = "") -> str:
    # MYCELIA_BASE_URL: where people reach this panel (and its status page), for links in mails.
    base = getattr(settings, "MYCELIA_BASE_URL", "http://localhost:8000").rstrip("/")
    return f"{base}{path}"


def unsubscribe_url(subscriber: Subscriber | None) -> str:
    token = subscriber.token if subscriber else "TOKEN"
    return site_url(reverse("comms:unsubscribe", args=[token]))


def email_build(*, message: Message, recipient: str, subscriber: Subscriber | None,
                for_subscriber: bool) -> EmailMessage:  # fmt: skip
    body, headers = message.body, {}
    if for_subscriber:
        link = unsubscribe_url(subscriber)
        body = (
            f"{message.body.rstrip()}\n\n--\n"
            f"You receive this because you subscribed to the status page ({site_url('/status/')}).\n"
            f"Unsubscribe: {link}\n"
        )
        headers = {
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    return EmailMessage(
        subject=message.subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[recipient],
        headers=headers,
    )


def webhook_payload(*, message: Message, kind: str = ChannelKind.WEBHOOK) -> dict[str, Any]:
    """The JSON document a webhook channel of this kind receives."""
    if kind == ChannelKind.SLACK:
        return slack_payload(message=message)
    if kind == ChannelKind.TEAMS:
        return teams_payload(message=message)
    # "text" makes Slack, Mattermost and Rocket.Chat incoming webhooks show it as it is.
    return {
        "text": f"*{message.subject}*\n{message.body}",
        "subject": message.subject,
        "body": message.body,
        "message_id": message.pk,
        "template": message.template_key,
        "upgrade_id": message.upgrade_id,
        "upgrade_title": message.upgrade_title,
        "upgrade_url": message.upgrade_url,
        "environment": message.environment_key,
    }


def webhook_body(*, message: Message, kind: str = ChannelKind.WEBHOOK) -> bytes:
    """The exact bytes POSTed (UTF-8 JSON, indented so the preview reads well): the preview
    shows this and the delivery sends this, so what a manager reads is what goes out."""
    document = webhook_payload(message=message, kind=kind)
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8")


# Slack's limits (Block Kit reference): a header's plain text 150 characters, a section's text
# 3000, at most 50 blocks in a message.
_SLACK_HEADER_MAX = 150
_SLACK_SECTION_MAX = 3000
_SLACK_BLOCKS_MAX = 50


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn: &, < and > are control characters and must be sent escaped.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chunks(text: str, size: int) -> list[str]:
    """`text` in pieces of at most `size` characters, split at line ends where possible."""
    pieces: list[str] = []
    while len(text) > size:
        cut = text.rfind("\n", 0, size)
        cut = cut if cut > 0 else size
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n")
    if text.strip():
        pieces.append(text)
    return pieces


def _is_link(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def slack_payload(*, message: Message) -> dict[str, Any]:
    """A Slack incoming webhook message: `text` for notifications and clients without blocks,
    and Block Kit `blocks` (a header, the body in mrkdwn sections, a context line)."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(message.subject, _SLACK_HEADER_MAX)},
        }
    ]
    for piece in _chunks(_slack_escape(message.body.strip()), _SLACK_SECTION_MAX):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": piece}})
    about = _slack_escape(message.upgrade_title or f"Upgrade #{message.upgrade_id}")
    if _is_link(message.upgrade_url):
        about = f"<{message.upgrade_url}|{about}>"
    if message.environment_key:
        about += f" · {_slack_escape(message.environment_key)}"
    blocks = blocks[: _SLACK_BLOCKS_MAX - 1]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": about}]})
    return {"text": message.subject, "blocks": blocks}


def teams_payload(*, message: Message) -> dict[str, Any]:
    """A Microsoft Teams incoming webhook (or Workflows) message: one Adaptive Card 1.4
    attachment with the subject, each line of the body, the environment and a link."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.subject,
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        }
    ]
    for line in message.body.strip().splitlines():
        body.append({"type": "TextBlock", "text": line or " ", "wrap": True, "spacing": "None"})
    facts = [{"title": "Upgrade", "value": message.upgrade_title or f"#{message.upgrade_id}"}]
    if message.environment_key:
        facts.append({"title": "Environment", "value": message.environment_key})
    body.append({"type": "FactSet", "facts": facts})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if _is_link(message.upgrade_url):
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open the upgrade", "url": message.upgrade_url}
        ]
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
