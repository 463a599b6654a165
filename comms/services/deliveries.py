"""Deliveries: one message to one recipient through one channel, carried out by a worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from comms.exceptions import Conflict
from comms.models import WEBHOOK_KINDS, Delivery, DeliveryStatus, Message, MessageStatus
from comms.services._events import event_record
from comms.services._outgoing import email_build, webhook_body

logger = logging.getLogger(__name__)


def _enqueue(delivery_ids: list[int]) -> None:
    from comms.tasks import delivery_send_task

    for delivery_id in delivery_ids:
        try:
            delivery_send_task.delay(delivery_id)
        except Exception:  # the broker is down: the sweep sends it later
            logger.warning("Delivery %s not queued: broker unavailable", delivery_id, exc_info=True)


@dataclass(frozen=True)
class DeliveryOutcome:
    status: str  # sent, failed, retry (retry_in seconds), skipped (not queued: taken or done)
    retry_in: int | None = None
    error: str = ""


def _max_attempts() -> int:
    return int(getattr(settings, "COMMS_DELIVERY_MAX_ATTEMPTS", 4))


def _backoff(attempts: int) -> int:
    base = int(getattr(settings, "COMMS_RETRY_BASE_SECONDS", 10))
    return min(base * 2 ** max(attempts - 1, 0), 3600)


def _deliver(delivery: Delivery) -> None:
    """Outside I/O; raises with a readable reason on failure. Never inside a transaction."""
    channel, message = delivery.channel, delivery.message
    if channel.kind in WEBHOOK_KINDS:
        headers = {"User-Agent": "mycelia-ops", "Content-Type": "application/json; charset=utf-8"}
        if channel.secret_header_name:
            headers[channel.secret_header_name] = channel.secret_header_value
        timeout = float(getattr(settings, "COMMS_WEBHOOK_TIMEOUT", 10))
        # The very bytes the message page previews (webhook_body serialises both).
        response = httpx.post(
            delivery.recipient, content=webhook_body(message=message, kind=channel.kind),
            headers=headers, timeout=timeout,
        )  # fmt: skip
        if response.status_code >= 300:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
        return
    mail = email_build(
        message=message, recipient=delivery.recipient, subscriber=delivery.subscriber,
        for_subscriber=channel.to_subscribers,
    )  # fmt: skip
    if not mail.send(fail_silently=False):
        raise RuntimeError("The mail backend accepted no message.")


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"Timed out: {exc}"[:1000]
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"[:1000]
    return (str(exc) or type(exc).__name__)[:1000]


def delivery_attempt(*, delivery_id: int) -> DeliveryOutcome:
    """Claim a queued delivery (queued -> sending), send it, record the result. A delivery
    taken by another worker or already sent is skipped, so a task run twice sends once."""
    with transaction.atomic():
        claimed = Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, claimed_at=timezone.now()
        )
        if not claimed:
            return DeliveryOutcome("skipped")
        delivery = Delivery.objects.select_related("message", "channel", "subscriber").get(
            pk=delivery_id
        )
        event_record(kind="delivery_claimed", subject=delivery, upgrade_id=delivery.message.upgrade_id,
                     from_state=DeliveryStatus.QUEUED, to_state=DeliveryStatus.SENDING,
                     detail={"attempt": delivery.attempts})  # fmt: skip
        if not delivery.channel.enabled:
            # Switched off after this was queued: not sent, kept as failed so it can be retried
            # once the channel is back on.
            error = f"Not sent: the channel “{delivery.channel.name}” was switched off."
            Delivery.objects.filter(pk=delivery_id).update(
                status=DeliveryStatus.FAILED, last_error=error
            )
            event_record(kind="delivery_failed", subject=delivery,
                         upgrade_id=delivery.message.upgrade_id, from_state=DeliveryStatus.SENDING,
                         to_state=DeliveryStatus.FAILED,
                         detail={"attempt": delivery.attempts, "error": error})  # fmt: skip
            message_status_refresh(message_id=delivery.message_id)
            return DeliveryOutcome(DeliveryStatus.FAILED, error=error)
    error = ""
    try:
        _deliver(delivery)
    except Exception as exc:  # any failure is recorded as the reason; nothing is lost
        error = _reason(exc)
    now = timezone.now()
    with transaction.atomic():
        if not error:
            outcome = DeliveryOutcome(DeliveryStatus.SENT)
            fields = {"status": DeliveryStatus.SENT, "sent_at": now, "last_error": ""}
        elif delivery.attempts < _max_attempts():
            wait = _backoff(delivery.attempts)
            outcome = DeliveryOutcome("retry", retry_in=wait, error=error)
            fields = {"status": DeliveryStatus.QUEUED, "last_error": error,
                      "next_attempt_at": now + timedelta(seconds=wait)}  # fmt: skip
        else:
            outcome = DeliveryOutcome(DeliveryStatus.FAILED, error=error)
            fields = {"status": DeliveryStatus.FAILED, "last_error": error}
        Delivery.objects.filter(pk=delivery_id, status=DeliveryStatus.SENDING).update(**fields)
        event_record(kind=f"delivery_{outcome.status}", subject=delivery,
                     upgrade_id=delivery.message.upgrade_id, from_state=DeliveryStatus.SENDING,
                     to_state=fields["status"],
                     detail={"attempt": delivery.attempts, "error": error})  # fmt: skip
        message_status_refresh(message_id=delivery.message_id)
    return outcome


def message_status_refresh(*, message_id: int) -> Message:
    """Sending until every delivery is done; then sent (every delivery went out), partially
    failed or failed. A message with no delivery is never "sent": it stays as it was (a draft,
    discarded, or not sent with its reason)."""
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message_id)
        if message.status in (MessageStatus.DRAFT, MessageStatus.DISCARDED):
            return message
        counts = message.deliveries.aggregate(
            total=Count("id"),
            open=Count("id", filter=Q(status__in=[DeliveryStatus.QUEUED, DeliveryStatus.SENDING])),
            failed=Count("id", filter=Q(status=DeliveryStatus.FAILED)),
        )
        if not counts["total"]:
            return message
        if counts["open"]:
            status = MessageStatus.SENDING
        elif not counts["failed"]:
            status = MessageStatus.SENT
        elif counts["failed"] == counts["total"]:
            status = MessageStatus.FAILED
        else:
            status = MessageStatus.PARTIALLY_FAILED
        if status != message.status:
            before, message.status = message.status, status
            message.save(update_fields=["status"])
            event_record(kind="message_status", subject=message, from_state=before,
                         to_state=status, detail=counts)  # fmt: skip
    return message


def delivery_retry(*, delivery: Delivery, by: Any) -> Delivery:
    """A failed delivery goes back to the queue (failed -> queued) for another round."""
    with transaction.atomic():
        changed = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.QUEUED, attempts=0, next_attempt_at=None
        )
        if not changed:
            raise Conflict("Only a failed delivery can be retried; this one is not failed.")
        delivery.refresh_from_db()
        event_record(kind="delivery_retried", subject=delivery, by=by,
                     upgrade_id=delivery.message.upgrade_id, from_state=DeliveryStatus.FAILED,
                     to_state=DeliveryStatus.QUEUED)  # fmt: skip
        message_status_refresh(message_id=delivery.message_id)
        transaction.on_commit(partial(_enqueue, [delivery.pk]))
    return delivery


def deliveries_sweep() -> dict[str, int]:
    """For beat: deliveries claimed by a worker that died go back to the queue; queued ones
    whose broker message was lost (broker down, retry due long ago) are queued again."""
    now = timezone.now()
    stale = now - timedelta(seconds=int(getattr(settings, "COMMS_DELIVERY_STALE_SECONDS", 300)))
    grace = now - timedelta(seconds=60)
    requeued: list[int] = []
    for delivery in Delivery.objects.filter(status=DeliveryStatus.SENDING, claimed_at__lt=stale):
        with transaction.atomic():
            if Delivery.objects.filter(
                pk=delivery.pk, status=DeliveryStatus.SENDING, claimed_at__lt=stale
            ).update(status=DeliveryStatus.QUEUED):
                event_record(kind="delivery_requeued", subject=delivery,
                             upgrade_id=None, from_state=DeliveryStatus.SENDING,
                             to_state=DeliveryStatus.QUEUED, detail={"why": "stale claim"})  # fmt: skip
                requeued.append(delivery.pk)
    waiting = requeued + list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED)
        .filter(
            Q(next_attempt_at__lt=grace) | Q(next_attempt_at__isnull=True, created_at__lt=grace)
        )
        .exclude(pk__in=requeued)
        .values_list("pk", flat=True)[:500]
    )
    _enqueue(waiting)
    return {"requeued": len(requeued), "nudged": len(waiting)}
