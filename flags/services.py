"""Writes to flags. The UI, the API, the CLI and the upgrades app all come through here.

Every state change locks its FlagState row, writes the row and its FlagEvent and bumps the
flag revision in one transaction, so the history always ends in the current state.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from flags.evaluation import RuleError, rules_validate
from flags.exceptions import (
    EnvironmentNotFound,
    FlagAlreadyExists,
    FlagArchived,
    FlagNotFound,
    InvalidFlagInput,
)
from flags.models import (
    ApiToken,
    ApiTokenScope,
    EventKind,
    Flag,
    FlagEnvironment,
    FlagEvent,
    FlagRevision,
    FlagState,
    Via,
    tags_normalise,
    validate_flag_key,
)

TOKEN_PREFIX = "mfo_"  # "Mycelia flags ops": makes a leaked token easy to grep for
TOKEN_LAST_USED_EVERY = 60  # seconds: last_used_at is written at most this often per token


@dataclass(frozen=True)
class StateChange:
    changed: bool
    state: FlagState
    event: FlagEvent | None


def flag_revision_bump() -> None:
    """Call inside the transaction of a flag change: evaluating processes reload on commit."""
    updated = FlagRevision.objects.filter(pk=1).update(
        revision=secrets.token_hex(8), changed_at=timezone.now()
    )
    if not updated:
        try:
            with transaction.atomic():
                FlagRevision.objects.create(pk=1, revision=secrets.token_hex(8))
        except IntegrityError:  # another process made the row first
            FlagRevision.objects.filter(pk=1).update(revision=secrets.token_hex(8))


def flag_environment_ensure(*, key: str, name: str) -> FlagEnvironment:
    """Create or rename the environment `key`, and give every flag a (off) state there."""
    with transaction.atomic():
        environment, created = FlagEnvironment.objects.get_or_create(
            key=key, defaults={"name": name}
        )
        if not created and environment.name != name:
            environment.name = name
            environment.save(update_fields=["name"])
        FlagState.objects.bulk_create(
            [FlagState(flag=flag, environment=environment) for flag in Flag.objects.all()],
            ignore_conflicts=True,
        )
        flag_revision_bump()
    return environment


def flag_create(
    *,
    key: str,
    description: str = "",
    by: Any | None,
    via: str,
    tags: str | list[str] = "",
    owner: Any | None = None,
) -> Flag:
    """A new flag starts off in every environment."""
    key = (key or "").strip()
    try:
        validate_flag_key(key)
    except ValidationError as exc:
        raise InvalidFlagInput(f"Invalid flag name '{key}': {' '.join(exc.messages)}") from exc
    if len(key) > 100:
        raise InvalidFlagInput("Flag names are at most 100 characters.")
    try:
        with transaction.atomic():
            flag = Flag.objects.create(
                key=key,
                description=description.strip(),
                tags=tags_normalise(tags),
                owner=owner if owner is not None else by,
            )
            FlagState.objects.bulk_create(
                [FlagState(flag=flag, environment=env) for env in FlagEnvironment.objects.all()]
            )
            FlagEvent.objects.create(
                flag=flag,
                kind=EventKind.CREATED,
                actor=by,
                via=via,
                after={"key": key, "description": flag.description, "tags": flag.tags},
            )
            flag_revision_bump()
    except IntegrityError as exc:
        raise FlagAlreadyExists(key) from exc
    return flag


def _state_for_update(flag: Flag, environment: FlagEnvironment) -> FlagState:
    # The row lock serialises concurrent changes of one flag in one environment.
    state, _ = FlagState.objects.select_for_update().get_or_create(
        flag=flag, environment=environment
    )
    return state


def _record(
    *,
    state: FlagState,
    before: dict[str, Any],
    kind: str,
    by: Any | None,
    via: str,
    reason: str,
    source: tuple[str, str] = ("", ""),
) -> FlagEvent:
    state.version += 1
    state.updated_at = timezone.now()
    state.save()
    after = state.snapshot() | {"version": state.version}
    event = FlagEvent.objects.create(
        flag_id=state.flag_id,
        environment_id=state.environment_id,
        kind=kind,
        actor=by,
        via=via,
        at=state.updated_at,
        before=before,
        after=after,
        reason=reason or "",
        source_url=source[0],
        source_label=source[1],
    )
    flag_revision_bump()
    return event


def _check_percentage(value: int | None) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100
    ):
        raise InvalidFlagInput("Rollout percentage must be a whole number from 0 to 100.")


def flag_set_state(
    *,
    flag: Flag,
    environment: FlagEnvironment,
    on: bool,
    by: Any | None,
    via: str,
    reason: str = "",
    rollout_percentage: int | None = None,
    source: tuple[str, str] = ("", ""),
) -> StateChange:
    """Turn `flag` on or off in `environment`. Setting the state it already has records nothing.
    `source` is (url, label) of whatever outside the flags app asked for the change."""
    _check_percentage(rollout_percentage)
    if on and flag.is_archived:
        raise FlagArchived(flag.key)
    with transaction.atomic():
        state = _state_for_update(flag, environment)
        before = state.snapshot()
        state.enabled = on
        if rollout_percentage is not None:
            state.rollout_percentage = rollout_percentage
        if state.snapshot() == before:
            return StateChange(changed=False, state=state, event=None)
        if before["enabled"] != on:
            kind = EventKind.ENABLED if on else EventKind.DISABLED
        else:
            kind = EventKind.TARGETING
        event = _record(
            state=state, before=before, kind=kind, by=by, via=via, reason=reason, source=source
        )
    return StateChange(changed=True, state=state, event=event)


def flag_set_targeting(
    *,
    flag: Flag,
    environment: FlagEnvironment,
    rollout_percentage: int,
    rules: list[dict[str, Any]],
    by: Any | None,
    via: str,
    reason: str = "",
) -> StateChange:
    """Replace the rollout percentage and the rules of `flag` in `environment`."""
    _check_percentage(rollout_percentage)
    try:
        clean_rules = rules_validate(rules)
    except RuleError as exc:
        raise InvalidFlagInput(str(exc)) from exc
    if flag.is_archived:
        raise FlagArchived(flag.key)
    with transaction.atomic():
        state = _state_for_update(flag, environment)
        before = state.snapshot()
        state.rollout_percentage = rollout_percentage
        state.rules = clean_rules
        if state.snapshot() == before:
            return StateChange(changed=False, state=state, event=None)
        event = _record(
            state=state, before=before, kind=EventKind.TARGETING, by=by, via=via, reason=reason
        )
    return StateChange(changed=True, state=state, event=event)


def flag_rollback(
    *, flag_key: str, environment_key: str, by: Any | None, reason: str
) -> StateChange:
    """Turn the flag off at once in that environment (the playbook's immediate rollback)."""
    flag = Flag.objects.filter(key=flag_key).first()
    if flag is None:
        raise FlagNotFound(flag_key)
    environment = FlagEnvironment.objects.filter(key=environment_key).first()
    if environment is None:
        raise EnvironmentNotFound(environment_key)
    return flag_set_state(
        flag=flag, environment=environment, on=False, by=by, via=Via.ROLLBACK, reason=reason
    )


def flag_switch_by_key(
    *,
    flag_key: str,
    environment_key: str,
    on: bool,
    by: Any | None,
    reason: str,
    via: str = "",
    source: tuple[str, str] = ("", ""),
) -> bool:
    """Turn a flag on (an upgrade's deployment) or off (its rollback), by plain keys, for the
    upgrades app. Returns whether anything changed; raises naming an unknown flag or env."""
    flag = Flag.objects.filter(key=flag_key).first()
    if flag is None:
        raise FlagNotFound(flag_key)
    environment = FlagEnvironment.objects.filter(key=environment_key).first()
    if environment is None:
        raise EnvironmentNotFound(environment_key)
    via = via or (Via.UPGRADE if on else Via.ROLLBACK)
    return flag_set_state(
        flag=flag, environment=environment, on=on, by=by, via=via, reason=reason, source=source
    ).changed


def flag_archive(*, flag: Flag, by: Any | None, via: str, reason: str = "") -> bool:
    """Archive the flag: it stops evaluating (FLAG_NOT_FOUND) and leaves the lists.
    Returns False when it was already archived."""
    with transaction.atomic():
        locked = Flag.objects.select_for_update().get(pk=flag.pk)
        if locked.archived_at is not None:
            flag.archived_at = locked.archived_at
            return False
        locked.archived_at = flag.archived_at = timezone.now()
        locked.save(update_fields=["archived_at"])
        FlagEvent.objects.create(
            flag=locked,
            kind=EventKind.ARCHIVED,
            actor=by,
            via=via,
            at=locked.archived_at,
            before={"archived": False},
            after={"archived": True},
            reason=reason or "",
        )
        flag_revision_bump()
    return True


def _token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def api_token_create(
    *,
    user: Any,
    name: str,
    scope: str,
    environment: FlagEnvironment | None = None,
) -> tuple[ApiToken, str]:
    """Make a token and return it with its plaintext, which is shown once and never stored."""
    name = (name or "").strip()
    if not name:
        raise InvalidFlagInput("Give the token a name, so you can tell it apart later.")
    if scope not in ApiTokenScope.values:
        raise InvalidFlagInput(f"Unknown token scope '{scope}': use user or evaluation.")
    if scope == ApiTokenScope.EVALUATION and environment is None:
        raise InvalidFlagInput("An evaluation token needs an environment.")
    if scope == ApiTokenScope.USER and environment is not None:
        raise InvalidFlagInput("A user token acts in every environment; leave environment empty.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=plaintext[:12],
        token_hash=_token_hash(plaintext),
        scope=scope,
        environment=environment,
    )
    return token, plaintext


def api_token_revoke(*, token: ApiToken) -> bool:
    """Returns False when it was already revoked."""
    return bool(
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
    )


def api_token_authenticate(*, plaintext: str) -> ApiToken | None:
    """The live token for this plaintext, or None. Notes its use at most once a minute."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("user", "environment")
        .filter(token_hash=_token_hash(plaintext), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if (
        token.last_used_at is None
        or (now - token.last_used_at).total_seconds() >= TOKEN_LAST_USED_EVERY
    ):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def flag_availability(*, flag_key: str, environment_key: str) -> str:
    """Why an upgrade could not switch `flag_key` in `environment_key`; "" when it can."""
    if not Flag.objects.filter(key=flag_key).exists():
        return f"There is no feature flag “{flag_key}”: create it on the flags page first."
    if not FlagEnvironment.objects.filter(key=environment_key).exists():
        return f"The flag environment “{environment_key}” does not exist."
    return ""
