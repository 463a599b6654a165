"""Messages: seeded templates, drafts, sending, and the deliveries that carry them out."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.template import Context, Engine, TemplateSyntaxError
from django.utils import timezone

from comms.exceptions import Conflict, InvalidInput, NotFound
from comms.models import (
    DRAFT_TEMPLATE_KEYS,
    NOTICE_TEMPLATE_KEYS,
    Audience,
    AudienceKey,
    Channel,
    ChannelKind,
    CommsEnvironmentSettings,
    Delivery,
    DeliveryStatus,
    Message,
    MessageMoment,
    MessageStatus,
    MessageTemplate,
    StatusMaintenance,
    StatusUpdate,
    Subscriber,
    TemplateKey,
)
from comms.services._events import event_record
from comms.services._input import text_clean, texts_clean
from comms.services._outgoing import email_build, webhook_body, webhook_payload
from comms.services.deliveries import _enqueue

logger = logging.getLogger(__name__)

CONTEXT_KEYS = (
    "version_or_feature", "date_time", "type", "duration", "impact", "rollback_plan", "contact",
    "status", "progress", "eta", "issues", "next_steps", "upgrade_title", "upgrade_url",
)  # fmt: skip
EMPTY_VALUE = "—"  # what an empty placeholder renders as, so a reader sees it was left blank

_ENGINE = Engine(autoescape=False)


# --- seeding ---------------------------------------------------------------------------------

AUDIENCES = {
    AudienceKey.INTERNAL: ("Internal team", "Team members running and supporting the upgrade."),
    AudienceKey.EXTERNAL: ("External", "The public status page and its email subscribers."),
    AudienceKey.USERS: ("Users", "People who use Mycelia: upgrade notifications."),
}

# The playbook's "Communication Procedures", word for word, with [Placeholders] as variables.
TEMPLATES: dict[str, dict[str, Any]] = {
    TemplateKey.PRE_UPGRADE: {
        "name": "Pre-upgrade communication",
        "subject": "Scheduled Upgrade: {{ version_or_feature }} - {{ date_time }}",
        "body": (
            "Upgrade Details:\n"
            "- Type: {{ type }}\n"
            "- Duration: {{ duration }}\n"
            "- Impact: {{ impact }}\n"
            "- Rollback Plan: {{ rollback_plan }}\n"
            "\n"
            "Contact: {{ contact }}\n"
        ),
        "audiences": [AudienceKey.INTERNAL, AudienceKey.EXTERNAL, AudienceKey.USERS],
    },
    TemplateKey.PROGRESS: {
        "name": "Upgrade progress update",
        "subject": "Upgrade Progress: {{ version_or_feature }} - {{ status }}",
        "body": (
            "Current Status: {{ status }}\n"
            "Progress: {{ progress }}\n"
            "ETA: {{ eta }}\n"
            "Issues: {{ issues }}\n"
        ),
        "audiences": [AudienceKey.INTERNAL, AudienceKey.EXTERNAL],
    },
    TemplateKey.POST_UPGRADE: {
        "name": "Post-upgrade communication",
        "subject": "Upgrade Completed: {{ version_or_feature }} - {{ status }}",
        "body": (
            "Upgrade Status: {{ status }}\n"
            "Issues: {{ issues }}\n"
            "Next Steps: {{ next_steps }}\n"
            "Contact: {{ contact }}\n"
        ),
        "audiences": [AudienceKey.INTERNAL, AudienceKey.EXTERNAL, AudienceKey.USERS],
    },
    # Subscriber notices (no draft): window, previous_window, at, status, environment,
    # upgrade_title, status_page_url.
    TemplateKey.WINDOW_MOVED: {
        "name": "Maintenance window moved",
        "subject": "Maintenance moved: {{ upgrade_title }}",
        "body": (
            "The maintenance window for {{ upgrade_title }} on {{ environment }} has moved.\n"
            "\n"
            "Was: {{ previous_window }}\n"
            "Now: {{ window }}\n"
            "\n"
            "Follow it on the status page: {{ status_page_url }}\n"
        ),
        "audiences": [AudienceKey.EXTERNAL],
    },
    TemplateKey.WINDOW_STARTED: {
        "name": "Maintenance window started",
        "subject": "Maintenance started: {{ upgrade_title }}",
        "body": (
            "The maintenance of {{ environment }} for {{ upgrade_title }} started at {{ at }}.\n"
            "Planned window: {{ window }}\n"
            "\n"
            "Follow it on the status page: {{ status_page_url }}\n"
        ),
        "audiences": [AudienceKey.EXTERNAL],
    },
    TemplateKey.WINDOW_ENDED: {
        "name": "Maintenance window ended",
        "subject": "Maintenance ended: {{ upgrade_title }} - {{ status }}",
        "body": (
            "The maintenance window of {{ environment }} for {{ upgrade_title }} ended at {{ at }}.\n"
            "Status: {{ status }}\n"
            "\n"
            "Details on the status page: {{ status_page_url }}\n"
        ),
        "audiences": [AudienceKey.EXTERNAL],
    },
}

SUBSCRIBERS_CHANNEL_NAME = "Status page subscribers"


def comms_seed() -> dict[str, int]:
    """Audiences, the templates and the subscribers' channel. Idempotent: rows that exist
    (perhaps edited by a manager) are left as they are."""
    created = {"audiences": 0, "templates": 0, "channels": 0}
    with transaction.atomic():
        audiences: dict[str, Audience] = {}
        for key, (name, description) in AUDIENCES.items():
            audiences[key], made = Audience.objects.get_or_create(
                key=key, defaults={"name": name, "description": description}
            )
            created["audiences"] += made
        for key, spec in TEMPLATES.items():
            template, made = MessageTemplate.objects.get_or_create(
                key=key,
                defaults={
                    "name": spec["name"],
                    "subject_template": spec["subject"],
                    "body_template": spec["body"],
                },
            )
            if made:
                template.audiences.set([audiences[a] for a in spec["audiences"]])
                event_record(kind="template_seeded", subject=template, to_state=key)
            created["templates"] += made
        if not Channel.objects.filter(name=TEAM_MAIL_CHANNEL_NAME).exists():
            # Mail to named people of the team (review reminders); its own recipients list
            # starts empty, so drafts to the internal audience reach no one until staff fill it.
            channel = Channel.objects.create(
                audience=audiences[AudienceKey.INTERNAL],
                name=TEAM_MAIL_CHANNEL_NAME,
                kind=ChannelKind.EMAIL,
            )
            event_record(kind="channel_seeded", subject=channel, to_state="enabled")
            created["channels"] += 1
        if not Channel.objects.filter(to_subscribers=True).exists():
            channel = Channel.objects.create(
                audience=audiences[AudienceKey.EXTERNAL],
                name=SUBSCRIBERS_CHANNEL_NAME,
                kind=ChannelKind.EMAIL,
                to_subscribers=True,
            )
            event_record(kind="channel_seeded", subject=channel, to_state="enabled")
            created["channels"] += 1
    return created


# A channel per audience for the demo (`seed --demo`), so a fresh install's message preview
# shows what each audience would get. The external audience has the subscribers' channel.
DEMO_CHANNELS = (
    (AudienceKey.INTERNAL, "Demo: release team inbox", "release-team@example.com"),
    (AudienceKey.USERS, "Demo: users announcement list", "mycelia-users@example.com"),
)


def comms_demo_seed() -> list[str]:
    """comms_seed, then the demo's channels that do not exist yet (by name). A channel that
    exists is never changed, whatever a manager made of it. Returns the names created."""
    from comms.services.channels import channel_save

    comms_seed()
    created = []
    for audience_key, name, address in DEMO_CHANNELS:
        if Channel.objects.filter(name=name).exists():
            continue
        channel_save(
            channel=None,
            data={"audience": audience_key, "name": name, "kind": "email", "recipients": address},
            by=None,
        )
        created.append(name)
    return created


# --- rendering -------------------------------------------------------------------------------


def template_render(*, source: str, context: dict[str, Any]) -> str:
    """The template rendered as plain text, or InvalidInput saying why not. Templates are edited
    by staff, so anything may be wrong with one: a syntax error, an {% include %} of a template
    that does not exist, a filter that raises."""
    try:
        template = _ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        raise InvalidInput(f"The template does not parse: {exc}") from exc
    except Exception as exc:
        raise InvalidInput(f"The template does not parse: {type(exc).__name__}: {exc}") from exc
    try:
        return template.render(Context(context, autoescape=False))
    except Exception as exc:
        raise InvalidInput(f"The template fails to render: {type(exc).__name__}: {exc}") from exc


def _context_clean(context: dict[str, Any]) -> dict[str, str]:
    clean = {key: EMPTY_VALUE for key in CONTEXT_KEYS}
    for key, value in (context or {}).items():
        text = "" if value is None else str(value).strip()
        clean[str(key)] = text or EMPTY_VALUE
    return clean


def message_render(*, template: MessageTemplate, context: dict[str, Any]) -> tuple[str, str]:
    values = _context_clean(context)
    try:
        subject = template_render(source=template.subject_template, context=values)
    except InvalidInput as exc:
        raise InvalidInput(f"The subject of “{template.name}”: {exc}") from exc
    try:
        body = template_render(source=template.body_template, context=values)
    except InvalidInput as exc:
        raise InvalidInput(f"The body of “{template.name}”: {exc}") from exc
    return " ".join(subject.split())[:300], body


def _render_or_error(template: MessageTemplate, context: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, body, "") when the template renders; otherwise a placeholder subject, no body
    and the reason. Rendering never blocks the action that asked for the message."""
    try:
        subject, body = message_render(template=template, context=context)
    except InvalidInput as exc:
        logger.warning("The %s template does not render: %s", template.key, exc)
        return f"{template.name} (not rendered)"[:300], "", str(exc)[:2000]
    return subject, body, ""


def _plain(context: dict[str, Any]) -> dict[str, str]:
    """The values a draft was made from, kept to render it again."""
    return {str(k): "" if v is None else str(v) for k, v in (context or {}).items()}


def message_draft_create(
    *,
    upgrade_id: int,
    template_key: str,
    context: dict[str, str],
    by: Any | None,
    environment_key: str,
    moment: str = "",
) -> Message:
    """A draft from the template record, placeholders filled from `context` (empty ones read
    "—"). Sent at once when the environment's CommsEnvironmentSettings.auto_send is on. A
    template that does not render still gives a draft, with `render_error` saying why; it is
    never sent by itself.

    `moment` is the playbook moment it is drafted at (MessageMoment: scheduled, started, phase,
    rollback, ended). A newer draft about the same upgrade replaces the ones still waiting:
    they are discarded with a reason that names it (an unsent "scheduled" notice is no use
    once the work started), so drafts never pile up unread."""
    if template_key not in DRAFT_TEMPLATE_KEYS:
        raise InvalidInput(
            f"Unknown message template '{template_key}': use pre_upgrade, progress or post_upgrade."
        )
    if moment and moment not in MessageMoment.values:
        raise InvalidInput(
            f"Unknown moment '{moment}': use {', '.join(MessageMoment.values)} or leave it empty."
        )
    template = MessageTemplate.objects.filter(key=template_key).first()
    if template is None:
        raise NotFound(f"The '{template_key}' template is missing: run manage.py comms_seed.")
    subject, body, error = _render_or_error(template, context)
    with transaction.atomic():
        message = Message.objects.create(
            upgrade_id=upgrade_id,
            upgrade_title=str(context.get("upgrade_title") or "")[:300],
            upgrade_url=str(context.get("upgrade_url") or "")[:500],
            environment_key=environment_key,
            template_key=template_key,
            subject=subject,
            body=body,
            render_error=error,
            render_context=_plain(context),
            created_by=by if getattr(by, "is_authenticated", False) else None,
            moment=moment,
        )
        message.audiences.set(template.audiences.all())
        event_record(kind="message_drafted", subject=message, by=by, to_state=message.status,
                     detail={"render_error": error, "moment": moment} if error
                     else {"moment": moment})  # fmt: skip
        _older_drafts_replace(message)
    auto = CommsEnvironmentSettings.objects.filter(
        environment_key=environment_key, auto_send=True
    ).exists()
    if auto and not error:
        message = message_send(message=message, by=None)
    return message


def _older_drafts_replace(message: Message) -> None:
    """Inside the new draft's transaction: the upgrade's drafts still waiting are discarded,
    each with a reason naming the draft that replaces it."""
    older = Message.objects.select_for_update().filter(
        upgrade_id=message.upgrade_id,
        status=MessageStatus.DRAFT,
        template_key__in=DRAFT_TEMPLATE_KEYS,
        pk__lt=message.pk,
    )
    reason = f"Replaced by a newer draft (#{message.pk}): “{message.subject}”."[:1000]
    for draft in older:
        _discard(draft, reason=reason, by=None)


def _discard(locked: Message, *, reason: str, by: Any | None) -> None:
    before = locked.status
    locked.status = MessageStatus.DISCARDED
    locked.discard_reason, locked.discarded_at = reason, timezone.now()
    locked.discarded_by = by if getattr(by, "is_authenticated", False) else None
    locked.save(update_fields=["status", "discard_reason", "discarded_at", "discarded_by"])
    event_record(kind="message_discarded", subject=locked, by=by, from_state=before,
                 to_state=locked.status, detail={"reason": reason})  # fmt: skip


def message_discard(*, message: Message, reason: str, by: Any) -> Message:
    """Decide not to send a draft. The reason is required and kept with it; the message stays
    in the history (shown struck through) and can no longer be sent or edited."""
    reason = " ".join(text_clean(reason, field="reason", max_length=10_000).split())
    if not reason:
        raise InvalidInput("Say why this draft is discarded (kept with it in the history).")
    if len(reason) > 1000:
        raise InvalidInput("Keep the reason to 1000 characters.")
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.status == MessageStatus.DISCARDED:
            raise Conflict("This draft was discarded already.")
        if locked.status != MessageStatus.DRAFT:
            raise Conflict("This message has been sent: only a draft can be discarded.")
        _discard(locked, reason=reason, by=by)
    return locked


def _not_a_draft(message: Message, doing: str) -> Conflict:
    if message.status == MessageStatus.DISCARDED:
        return Conflict(f"This draft was discarded: it can no longer be {doing}.")
    return Conflict(f"This message has been sent: it can no longer be {doing}.")


def message_rerender(*, message: Message, by: Any) -> Message:
    """Render a draft that did not render again, from its template as it is now and the values
    it was made with. Still failing: the new reason is kept on the draft and raised."""
    template = MessageTemplate.objects.filter(key=message.template_key).first()
    if template is None:
        raise NotFound(
            f"The '{message.template_key}' template is missing: run manage.py comms_seed."
        )
    subject, body, error = _render_or_error(template, message.render_context)
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.status != MessageStatus.DRAFT:
            raise _not_a_draft(locked, "rendered again")
        if not locked.render_error:
            raise Conflict("This draft rendered already: edit it, or keep it as it is.")
        if error:
            locked.render_error = error
            locked.save(update_fields=["render_error"])
        else:
            locked.subject, locked.body, locked.render_error = subject, body, ""
            locked.save(update_fields=["subject", "body", "render_error"])
            event_record(kind="message_rendered", subject=locked, by=by,
                         from_state=locked.status, to_state=locked.status)  # fmt: skip
    if error:
        raise InvalidInput(f"It still does not render. {error}")
    return locked


def message_update(
    *, message: Message, subject: str, body: str, audience_keys: list[str], by: Any
) -> Message:
    """The manager's own words for a draft (which then no longer waits on its template)."""
    subject = " ".join(text_clean(subject, field="subject", max_length=10_000).split())
    body = text_clean(body, field="body", max_length=100_000)
    audience_keys = texts_clean(audience_keys, field="audience", max_length=100)
    if not subject:
        raise InvalidInput("The subject is empty: write one.")
    if len(subject) > 300:
        raise InvalidInput("Keep the subject to 300 characters.")
    if not (body or "").strip():
        raise InvalidInput("The message body is empty: write one.")
    audiences = list(Audience.objects.filter(key__in=audience_keys))
    if not audiences:
        raise InvalidInput("Choose at least one audience.")
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.status != MessageStatus.DRAFT:
            raise _not_a_draft(locked, "edited")
        before = {"subject": locked.subject, "audiences": _audience_keys(locked)}
        if locked.render_error:
            before["render_error"] = locked.render_error
        locked.subject, locked.body = subject, body.replace("\r\n", "\n")
        locked.edited_by, locked.edited_at = by, timezone.now()
        locked.render_error = ""
        locked.save(update_fields=["subject", "body", "edited_by", "edited_at", "render_error"])
        locked.audiences.set(audiences)
        event_record(
            kind="message_edited",
            subject=locked,
            by=by,
            from_state=locked.status,
            to_state=locked.status,
            detail={"before": before, "audiences": sorted(a.key for a in audiences)},
        )
    return locked


def _audience_keys(message: Message) -> list[str]:
    return sorted(message.audiences.values_list("key", flat=True))


# --- what goes out ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    channel: Channel
    recipient: str
    subscriber: Subscriber | None = None


def _channels(message: Message, *, subscribers_only: bool = False) -> list[Channel]:
    """The enabled channels of the message's audiences that cover its environment (a notice
    goes to the subscribers' channels only)."""
    subscribers_only = subscribers_only or message.template_key in NOTICE_TEMPLATE_KEYS
    channels = Channel.objects.filter(
        enabled=True, audience__in=message.audiences.all()
    ).select_related("audience")
    return [
        c
        for c in channels
        if c.covers(message.environment_key) and (c.to_subscribers or not subscribers_only)
    ]


def _subscribers_for(environment_key: str) -> list[Subscriber]:
    return [
        s
        for s in Subscriber.objects.filter(confirmed_at__isnull=False, unsubscribed_at__isnull=True)
        if s.wants(environment_key)
    ]


def _targets_of(message: Message, channels: list[Channel]) -> list[Target]:
    targets: list[Target] = []
    subscribers: list[Subscriber] | None = None
    for channel in channels:
        if channel.to_subscribers:
            if subscribers is None:
                subscribers = _subscribers_for(message.environment_key)
            targets += [Target(channel, s.email, s) for s in subscribers]
        else:
            targets += [Target(channel, r) for r in channel.recipient_list()]
    return targets


def message_targets(*, message: Message) -> list[Target]:
    """Every (channel, recipient) the message goes to: the enabled channels of its audiences
    that cover its environment; a subscribers' channel expands to the confirmed subscribers who
    want that environment."""
    return _targets_of(message, _channels(message))


def audiences_without_channel(*, message: Message) -> list[Audience]:
    """The message's audiences that no enabled channel covering its environment reaches."""
    reached = {c.audience_id for c in _channels(message)}
    return [a for a in message.audiences.all() if a.pk not in reached]


def _not_sent_reason(message: Message, channels: list[Channel]) -> str:
    """Why a message with no recipient went to no one, in words for the messages pages."""
    if not channels:
        if message.template_key in NOTICE_TEMPLATE_KEYS:
            return "No channel for this audience: no enabled channel mails the status page subscribers."
        names = ", ".join(a.name for a in message.audiences.all())
        return f"No channel for this audience ({names}) covers {message.environment_key or 'this environment'}."
    empty = []
    for channel in channels:
        if channel.to_subscribers:
            empty.append(f"“{channel.name}”: no confirmed subscriber follows this environment")
        else:
            empty.append(f"“{channel.name}”: no addresses")
    return ("Its channels have no recipients: " + "; ".join(empty) + ".")[:500]


def message_preview(*, message: Message) -> list[dict[str, Any]]:
    """Per channel that would carry it (an empty recipients list when it has none): its
    recipients and exactly what each receives. Webhook channels show `body_json`, the very
    bytes POSTed (and `payload`, the same document parsed); subscriber mails show the
    placeholder TOKEN where each subscriber's own unsubscribe token goes."""
    channels = _channels(message)
    by_channel: dict[int, dict[str, Any]] = {
        c.pk: {"channel": c, "recipients": []} for c in channels
    }
    for target in _targets_of(message, channels):
        by_channel[target.channel.pk]["recipients"].append(target.recipient)
    previews = []
    for entry in by_channel.values():
        channel = entry["channel"]
        if channel.is_webhook:
            entry["payload"] = webhook_payload(message=message, kind=channel.kind)
            entry["body_json"] = webhook_body(message=message, kind=channel.kind).decode("utf-8")
        else:
            mail = email_build(
                message=message, recipient="", subscriber=None,
                for_subscriber=channel.to_subscribers,
            )  # fmt: skip
            entry["subject"], entry["body"], entry["headers"] = (
                mail.subject,
                mail.body,
                mail.extra_headers,
            )
        previews.append(entry)
    return previews


# --- sending ---------------------------------------------------------------------------------


def _dispatch(
    message: Message, targets: list[Target], by: Any | None, channels: list[Channel]
) -> None:
    """Inside the caller's transaction: the deliveries, the message's state, its status page
    post, and the enqueueing once committed."""
    Delivery.objects.bulk_create(
        [
            Delivery(message=message, channel=t.channel, recipient=t.recipient[:500],
                     subscriber=t.subscriber)
            for t in targets
        ],
        ignore_conflicts=True,
    )  # fmt: skip
    before = message.status
    # "Sent" is earned by a delivery that went out (message_status_refresh); with no target
    # the message is "not sent", with the reason.
    message.status = MessageStatus.SENDING if targets else MessageStatus.NOT_SENT
    message.not_sent_reason = "" if targets else _not_sent_reason(message, channels)
    message.sent_at, message.sent_by = timezone.now(), by
    message.save(update_fields=["status", "not_sent_reason", "sent_at", "sent_by"])
    event_record(
        kind="message_sent" if targets else "message_not_sent",
        subject=message,
        by=by,
        from_state=before,
        to_state=message.status,
        detail={
            "deliveries": len(targets),
            "audiences": _audience_keys(message),
            **({"reason": message.not_sent_reason} if not targets else {}),
        },
    )
    if (
        message.template_key in DRAFT_TEMPLATE_KEYS
        and message.audiences.filter(key=AudienceKey.EXTERNAL).exists()
    ):
        maintenance = StatusMaintenance.objects.filter(upgrade_id=message.upgrade_id).first()
        if maintenance is not None:
            incident = getattr(maintenance, "incident", None)
            StatusUpdate.objects.create(
                maintenance=maintenance,
                incident=incident,
                status=incident.status if incident else maintenance.status,
                body=f"{message.subject}\n\n{message.body}".strip(),
                message=message,
            )
    ids = list(
        Delivery.objects.filter(message=message, status=DeliveryStatus.QUEUED).values_list(
            "pk", flat=True
        )
    )
    transaction.on_commit(partial(_enqueue, ids))


def message_send(*, message: Message, by: Any | None) -> Message:
    """Send a draft: one Delivery per channel and recipient, each carried out by a worker.
    A message is sent once; a second call raises Conflict."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.status == MessageStatus.DISCARDED:
            raise Conflict(f"This draft was discarded ({locked.discard_reason}): it is not sent.")
        if locked.status != MessageStatus.DRAFT:
            raise Conflict("This message has already been sent.")
        if locked.render_error:
            raise InvalidInput(
                "This draft did not render from its template, so there is nothing to send yet: "
                "fix the template and render it again, or write the subject and body yourself."
            )
        if not locked.audiences.exists():
            raise InvalidInput("Choose at least one audience before sending.")
        channels = _channels(locked)
        _dispatch(locked, _targets_of(locked, channels), by, channels)
    return locked


TEAM_MAIL_CHANNEL_NAME = "Team mail"


def reminder_send(
    *, upgrade_id: int, upgrade_title: str, upgrade_url: str, environment_key: str,
    subject: str, body: str, recipient_email: str,
) -> Message:  # fmt: skip
    """A reminder to one person (a review's owner) through the internal team's channels: each
    internal email channel mails that person, each internal webhook (a team chat) posts it.
    Recorded and retried like any message."""
    message = Message.objects.create(
        upgrade_id=upgrade_id, upgrade_title=upgrade_title[:300], upgrade_url=upgrade_url[:500],
        environment_key=environment_key, template_key=TemplateKey.REMINDER,
        subject=subject[:300], body=body,
    )  # fmt: skip
    internal = Audience.objects.filter(key=AudienceKey.INTERNAL)
    message.audiences.set(internal)
    event_record(kind="reminder_created", subject=message, to_state=message.status)
    targets = []
    channels = [
        c
        for c in Channel.objects.filter(enabled=True, audience__in=internal)
        if c.covers(environment_key) and not c.to_subscribers
    ]
    for channel in channels:
        if channel.kind == ChannelKind.EMAIL:
            if recipient_email:
                targets.append(Target(channel, recipient_email))
        else:
            targets += [Target(channel, r) for r in channel.recipient_list()]
    _dispatch(message, targets, None, channels)
    return message


def notice_send(
    *, template_key: str, upgrade_id: int, environment_key: str, context: dict[str, str],
    upgrade_title: str, upgrade_url: str,
) -> Message | None:  # fmt: skip
    """A subscriber notice (window moved, started or ended), sent without a draft to the
    subscribers' channels only. Call inside the transaction of the change it announces. A
    template that does not render never blocks that change: the notice stays a draft with
    `render_error` set, for a manager to fix and send."""
    template = MessageTemplate.objects.filter(key=template_key).first()
    if template is None:
        logger.warning("No %s template: run manage.py comms_seed", template_key)
        return None
    subject, body, error = _render_or_error(template, context)
    message = Message.objects.create(
        upgrade_id=upgrade_id, upgrade_title=upgrade_title[:300], upgrade_url=upgrade_url[:500],
        environment_key=environment_key, template_key=template_key, subject=subject, body=body,
        render_error=error, render_context=_plain(context),
    )  # fmt: skip
    message.audiences.set(Audience.objects.filter(key=AudienceKey.EXTERNAL))
    event_record(kind="notice_created", subject=message, to_state=message.status,
                 detail={"render_error": error} if error else None)  # fmt: skip
    if error:
        return message
    channels = _channels(message, subscribers_only=True)
    _dispatch(message, _targets_of(message, channels), None, channels)
    return message
