"""Channels: where each audience's messages go. Release managers create, edit and switch them
on and off; every change is a CommsEvent in the change's own transaction."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction

from comms.exceptions import InvalidInput
from comms.models import Audience, AudienceKey, Channel, ChannelKind
from comms.services._events import event_record
from comms.services._input import text_clean, texts_clean

# What channel_save reads from `data`; a key left out keeps the channel's current value (or the
# default, for a new channel). `audience` is an Audience or its key.
CHANNEL_FIELDS = (
    "audience", "name", "kind", "recipients", "to_subscribers", "url", "secret_header_name",
    "secret_header_value", "environment_keys",
)  # fmt: skip
_SECRET = "secret_header_value"  # never written to an event
# RFC 9110 token characters: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_URL = URLValidator(schemes=["http", "https"])
# The text fields and the most a form may send for each (the stored limits are checked after
# the text is tidied).
_TEXT_FIELDS = {
    "name": 1000, "recipients": 100_000, "url": 2000, "secret_header_name": 1000,
    "secret_header_value": 2000,
}  # fmt: skip


# What each kind of webhook is called in a sentence, and what its URL looks like.
_WEBHOOK_WORDS = {
    ChannelKind.WEBHOOK: "webhook",
    ChannelKind.SLACK: "Slack incoming webhook",
    ChannelKind.TEAMS: "Microsoft Teams incoming webhook",
}
_URL_HINTS = {
    ChannelKind.WEBHOOK: "http:// or https://",
    ChannelKind.SLACK: "https://hooks.slack.com/services/…, from the Slack app's Incoming Webhooks",
    ChannelKind.TEAMS: "https://….webhook.office.com/… or a Workflows URL, from the Teams channel",
}


def _state(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _recipients_clean(text: str) -> list[str]:
    """Addresses one per line or separated by commas, as Channel.recipient_list reads them."""
    parts = (text or "").replace(",", "\n").split()
    return list(dict.fromkeys(p.strip() for p in parts if p.strip()))


def _environment_keys_clean(value: Any) -> list[str]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(k, str) for k in value):
        raise InvalidInput(
            "Environments must be a list of environment keys (strings), e.g. staging, production."
        )
    value = texts_clean(value, field="environment_keys", max_length=100)
    return list(dict.fromkeys(k.strip() for k in value if k.strip()))


def _audience_clean(value: Any) -> Audience:
    if isinstance(value, Audience):
        return value
    if isinstance(value, str):
        value = text_clean(value, field="audience", max_length=100)
    audience = Audience.objects.filter(key=str(value)).first() if value else None
    if audience is None:
        known = ", ".join(Audience.objects.values_list("key", flat=True)) or "none: run comms_seed"
        raise InvalidInput(f"Choose the audience this channel serves ({known}).")
    return audience


def _values_clean(values: dict[str, Any]) -> dict[str, Any]:
    """The channel's values as they will be stored, or InvalidInput naming the first problem."""
    # Text a database, a mail header and a page can all carry (no lone surrogates, no control
    # characters), each problem named by its form field.
    values = dict(values)
    for field, limit in _TEXT_FIELDS.items():
        values[field] = text_clean(values[field], field=field, max_length=limit)
    clean: dict[str, Any] = {"audience": _audience_clean(values["audience"])}

    name = " ".join(str(values["name"] or "").split())
    if not name:
        raise InvalidInput("The channel has no name: give it one people will recognise.")
    if len(name) > 100:
        raise InvalidInput("Keep the channel's name to 100 characters.")
    clean["name"] = name

    kind = values["kind"]
    if kind not in ChannelKind.values:
        raise InvalidInput(
            "Choose the channel's kind: email, webhook, Slack or Microsoft Teams "
            f"({', '.join(ChannelKind.values)})."
        )
    clean["kind"] = kind

    header_name = str(values["secret_header_name"] or "").strip()
    header_value = str(values["secret_header_value"] or "").strip()
    clean["environment_keys"] = _environment_keys_clean(values["environment_keys"])

    if kind == ChannelKind.EMAIL:
        addresses = _recipients_clean(values["recipients"])
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise InvalidInput(
                    f"“{address}” is not a valid email address: correct it or remove it."
                ) from None
        to_subscribers = bool(values["to_subscribers"])
        # The internal team's mail channel may have no list: reminders go through it to the
        # one person they are for (a review's owner).
        internal = clean["audience"].key == AudienceKey.INTERNAL
        if not addresses and not to_subscribers and not internal:
            raise InvalidInput(
                "An email channel needs at least one recipient address, "
                "or “Email the status page subscribers” ticked."
            )
        # The webhook's fields mean nothing to an email channel: none are kept.
        clean.update(recipients="\n".join(addresses), to_subscribers=to_subscribers,
                     url="", secret_header_name="", secret_header_value="")  # fmt: skip
        return clean

    what = _WEBHOOK_WORDS[kind]
    url = str(values["url"] or "").strip()
    if not url:
        raise InvalidInput(f"A {what} channel needs the URL to POST to ({_URL_HINTS[kind]}).")
    try:
        _URL(url)
    except ValidationError:
        raise InvalidInput(
            f"“{url}” is not a valid http:// or https:// URL for the {what}: "
            f"paste the whole URL ({_URL_HINTS[kind]})."
        ) from None
    if len(url) > 500:
        raise InvalidInput(f"Keep the {what} URL to 500 characters.")
    if kind != ChannelKind.WEBHOOK and values["to_subscribers"]:
        raise InvalidInput(
            f"A {what} posts to a chat: only an email channel can mail the status page "
            "subscribers. Untick “Email the status page subscribers” or choose Email."
        )
    if bool(header_name) != bool(header_value):
        missing = "value" if header_name else "name"
        raise InvalidInput(
            f"The secret header needs both a name and a value: the {missing} is missing "
            "(or clear both)."
        )
    if header_name and not _HEADER_NAME.match(header_name):
        raise InvalidInput(
            f"“{header_name}” is not a valid header name: use letters, digits and dashes, "
            "e.g. X-Webhook-Secret."
        )
    if any(c in header_value for c in "\r\n\0"):
        raise InvalidInput("The secret header's value must be on one line.")
    if len(header_name) > 100 or len(header_value) > 500:
        raise InvalidInput("Keep the header name to 100 characters and its value to 500.")
    clean.update(recipients="", to_subscribers=False, url=url,
                 secret_header_name=header_name, secret_header_value=header_value)  # fmt: skip
    return clean


def channel_save(*, channel: Channel | None, data: dict[str, Any], by: Any) -> Channel:
    """Create a channel (channel=None) or update one from `data` (keys: CHANNEL_FIELDS, and
    `enabled` on create; a key left out keeps the current value). Email channels keep their
    addresses one per line and drop webhook fields; webhook channels the reverse. Raises
    InvalidInput naming the problem; writes nothing then."""
    unknown = set(data) - set(CHANNEL_FIELDS) - ({"enabled"} if channel is None else set())
    if unknown:
        raise InvalidInput(
            f"Unknown channel field(s): {', '.join(sorted(unknown))}."
            + (" Switch a channel on or off with its toggle." if "enabled" in unknown else "")
        )
    if channel is None:
        current: dict[str, Any] = {
            "audience": None, "name": "", "kind": "", "recipients": "", "to_subscribers": False,
            "url": "", "secret_header_name": "", "secret_header_value": "", "environment_keys": [],
        }  # fmt: skip
    else:
        current = {f: getattr(channel, f) for f in CHANNEL_FIELDS}
    clean = _values_clean({**current, **{k: v for k, v in data.items() if k != "enabled"}})

    if channel is None:
        enabled = bool(data.get("enabled", True))
        with transaction.atomic():
            created = Channel.objects.create(enabled=enabled, **clean)
            event_record(
                kind="channel_created",
                subject=created,
                by=by,
                to_state=_state(enabled),
                detail={
                    "name": created.name,
                    "kind": created.kind,
                    "audience": created.audience.key,
                },
            )
        return created

    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        changed = [f for f in CHANNEL_FIELDS if not _same(f, getattr(locked, f), clean[f])]
        if not changed:
            return locked
        shown = [f for f in changed if f != _SECRET]
        before = {f: _plain(getattr(locked, f)) for f in shown}
        for field in changed:
            setattr(locked, field, clean[field])
        locked.save(update_fields=changed)
        detail: dict[str, Any] = {
            "changed": shown,
            "before": before,
            "after": {f: _plain(clean[f]) for f in shown},
        }
        if _SECRET in changed:
            # That the secret changed is worth knowing; what it is, is not.
            detail["secret_changed"] = True
        event_record(
            kind="channel_updated",
            subject=locked,
            by=by,
            from_state=_state(locked.enabled),
            to_state=_state(locked.enabled),
            detail=detail,
        )
    return locked


def _same(field: str, old: Any, new: Any) -> bool:
    if field == "recipients":  # the same addresses, however they were laid out
        return _recipients_clean(old) == _recipients_clean(new)
    return old == new


def _plain(value: Any) -> Any:
    return value.key if isinstance(value, Audience) else value


def channel_set_enabled(*, channel: Channel, enabled: bool, by: Any) -> bool:
    """Switch a channel on or off. False (and nothing recorded) when it already was."""
    with transaction.atomic():
        # A conditional update: of two people flipping it at once, one records the change.
        changed = (
            Channel.objects.filter(pk=channel.pk).exclude(enabled=enabled).update(enabled=enabled)
        )
        channel.enabled = enabled
        if not changed:
            return False
        event_record(
            kind="channel_enabled" if enabled else "channel_disabled",
            subject=channel,
            by=by,
            from_state=_state(not enabled),
            to_state=_state(enabled),
        )
    return True
