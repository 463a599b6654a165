"""A message template a person broke never blocks the action that asked for a message: the
draft is kept with the reason on it, shown on the pages, and sent only once it renders."""

from __future__ import annotations

import pytest
from django.urls import reverse

from comms import services
from comms.admin import MessageTemplateForm
from comms.exceptions import InvalidInput
from comms.models import (
    CommsEnvironmentSettings,
    CommsEvent,
    Delivery,
    Message,
    MessageStatus,
    MessageTemplate,
)

pytestmark = pytest.mark.django_db

INCLUDE = 'Details: {% include "x" %}'  # renders, then fails: there is no template "x"
SYNTAX = "Upgrade {% if %} done"  # does not parse


def _break(key: str, *, body: str | None = None, subject: str | None = None) -> MessageTemplate:
    template = MessageTemplate.objects.get(key=key)
    template.body_template = body if body is not None else template.body_template
    template.subject_template = subject if subject is not None else template.subject_template
    template.save()
    return template


def _draft(key: str = "post_upgrade", **context):
    return services.message_draft_create(
        upgrade_id=7, template_key=key, by=None, environment_key="staging",
        context={"version_or_feature": "1.5.0", "status": "Rolled back", **context},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ({"body": INCLUDE}, "TemplateDoesNotExist: x"),
        ({"subject": SYNTAX}, "does not parse"),
        ({"body": "{% widthratio 1 2 status %}"}, "fails to render"),  # a tag raising
    ],
)
def test_message_draft_create__template_does_not_render__draft_kept_with_the_reason(
    seeded, broken, reason
):
    _break("post_upgrade", **broken)

    message = _draft()

    assert message.status == MessageStatus.DRAFT
    assert reason in message.render_error
    assert message.subject == "Post-upgrade communication (not rendered)"
    event = CommsEvent.objects.get(kind="message_drafted", subject_id=message.pk)
    assert reason in event.detail["render_error"]


def test_message_draft_create__broken_template_and_auto_send__not_sent(seeded):
    CommsEnvironmentSettings.objects.create(environment_key="staging", auto_send=True)
    _break("post_upgrade", body=INCLUDE)

    message = _draft()

    assert message.status == MessageStatus.DRAFT and message.render_error
    assert not Delivery.objects.exists()


def test_message_send__draft_not_rendered__refused_400(seeded):
    _break("post_upgrade", body=INCLUDE)
    message = _draft()

    with pytest.raises(InvalidInput, match="did not render") as info:
        services.message_send(message=message, by=None)

    assert info.value.status == 400
    message.refresh_from_db()
    assert message.status == MessageStatus.DRAFT


def test_message_rerender__template_fixed__draft_rendered_from_its_own_values(seeded, manager):
    # Given a draft made while the template was broken
    template = _break("post_upgrade", body=INCLUDE)
    message = _draft(next_steps="Watch the SLOs")
    # When staff fix the template and a manager renders the draft again
    template.body_template = "Status: {{ status }}. Next: {{ next_steps }}"
    template.save()
    message = services.message_rerender(message=message, by=manager)

    # Then it reads as if it had rendered the first time, and may be sent
    assert message.render_error == ""
    assert message.body == "Status: Rolled back. Next: Watch the SLOs"
    assert message.subject == "Upgrade Completed: 1.5.0 - Rolled back"
    assert CommsEvent.objects.filter(kind="message_rendered", subject_id=message.pk).exists()
    services.message_send(message=message, by=manager)


def test_message_rerender__still_broken__new_reason_kept_and_400(seeded, manager):
    template = _break("post_upgrade", body=INCLUDE)
    message = _draft()
    template.body_template = SYNTAX
    template.save()

    with pytest.raises(InvalidInput, match="still does not render"):
        services.message_rerender(message=message, by=manager)

    message.refresh_from_db()
    assert "does not parse" in message.render_error


def test_message_update__manager_writes_the_text__no_longer_waits_on_the_template(seeded, manager):
    _break("post_upgrade", body=INCLUDE)
    message = _draft()

    message = services.message_update(
        message=message, subject="Rolled back", body="We rolled back 1.5.0.",
        audience_keys=["internal"], by=manager,
    )  # fmt: skip

    assert message.render_error == ""
    services.message_send(message=message, by=manager)


def test_notice_send__broken_template__kept_as_a_draft_nothing_sent_no_raise(seeded):
    _break("window_moved", body=INCLUDE)

    message = services.notice_send(
        template_key="window_moved", upgrade_id=7, environment_key="staging",
        context={"window": "tomorrow"}, upgrade_title="Upgrade", upgrade_url="",
    )  # fmt: skip

    assert message is not None and message.status == MessageStatus.DRAFT
    assert "TemplateDoesNotExist" in message.render_error
    assert not Delivery.objects.exists()


def test_announce__rollback_with_a_broken_template__upgrade_side_does_not_raise(
    make_upgrade, manager
):
    # The upgrades app drafts through upgrades/services/announce.py; a broken template used to
    # raise TemplateDoesNotExist straight through it (and answer the rollback with a 500).
    from upgrades.services import announce

    upgrade = make_upgrade("minor")
    _break("post_upgrade", body=INCLUDE)

    announce.message_draft(upgrade, "post_upgrade", by=manager)

    message = Message.objects.get(upgrade_id=upgrade.pk, template_key="post_upgrade")
    assert "TemplateDoesNotExist" in message.render_error


def test_pages__draft_not_rendered__error_and_a_way_to_fix_it(seeded, manager_client):
    template = _break("post_upgrade", body=INCLUDE)
    message = _draft()
    fix_url = reverse("admin:comms_messagetemplate_change", args=[template.pk])

    listing = manager_client.get(reverse("comms:message_list")).content.decode()
    detail = manager_client.get(message.get_absolute_url()).content.decode()

    assert "Not rendered:" in listing and "TemplateDoesNotExist: x" in listing
    # The Django admin is for superusers only: a release manager is never sent there.
    assert f'href="{fix_url}"' not in listing
    assert 'id="render-error"' in detail and "TemplateDoesNotExist: x" in detail
    assert f'href="{fix_url}"' not in detail and "Ask a superuser to fix" in detail
    assert reverse("comms:message_rerender", args=[message.pk]) in detail
    assert reverse("comms:message_send", args=[message.pk]) not in detail


def test_render_again_page__still_broken__400_with_the_reason(seeded, manager_client):
    _break("post_upgrade", body=INCLUDE)
    message = _draft()

    response = manager_client.post(reverse("comms:message_rerender", args=[message.pk]))

    assert response.status_code == 400
    assert "still does not render" in response.content.decode()


def test_render_again_page__fixed__redirects_to_the_rendered_draft(seeded, manager_client):
    template = _break("post_upgrade", body=INCLUDE)
    message = _draft()
    template.body_template = "Status: {{ status }}"
    template.save()

    response = manager_client.post(reverse("comms:message_rerender", args=[message.pk]))

    assert response.status_code == 302
    message.refresh_from_db()
    assert message.body == "Status: Rolled back" and not message.render_error


def test_render_again__stakeholder__refused(seeded, stakeholder_client):
    _break("post_upgrade", body=INCLUDE)
    message = _draft()
    response = stakeholder_client.post(reverse("comms:message_rerender", args=[message.pk]))
    assert response.status_code == 403


@pytest.mark.parametrize(("source", "reason"), [(INCLUDE, "TemplateDoesNotExist"),
                                               (SYNTAX, "does not parse")])  # fmt: skip
def test_admin_template_form__broken_template__refused_before_it_is_saved(seeded, source, reason):
    template = MessageTemplate.objects.get(key="progress")
    data = {"key": template.key, "name": template.name, "subject_template": "Progress",
            "body_template": source, "audiences": [], "updated_at": "2026-01-01 10:00"}  # fmt: skip

    form = MessageTemplateForm(data=data, instance=template)

    assert not form.is_valid() and reason in str(form.errors["body_template"])
