"""Status page subscribers: double opt-in by email, one-click unsubscribe."""

from __future__ import annotations

import logging
import re
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from comms.exceptions import InvalidInput, NotFound
from comms.models import Subscriber, new_token
from comms.services._events import event_record
from comms.services._input import text_clean, texts_clean
from comms.services._outgoing import site_url

logger = logging.getLogger(__name__)


def subscriber_subscribe(
    *, email: str, environment_keys: list[str], component_keys: list[str]
) -> Subscriber:
    """Record the wish and mail a confirmation link; nothing is sent to the address until it
    is confirmed. Subscribing again (confirmed or not) updates the choices and, when not yet
    confirmed or unsubscribed, mails a fresh link. The answer never says whether the address
    was known."""
    email = text_clean(email, field="email", max_length=254).strip().lower()
    environment_keys = texts_clean(environment_keys[:50], field="environment", max_length=100)
    component_keys = texts_clean(component_keys[:200], field="component", max_length=200)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput("Enter a valid email address.") from exc
    envs = sorted({k.strip() for k in environment_keys if k and k.strip()})[:50]
    comps = sorted({k.strip() for k in component_keys if k and k.strip()})[:200]
    with transaction.atomic():
        subscriber, created = Subscriber.objects.select_for_update().get_or_create(email=email)
        was = "new" if created else _state(subscriber)
        subscriber.environment_keys, subscriber.component_keys = envs, comps
        if subscriber.unsubscribed_at is not None:
            subscriber.unsubscribed_at, subscriber.confirmed_at = None, None
            subscriber.token = new_token()
        subscriber.save()
        event_record(kind="subscriber_subscribed", subject=subscriber, from_state=was,
                     to_state=_state(subscriber),
                     detail={"environments": envs, "components": comps})  # fmt: skip
        if subscriber.confirmed_at is None:
            transaction.on_commit(partial(_confirmation_enqueue, subscriber.pk))
    return subscriber


def _state(subscriber: Subscriber) -> str:
    if subscriber.unsubscribed_at:
        return "unsubscribed"
    return "confirmed" if subscriber.confirmed_at else "pending"


def _confirmation_enqueue(subscriber_id: int) -> None:
    from comms.tasks import subscriber_confirmation_send_task

    try:
        subscriber_confirmation_send_task.delay(subscriber_id)
    except Exception:
        logger.warning("Confirmation for subscriber %s not queued", subscriber_id, exc_info=True)


def subscriber_confirmation_send(*, subscriber_id: int) -> bool:
    """Mail the confirmation link (outside I/O: called by the task). False when there is
    nothing to confirm any more."""
    subscriber = Subscriber.objects.filter(
        pk=subscriber_id, confirmed_at__isnull=True, unsubscribed_at__isnull=True
    ).first()
    if subscriber is None:
        return False
    link = site_url(reverse("comms:confirm", args=[subscriber.token]))
    EmailMessage(
        subject="Confirm your subscription to the Mycelia status page",
        body=(
            "Someone (we hope you) asked to receive Mycelia's upgrade and maintenance notices "
            "at this address.\n\n"
            f"Confirm with one click: {link}\n\n"
            "If it was not you, ignore this mail: nothing more will be sent.\n"
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
    ).send(fail_silently=False)
    return True


_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,100}")
_NOT_VALID = "This link is not valid (any more). Subscribe again from the status page."


def subscriber_by_token(*, token: str) -> Subscriber:
    """The subscriber a mailed link is for; NotFound for a token that is unknown or could not
    be one (nothing else reaches the database)."""
    subscriber = Subscriber.objects.filter(token=token).first() if _TOKEN.fullmatch(token) else None
    if subscriber is None:
        raise NotFound(_NOT_VALID)
    return subscriber


def _by_token(token: str) -> Subscriber:
    subscriber = (
        Subscriber.objects.select_for_update().filter(token=token).first()
        if _TOKEN.fullmatch(token)
        else None
    )
    if subscriber is None:
        raise NotFound(_NOT_VALID)
    return subscriber


def subscriber_confirm(*, token: str) -> Subscriber:
    with transaction.atomic():
        subscriber = _by_token(token)
        if subscriber.unsubscribed_at is not None:
            raise NotFound("This subscription was cancelled. Subscribe again from the status page.")
        if subscriber.confirmed_at is None:
            subscriber.confirmed_at = timezone.now()
            subscriber.save(update_fields=["confirmed_at"])
            event_record(kind="subscriber_confirmed", subject=subscriber,
                         from_state="pending", to_state="confirmed")  # fmt: skip
    return subscriber


def subscriber_unsubscribe(*, token: str) -> Subscriber:
    """One click, idempotent: a second click finds it already done."""
    with transaction.atomic():
        subscriber = _by_token(token)
        if subscriber.unsubscribed_at is None:
            before = _state(subscriber)
            subscriber.unsubscribed_at = timezone.now()
            subscriber.save(update_fields=["unsubscribed_at"])
            event_record(kind="subscriber_unsubscribed", subject=subscriber,
                         from_state=before, to_state="unsubscribed")  # fmt: skip
    return subscriber
