"""Text that no database, mail header or page can carry (a lone surrogate, a control character)
in the comms forms and services: 400 naming the field, nothing written, never a 500.

A browser's form post cannot carry a lone surrogate (Django decodes form bodies with
replacement), so the pages are tried with control characters and the services, which other
doors call with decoded JSON, with both."""

from __future__ import annotations

import pytest

from comms import services
from comms.exceptions import InvalidInput
from comms.models import Channel, CommsEvent, Subscriber

pytestmark = pytest.mark.django_db

SURROGATE = "\ud800"
NUL = "\x00"


@pytest.fixture
def draft(seeded):
    return services.message_draft_create(
        upgrade_id=1, template_key="pre_upgrade", by=None, environment_key="staging",
        context={"version_or_feature": "1.5.0"},
    )  # fmt: skip


EMAIL = {"audience": "internal", "name": "On-call", "kind": "email",
         "recipients": "ops@example.com", "environment_keys": []}  # fmt: skip


@pytest.mark.parametrize("bad", [SURROGATE, NUL, "\x1b"])
@pytest.mark.parametrize("field", ["name", "recipients", "audience"])
def test_channel_save__bad_character__invalid_input_naming_the_field(seeded, manager, field, bad):
    data = {**EMAIL, field: f"x{bad}y"}
    with pytest.raises(InvalidInput, match=f"'{field}'"):
        services.channel_save(channel=None, data=data, by=manager)
    assert not Channel.objects.filter(name__startswith="On-call").exists()


@pytest.mark.parametrize("field", ["url", "secret_header_name", "secret_header_value"])
def test_channel_save__webhook_field_with_a_surrogate__invalid_input_naming_it(
    seeded, manager, field
):
    data = {"audience": "users", "name": "Hook", "kind": "webhook", "environment_keys": [],
            "url": "https://chat.example.com/h", "secret_header_name": "X-Secret",
            "secret_header_value": "s3cret"}  # fmt: skip
    data[field] = data[field] + SURROGATE
    with pytest.raises(InvalidInput, match=f"'{field}'"):
        services.channel_save(channel=None, data=data, by=manager)


def test_channel_save__environment_key_with_a_surrogate__invalid_input(seeded, manager):
    with pytest.raises(InvalidInput, match="'environment_keys'"):
        services.channel_save(
            channel=None, data={**EMAIL, "environment_keys": [SURROGATE]}, by=manager
        )


def test_channel_page__control_character_in_the_name__400_naming_it(seeded, manager_client):
    form = {"audience": "internal", "name": f"On{NUL}call", "kind": "email",
            "recipients": "ops@example.com", "environment_keys": "", "enabled": "yes"}  # fmt: skip

    response = manager_client.post("/comms/channels/new", form)

    assert response.status_code == 400 and "&#x27;name&#x27;" in response.content.decode()
    assert not CommsEvent.objects.filter(kind="channel_created").exists()


@pytest.mark.parametrize(
    ("email", "environments"),
    [(f"fan{SURROGATE}@example.com", []), ("fan@example.com", [f"staging{SURROGATE}"])],
)
def test_subscriber_subscribe__surrogate__invalid_input_naming_the_field(
    seeded, email, environments
):
    field = "'email'" if SURROGATE in email else "'environment'"
    with pytest.raises(InvalidInput, match=field):
        services.subscriber_subscribe(email=email, environment_keys=environments, component_keys=[])
    assert not Subscriber.objects.exists()


def test_subscribe_page__control_character__400_naming_the_field(client, seeded):
    response = client.post("/status/subscribe", {"email": f"fan{NUL}@example.com"})
    assert response.status_code == 400 and "&#x27;email&#x27;" in response.content.decode()
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize("field", ["subject", "body"])
@pytest.mark.parametrize("bad", [SURROGATE, NUL])
def test_message_update__bad_character__invalid_input_naming_the_field(draft, manager, field, bad):
    values = {"subject": "Upgrade", "body": "Tonight.", field: f"x{bad}"}
    with pytest.raises(InvalidInput, match=f"'{field}'"):
        services.message_update(message=draft, audience_keys=["internal"], by=manager, **values)
    draft.refresh_from_db()
    assert draft.edited_at is None


def test_message_edit_page__control_character__400_naming_the_field(draft, manager_client):
    response = manager_client.post(
        f"/comms/messages/{draft.pk}/edit",
        {"subject": "Upgrade", "body": f"Tonight{NUL}", "audience": ["internal"]},
    )
    assert response.status_code == 400 and "&#x27;body&#x27;" in response.content.decode()


def test_incident_resolve__surrogate_in_the_closing_update__invalid_input(seeded, manager):
    with pytest.raises(InvalidInput, match="'body'"):
        services.status_incident_resolve(upgrade_id=1, body=SURROGATE, by=manager)


@pytest.mark.parametrize("token", ["%00", "a%0Ab", "x" * 300])
def test_unsubscribe_and_confirm__malformed_token__404(client, seeded, token):
    assert client.get(f"/status/unsubscribe/{token}").status_code == 404
    assert client.post(f"/status/unsubscribe/{token}").status_code == 404
    assert client.get(f"/status/confirm/{token}").status_code == 404
