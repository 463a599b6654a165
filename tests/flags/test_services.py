"""Flag services: every change is recorded once, a no-op records nothing."""

from __future__ import annotations

import pytest

from flags import services
from flags.exceptions import (
    EnvironmentNotFound,
    FlagAlreadyExists,
    FlagArchived,
    FlagNotFound,
    InvalidFlagInput,
)
from flags.models import ApiToken, EventKind, Flag, FlagEvent, FlagRevision, FlagState, Via


def _state(flag, env) -> FlagState:
    return FlagState.objects.get(flag=flag, environment=env)


def test_flag_create__with_environments__off_everywhere_and_recorded(environments, manager):
    flag = services.flag_create(
        key="beta.search_v2", description="d", by=manager, via=Via.CLI, tags="Beta, search,beta"
    )
    assert flag.tags == "beta,search"
    assert flag.owner == manager
    assert sorted(
        FlagState.objects.filter(flag=flag).values_list("environment__key", "enabled")
    ) == [("production", False), ("staging", False)]
    event = FlagEvent.objects.get(flag=flag)
    assert (event.kind, event.via, event.actor) == (EventKind.CREATED, Via.CLI, manager)


@pytest.mark.parametrize(
    "key", ["Upper", "has space", "-leading", "", "new", "tokens", "enable", "a/b"]
)
def test_flag_create__invalid_key__refused(environments, manager, key):
    with pytest.raises(InvalidFlagInput):
        services.flag_create(key=key, by=manager, via=Via.UI)
    assert not Flag.objects.exists()


def test_flag_create__duplicate_key__refused(flag, manager):
    with pytest.raises(FlagAlreadyExists):
        services.flag_create(key=flag.key, by=manager, via=Via.UI)


def test_flag_set_state__turn_on__state_event_and_revision_change_together(
    flag, production, manager
):
    revision_before = FlagRevision.objects.get().revision
    change = services.flag_set_state(
        flag=flag, environment=production, on=True, by=manager, via=Via.API, reason="launch"
    )
    assert change.changed
    state = _state(flag, production)
    assert state.enabled and state.version == 1
    event = change.event
    assert event.kind == EventKind.ENABLED
    assert event.before["enabled"] is False
    assert event.after == {"enabled": True, "rollout_percentage": 100, "rules": [], "version": 1}
    assert (event.actor, event.via, event.reason) == (manager, Via.API, "launch")
    assert FlagRevision.objects.get().revision != revision_before


def test_flag_set_state__already_in_that_state__nothing_changed_nothing_recorded(
    flag, production, manager
):
    events_before = FlagEvent.objects.count()
    revision_before = FlagRevision.objects.get().revision
    change = services.flag_set_state(
        flag=flag, environment=production, on=False, by=manager, via=Via.UI, reason=""
    )
    assert not change.changed and change.event is None
    assert FlagEvent.objects.count() == events_before
    assert _state(flag, production).version == 0
    assert FlagRevision.objects.get().revision == revision_before


def test_flag_set_state__with_rollout__percentage_kept_and_recorded(flag, production, manager):
    services.flag_set_state(
        flag=flag, environment=production, on=True, by=manager, via=Via.UI, rollout_percentage=25
    )
    # Same on/off, new percentage: still a change, recorded as targeting.
    change = services.flag_set_state(
        flag=flag, environment=production, on=True, by=manager, via=Via.UI, rollout_percentage=50
    )
    assert change.changed and change.event.kind == EventKind.TARGETING
    assert _state(flag, production).rollout_percentage == 50


@pytest.mark.parametrize("percentage", [-1, 101, True])
def test_flag_set_state__bad_percentage__refused(flag, production, manager, percentage):
    with pytest.raises(InvalidFlagInput):
        services.flag_set_state(
            flag=flag,
            environment=production,
            on=True,
            by=manager,
            via=Via.UI,
            rollout_percentage=percentage,
        )
    assert not _state(flag, production).enabled


def test_flag_set_targeting__invalid_rule__refused_with_its_number(flag, production, manager):
    rules = [
        {"attribute": "country", "operator": "in", "values": ["nl"]},
        {"attribute": "plan", "operator": "like", "value": "x"},
    ]
    with pytest.raises(InvalidFlagInput, match="Rule 2"):
        services.flag_set_targeting(
            flag=flag,
            environment=production,
            rollout_percentage=10,
            rules=rules,
            by=manager,
            via=Via.UI,
        )
    assert _state(flag, production).rules == []


def test_flag_rollback__on_flag__off_at_once_via_rollback(flag, production, manager):
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)
    change = services.flag_rollback(
        flag_key=flag.key, environment_key="production", by=None, reason="errors up"
    )
    assert change.changed
    assert not _state(flag, production).enabled
    assert (change.event.via, change.event.reason, change.event.actor) == (
        Via.ROLLBACK,
        "errors up",
        None,
    )


def test_flag_rollback__unknown_flag_or_environment__named_in_error(flag):
    with pytest.raises(FlagNotFound, match="nope"):
        services.flag_rollback(flag_key="nope", environment_key="production", by=None, reason="")
    with pytest.raises(EnvironmentNotFound, match="moon"):
        services.flag_rollback(flag_key=flag.key, environment_key="moon", by=None, reason="")


def test_flag_archive__archived_flag__cannot_be_turned_on_but_archive_twice_is_noop(
    flag, production, manager
):
    assert services.flag_archive(flag=flag, by=manager, via=Via.UI, reason="done")
    assert not services.flag_archive(flag=flag, by=manager, via=Via.UI)
    assert FlagEvent.objects.filter(flag=flag, kind=EventKind.ARCHIVED).count() == 1
    with pytest.raises(FlagArchived):
        services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.UI)


def test_flag_environment_ensure__new_environment_and_rename__states_for_existing_flags(
    flag, manager
):
    env = services.flag_environment_ensure(key="canary", name="Canary")
    assert FlagState.objects.filter(flag=flag, environment=env, enabled=False).exists()
    again = services.flag_environment_ensure(key="canary", name="Canary cluster")
    assert again.pk == env.pk and again.name == "Canary cluster"
    assert FlagState.objects.filter(environment=env).count() == 1


def test_api_token_create__user_scope__only_hash_stored_and_authenticates(manager):
    token, plaintext = services.api_token_create(user=manager, name="ci", scope="user")
    assert plaintext not in token.token_hash
    assert plaintext.startswith(token.prefix)
    assert services.api_token_authenticate(plaintext=plaintext) == token
    assert services.api_token_authenticate(plaintext=plaintext + "x") is None
    services.api_token_revoke(token=token)
    assert services.api_token_authenticate(plaintext=plaintext) is None


def test_api_token_authenticate__used_twice_within_a_minute__last_used_written_once(
    manager, django_assert_num_queries
):
    token, plaintext = services.api_token_create(user=manager, name="ci", scope="user")
    with django_assert_num_queries(2):  # lookup + last_used_at
        services.api_token_authenticate(plaintext=plaintext)
    with django_assert_num_queries(1):  # lookup only
        services.api_token_authenticate(plaintext=plaintext)
    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


@pytest.mark.parametrize(
    ("scope", "with_env"), [("evaluation", False), ("user", True), ("admin", False)]
)
def test_api_token_create__scope_and_environment_disagree__refused(
    manager, production, scope, with_env
):
    with pytest.raises(InvalidFlagInput):
        services.api_token_create(
            user=manager, name="x", scope=scope, environment=production if with_env else None
        )
