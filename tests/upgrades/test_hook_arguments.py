"""A hook's arguments with braces the set-up form would refuse (saved before it checked them, or
from the Django admin): the run ends saying which argument and why, never a crash, and the page
shows the same. Through the set-up form they are refused up front (tests/setup)."""

from __future__ import annotations

import pytest

from tests.upgrades.test_runs import _run_step
from upgrades import selectors
from upgrades.models import EnvironmentOperation, HookArgumentError, RunStatus


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


def test_argv_filled__known_placeholders__filled_argument_by_argument():
    hook = EnvironmentOperation(argv=["deploy", "--to={version}", "{output_path}", "{{literal}}"])
    filled = hook.argv_filled({"version": "1.5.0", "output_path": "/tmp/a b"})
    assert filled == ["deploy", "--to=1.5.0", "/tmp/a b", "{literal}"]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["sh", "-c", "{ echo hi; "], "unbalanced brace"),
        (["sh", "-c", "echo }"], "unbalanced brace"),
        (["restore", "{backup_path}"], "names {backup_path}, which this operation does not give"),
        (["run", "{0}"], "names {0}"),
    ],
)
def test_argv_filled__brace_it_cannot_fill__error_names_the_argument(argv, said):
    hook = EnvironmentOperation(argv=argv)
    with pytest.raises(HookArgumentError) as caught:
        hook.argv_filled({"version": "1.5.0"})
    assert said in caught.value.message
    assert argv[-1] in caught.value.message


def test_run__hook_argument_with_a_stray_brace__error_naming_it_and_nothing_run(
    minor, manager, demo_environment
):
    # Given a diagnostics hook saved with a shell-style brace group (refused by the set-up form)
    EnvironmentOperation.objects.filter(environment=demo_environment, operation="diagnose").update(
        argv=["sh", "-c", "{ echo ran; "]
    )

    # When a release manager runs the diagnostics check
    run = _run_step(minor, "Run diagnostics", manager, phase_order=1)

    # Then it ends as an error that names the argument and who fixes it, and nothing ran
    assert run.status == RunStatus.ERROR
    assert "{ echo ran; " in run.reason and "unbalanced brace" in run.reason
    assert "under Set-up" in run.reason
    assert "ran" not in (run.output or "")


def test_runs_here__hook_argument_with_a_stray_brace__page_says_it_is_not_runnable(
    demo_environment,
):
    EnvironmentOperation.objects.filter(environment=demo_environment, operation="diagnose").update(
        argv=["sh", "-c", "echo }"]
    )
    environment = type(demo_environment).objects.get(pk=demo_environment.pk)
    text = selectors._hook_text(environment, "diagnose", {})
    assert text.startswith("Not runnable as set up:") and "unbalanced brace" in text
