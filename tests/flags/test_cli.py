"""`manage.py flags` and `manage.py create_api_token`."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from flags.models import ApiToken, Flag, FlagEvent, FlagState, Via
from flags.services import api_token_authenticate


def _run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _enabled(flag, env="production") -> bool:
    return FlagState.objects.get(flag=flag, environment__key=env).enabled


def test_flags_enable__known_flag__on_and_recorded_as_cli(flag):
    out = _run("flags", "--enable", flag.key, "--reason", "launch")
    assert "now on in production" in out
    assert _enabled(flag)
    event = FlagEvent.objects.filter(flag=flag).first()
    assert (event.via, event.actor, event.reason) == (Via.CLI, None, "launch")


def test_flags_disable__with_env_and_user__only_that_environment(flag, manager):
    _run("flags", "--enable", flag.key, "--env", "staging")
    _run("flags", "--disable", flag.key, "--env", "staging", "--user", manager.username)
    assert not _enabled(flag, "staging")
    assert FlagEvent.objects.filter(flag=flag).first().actor == manager


def test_flags_enable__twice__second_says_nothing_changed(flag):
    _run("flags", "--enable", flag.key)
    assert "nothing changed" in _run("flags", "--enable", flag.key)
    assert FlagEvent.objects.filter(flag=flag, kind="enabled").count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--enable", "ghost"], "Unknown flag 'ghost'"),
        (["--disable", "ghost"], "Unknown flag 'ghost'"),
        (["--enable", "new-checkout", "--env", "moon"], "Unknown environment 'moon'"),
        (["--enable", "new-checkout", "--user", "nobody"], "Unknown user 'nobody'"),
        (["--create", "Bad Name"], "Invalid flag name"),
    ],
)
def test_flags__unknown_flag_or_environment__command_error(flag, args, message):
    with pytest.raises(CommandError, match=message):
        _run("flags", *args)
    assert not _enabled(flag)


def test_flags__unknown_flag__exits_non_zero_with_one_line(flag, capsys):
    from flags.management.commands.flags import Command

    # run_from_argv is the path `manage.py flags ...` takes: CommandError becomes exit status 1.
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "flags", "--enable", "no-such-flag"])
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == "CommandError: Unknown flag 'no-such-flag'."


def test_flags_create_list_show__flag_lifecycle__printed(environments):
    assert "Created beta-x" in _run("flags", "--create", "beta-x", "--description", "Beta")
    assert Flag.objects.filter(key="beta-x").exists()
    _run("flags", "--enable", "beta-x", "--env", "staging", "--reason", "try")
    listing = _run("flags", "--list")
    assert "beta-x" in listing and "production" in listing
    shown = _run("flags", "--show", "beta-x")
    assert "staging: on" in shown and "production: off" in shown
    assert "Turned on in staging" in shown and "try" in shown


def test_create_api_token__user__prints_only_a_working_token(manager):
    out = _run("create_api_token", manager.username, "--name", "ci")
    plaintext = out.strip()
    assert "\n" not in plaintext
    token = api_token_authenticate(plaintext=plaintext)
    assert token is not None and (token.user, token.name, token.scope) == (manager, "ci", "user")


def test_create_api_token__evaluation_scope__bound_to_environment(manager, staging_env):
    _run("create_api_token", manager.username, "--scope", "evaluation", "--env", "staging")
    assert ApiToken.objects.get().environment == staging_env
    with pytest.raises(CommandError, match="needs an environment"):
        _run("create_api_token", manager.username, "--scope", "evaluation")
    with pytest.raises(CommandError, match="Unknown user"):
        _run("create_api_token", "ghost")
