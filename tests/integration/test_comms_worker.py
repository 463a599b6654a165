"""The asynchronous send path, for real: a message sent by a manager is delivered by a Celery
worker process through the broker, to a local webhook receiver that fails and then recovers."""

from __future__ import annotations

import threading

import pytest

from comms import services
from comms.models import Audience, AudienceKey, Channel, Delivery, DeliveryStatus, MessageStatus
from tests.comms.conftest import Receiver
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_message_send__worker__webhook_fails_then_recovers_and_is_delivered_once(
    worker_factory,
    receiver,
    manager,
):
    # Given a webhook channel whose receiver is failing (the first retry waits 10 s)
    worker = worker_factory().start()
    services.comms_seed()
    Channel.objects.create(audience=Audience.objects.get(key=AudienceKey.INTERNAL),
                           name="Team chat", kind="webhook", url=receiver.url)  # fmt: skip
    receiver.fail_with = 503
    message = services.message_draft_create(
        upgrade_id=1, template_key="progress", context={"status": "In Progress"}, by=manager,
        environment_key="staging",
    )  # fmt: skip
    message.audiences.set(Audience.objects.filter(key=AudienceKey.INTERNAL))

    # When it is sent
    services.message_send(message=message, by=manager)

    # Then the worker tries, records the failure, and retries until the receiver recovers
    delivery = Delivery.objects.get(message=message)
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).last_error.startswith("HTTP 503"),
             timeout=30)  # fmt: skip
    receiver.fail_with = None
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SENT,
             timeout=30)  # fmt: skip
    delivery.refresh_from_db()
    message.refresh_from_db()
    assert delivery.attempts >= 2 and message.status == MessageStatus.SENT
    assert len(receiver.received) == 1, worker.log()
    assert receiver.received[0]["subject"] == message.subject
