"""ssh_command_run against a real OpenSSH server on a loopback port (tests/upgrades/ssh_server.py).

The server runs on this machine, so the remote processes' pids written by the commands are
checked in /proc: gone, or a zombie waiting for an init that may never reap it.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.upgrades.ssh_server import SshServer, process_gone, sshd_running
from upgrades.runners import SshTarget, ssh_command_run
from upgrades.runners.ssh import host_key_parse, key_fingerprint, remote_command


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    with sshd_running(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _target(server: SshServer, **changes: str) -> SshTarget:
    values = {
        "address": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "host_key": server.host_key_line,
        "private_key_file": str(server.client_key),
        **changes,
    }
    return SshTarget(**values)


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_ssh_command_run__command_prints_in_two_parts__output_arrives_live(sshd, tmp_path):
    # Given a command that prints "first", then waits until a file exists to print "second"
    gate = tmp_path / "gate"
    script = (
        f"echo first; while [ ! -e {shlex.quote(str(gate))} ]; do sleep 0.05; done; echo second"
    )
    chunks: list[str] = []

    def on_output(text: str) -> None:
        chunks.append(text)
        if "first" in "".join(chunks):
            gate.touch()  # only output that arrives while it runs lets it finish

    # When it runs on the host
    result = ssh_command_run(
        target=_target(sshd), argv=_sh(script), timeout_s=20, on_output=on_output
    )

    # Then "first" arrived before it ended (else it would have timed out), and it passed
    assert result.outcome == "passed", result.reason
    assert result.exit_code == 0
    assert result.output == "first\nsecond\n"
    assert "".join(chunks) == "first\nsecond\n"
    assert f"on {sshd.user}@127.0.0.1:{sshd.port}" in result.reason


@pytest.mark.parametrize(("script", "outcome", "code"), [
    ("exit 0", "passed", 0),
    ("echo broke >&2; exit 3", "failed", 3),
])  # fmt: skip
def test_ssh_command_run__exit_code__maps_to_passed_or_failed(sshd, script, outcome, code):
    result = ssh_command_run(target=_target(sshd), argv=_sh(script), timeout_s=20)

    assert result.outcome == outcome
    assert result.exit_code == code
    if code:
        assert "exited with code 3" in result.reason
        assert result.reason.endswith(": broke")  # stderr comes merged with the output


def test_ssh_command_run__killed_by_a_signal__failed_and_says_so(sshd):
    result = ssh_command_run(target=_target(sshd), argv=_sh("kill -KILL $$"), timeout_s=20)

    assert result.outcome == "failed"
    assert result.exit_code is None
    assert "killed by a signal" in result.reason


def test_ssh_command_run__arguments_with_spaces_quotes_and_shell_characters__arrive_intact(sshd):
    tricky = ['it\'s a "quoted" arg', "$HOME `id` $(id) *", "semi; colon && pipe | x", "", "\\n"]

    result = ssh_command_run(
        target=_target(sshd), argv=["printf", "<%s>\\n", *tricky], timeout_s=20
    )

    assert result.outcome == "passed", result.reason
    assert result.output.splitlines() == [f"<{arg}>" for arg in tricky]


def test_ssh_command_run__working_folder_and_variables__given_to_the_command(sshd, tmp_path):
    result = ssh_command_run(
        target=_target(sshd),
        argv=_sh('pwd; echo "$GREETING|$MYCELIA_RUN_KEY"'),
        cwd=str(tmp_path),
        env={"GREETING": "hello 'world'"},
        run_key="run-7",
        timeout_s=20,
    )

    assert result.outcome == "passed", result.reason
    assert result.output == f"{tmp_path}\nhello 'world'|run-7\n"


def test_ssh_command_run__missing_working_folder__fails_naming_it(sshd, tmp_path):
    result = ssh_command_run(
        target=_target(sshd), argv=["true"], cwd=str(tmp_path / "nowhere"), timeout_s=20
    )

    assert result.outcome == "failed"
    assert result.exit_code == 126
    assert "nowhere" in result.reason


def test_ssh_command_run__output_over_the_cap__kept_up_to_the_cap(sshd):
    result = ssh_command_run(
        target=_target(sshd), argv=_sh("yes 0123456789 | head -c 50000"), timeout_s=20,
        output_cap_bytes=1000,
    )  # fmt: skip

    assert result.outcome == "passed", result.reason
    assert result.truncated
    assert len(result.output) == 1000


def _tree_script(folder: Path, *, ignore_term: bool = False) -> str:
    """A command with a grandchild; it writes both pids, then says "ready" and waits."""
    trap = "trap '' TERM; " if ignore_term else ""
    return (
        f"{trap}echo $$ > {folder}/leader.pid; "
        f"sh -c '{trap}sleep 1000' & echo $! > {folder}/child.pid; echo ready; wait"
    )


def _pids(folder: Path) -> list[int]:
    return [int((folder / f"{name}.pid").read_text()) for name in ("leader", "child")]


def test_ssh_command_run__time_limit__remote_process_tree_killed(sshd, tmp_path):
    # Given a command with a grandchild that would run for 1000 s
    # When its time limit passes
    result = ssh_command_run(
        target=_target(sshd), argv=_sh(_tree_script(tmp_path)), timeout_s=2, kill_grace_s=0.5
    )

    # Then the run timed out and the command and its grandchild are gone on the host
    assert result.outcome == "timed_out", result.reason
    assert "did not finish within 2 s and was killed" in result.reason
    assert result.output.startswith("ready")
    pids = _pids(tmp_path)
    assert all(process_gone(pid) for pid in pids), pids


def test_ssh_command_run__cancelled__remote_process_tree_killed_even_one_ignoring_sigterm(
    sshd, tmp_path
):
    # Given a command whose processes ignore SIGTERM, cancelled as soon as it says "ready"
    seen: list[str] = []

    # When it is asked to stop
    result = ssh_command_run(
        target=_target(sshd),
        argv=_sh(_tree_script(tmp_path, ignore_term=True)),
        timeout_s=60,
        kill_grace_s=0.5,
        on_output=seen.append,
        should_stop=lambda: "ready" in "".join(seen),
    )

    # Then it is cancelled and SIGKILL, after the grace, ended the whole tree on the host
    assert result.outcome == "cancelled", result.reason
    pids = _pids(tmp_path)
    assert all(process_gone(pid) for pid in pids), pids


def test_ssh_command_run__command_leaves_a_straggler__straggler_stopped(sshd, tmp_path):
    # Given a command that starts a background sleeper and exits at once
    script = f"sleep 1000 & echo $! > {tmp_path}/straggler.pid; exit 0"

    result = ssh_command_run(target=_target(sshd), argv=_sh(script), timeout_s=20,
                             kill_grace_s=0.5)  # fmt: skip

    # Then nothing it started outlives it
    assert result.outcome == "passed", result.reason
    assert process_gone(int((tmp_path / "straggler.pid").read_text()))


def test_ssh_command_run__cancelled_at_its_first_word__remote_process_still_killed(sshd):
    # Given a command cancelled as soon as its first output arrives (stdout may arrive before
    # the stderr line that names its process group)
    seen: list[str] = []

    result = ssh_command_run(
        target=_target(sshd),
        argv=_sh("echo pid=$$; exec sleep 1000"),
        timeout_s=60,
        kill_grace_s=0.5,
        on_output=seen.append,
        should_stop=lambda: bool(seen),
    )

    # Then it is cancelled and the remote process is gone all the same
    assert result.outcome == "cancelled", result.reason
    assert process_gone(int(result.output.split("pid=")[1]))


def test_ssh_command_run__host_shows_another_key__fails_naming_the_change(sshd, tmp_path):
    # Given a host whose configured key is not the one the server shows (it changed)
    expected = sshd.other_host_key_line()
    marker = tmp_path / "ran"

    result = ssh_command_run(
        target=_target(sshd, host_key=expected), argv=["touch", str(marker)], timeout_s=20
    )

    # Then nothing runs, and the reason names the change and both fingerprints
    assert result.outcome == "error"
    assert "has changed" in result.reason
    assert key_fingerprint(host_key_parse(expected)) in result.reason
    assert key_fingerprint(host_key_parse(sshd.host_key_line)) in result.reason
    assert not marker.exists()


def test_ssh_command_run__host_key_not_a_key__error_says_what_a_key_looks_like(sshd):
    result = ssh_command_run(
        target=_target(sshd, host_key="not a key"), argv=["true"], timeout_s=20
    )

    assert result.outcome == "error"
    assert "ssh-ed25519" in result.reason


def test_ssh_command_run__key_not_authorized__error_says_the_login_was_refused(sshd, tmp_path):
    stranger = tmp_path / "stranger"
    stranger_server = SshServer(sshd.folder, sshd.port, sshd.user, sshd.host_key_line, stranger)
    from tests.upgrades.ssh_server import _keygen

    _keygen(stranger)

    result = ssh_command_run(target=_target(stranger_server), argv=["true"], timeout_s=20)

    assert result.outcome == "error"
    assert "refused the private key" in result.reason
    assert "authorized_keys" in result.reason


def test_ssh_command_run__private_key_from_a_file_variable__logs_in(sshd, monkeypatch):
    monkeypatch.setenv("TEST_SSH_KEY_FILE", str(sshd.client_key))

    result = ssh_command_run(
        target=_target(sshd, private_key_file="TEST_SSH_KEY_FILE"), argv=["true"], timeout_s=20
    )

    assert result.outcome == "passed", result.reason


def test_ssh_command_run__file_variable_unset__error_names_the_variable(sshd, monkeypatch):
    monkeypatch.delenv("TEST_SSH_KEY_FILE", raising=False)

    result = ssh_command_run(
        target=_target(sshd, private_key_file="TEST_SSH_KEY_FILE"), argv=["true"], timeout_s=20
    )

    assert result.outcome == "error"
    assert "TEST_SSH_KEY_FILE is not set" in result.reason


def test_ssh_command_run__nobody_listens__error_names_the_host(sshd):
    from tests.upgrades.ssh_server import _free_port

    port = _free_port()
    result = ssh_command_run(target=_target(sshd, port=port), argv=["true"], timeout_s=5)

    assert result.outcome == "error"
    assert f"Cannot connect to {sshd.user}@127.0.0.1:{port}" in result.reason


def test_remote_command__every_piece_quoted__no_shell_string_from_input():
    command = remote_command(["echo", "a b; rm -rf /"], cwd="/srv/my app", env={"X": "$(id)"})

    assert shlex.split(command)[-2:] == ["echo", "a b; rm -rf /"]
    assert "'X=$(id)'" in command
    assert "'/srv/my app'" in command
