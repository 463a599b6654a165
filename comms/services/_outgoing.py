"""What a delivery sends, built the same way for the preview and for the wire."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from comms.models import Message, Subscriber


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


def webhook_payload(*, message: Message) -> dict[str, Any]:
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
