"""ssh_command_run against a real OpenSSH server on a loopback port (tests/upgrades/ssh_server.py).

The server runs on this machine, so the remote processes' pids written by the commands are
checked in /proc: gone, or a zombie waiting for an init that may never reap it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import posixpath
import shlex
import signal
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import pytest
from django.urls import reverse

from tests.integration.conftest import ROOT, wait_for
from tests.upgrades.ssh_server import SshServer, process_gone, sshd_running
from tests.upgrades.test_artifact_storage import _object, bucket, moto, s3_artifacts  # noqa: F401
from upgrades import services
from upgrades.models import (
    Artifact,
    CheckRun,
    EnvironmentHost,
    EnvironmentOperation,
    HookMode,
    HookTest,
    Operation,
    RunStatus,
)
from upgrades.runners import (
    RemoteFetch,
    RemoteUpload,
    SshTarget,
    remote_scratch_path,
    ssh_command_run,
    ssh_files,
)
from upgrades.runners.ssh import remote_command
from upgrades.runners.ssh_connect import host_key_parse, key_fingerprint
from upgrades.services import hook_tests


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


def _sh(script: str, *args: str) -> list[str]:
    return ["sh", "-c", script, *args]


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


# --- a file written on the host, brought back (a database backup's dump) -----------------------


def _fetch_into(kept: dict[str, bytes], path: str) -> RemoteFetch:
    def store(handle, size: int) -> str:
        kept["bytes"] = handle.read()
        kept["size"] = size
        return "kept"

    return RemoteFetch(path=path, store=store)


def test_ssh_command_run__fetch_file_written__store_reads_its_bytes_and_folder_removed(
    sshd, tmp_path
):
    # Given a command that writes 200 KiB of known bytes to the path it is given
    path = remote_scratch_path("dump.bin", tag="test", base=str(tmp_path))
    kept: dict[str, bytes] = {}

    result = ssh_command_run(
        target=_target(sshd),
        argv=_sh('head -c 204800 /dev/zero | tr "\\0" x > "$0"; ls -ld "$(dirname "$0")"', path),
        timeout_s=20,
        fetch=_fetch_into(kept, path),
    )

    # Then it passed, the store read exactly those bytes, and the folder (mode 700) is gone
    assert result.outcome == "passed", result.reason
    assert result.fetched == "kept"
    assert kept["bytes"] == b"x" * 204800 and kept["size"] == 204800
    assert result.output.startswith("drwx------")
    assert not Path(path).parent.exists()


@pytest.mark.parametrize(("script", "words"), [
    ("true", "wrote no file at"),
    (': > "$0"', "is empty"),
    ('mkdir "$0"', "is not a file"),
])  # fmt: skip
def test_ssh_command_run__fetch_finds_no_usable_file__failed_saying_so_folder_removed(
    sshd, script, words, tmp_path
):
    path = remote_scratch_path("dump.bin", tag="test", base=str(tmp_path))
    kept: dict[str, bytes] = {}

    result = ssh_command_run(
        target=_target(sshd), argv=_sh(script, path), timeout_s=20, fetch=_fetch_into(kept, path)
    )

    assert result.outcome == "failed", result.reason
    assert words in result.reason and path in result.reason
    assert "nothing was kept" in result.reason
    assert result.fetched is None and not kept
    assert not Path(path).parent.exists()


def test_ssh_command_run__fetch_and_store_fails__error_naming_the_storage(sshd, tmp_path):
    path = remote_scratch_path("dump.bin", tag="test", base=str(tmp_path))

    def store(handle, size: int) -> None:
        raise OSError("the bucket is full")

    result = ssh_command_run(
        target=_target(sshd), argv=_sh('echo data > "$0"', path), timeout_s=20,
        fetch=RemoteFetch(path=path, store=store),
    )  # fmt: skip

    assert result.outcome == "error"
    assert "could not be copied into the artifacts storage (the bucket is full)" in result.reason
    assert not Path(path).parent.exists()


def test_ssh_command_run__fetch_and_command_times_out__nothing_stored_folder_removed(
    sshd, tmp_path
):
    path = remote_scratch_path("dump.bin", tag="test", base=str(tmp_path))
    kept: dict[str, bytes] = {}

    result = ssh_command_run(
        target=_target(sshd), argv=_sh('echo partial > "$0"; sleep 1000', path), timeout_s=2,
        kill_grace_s=0.5, fetch=_fetch_into(kept, path),
    )  # fmt: skip

    assert result.outcome == "timed_out", result.reason
    assert not kept
    assert not Path(path).parent.exists()


@pytest.mark.parametrize("path", ["/etc/passwd", "/var/tmp/dump", "relative/mycelia-x/f",
                                  "/var/tmp/mycelia-x/../../etc/f"])  # fmt: skip
def test_ssh_command_run__fetch_path_not_in_a_run_folder__refused_before_connecting(sshd, path):
    result = ssh_command_run(
        target=_target(sshd), argv=["true"], timeout_s=20, fetch=_fetch_into({}, path)
    )

    assert result.outcome == "error"
    assert "is not a file in a folder of its own" in result.reason


def test_ssh_command_run__fetch_folder_already_there__not_run_and_folder_left_alone(sshd, tmp_path):
    # Given a path whose folder someone made already (the runner removes only what it made)
    folder = tmp_path / "mycelia-taken"
    folder.mkdir()
    (folder / "theirs").write_text("keep me")
    marker = tmp_path / "ran"

    result = ssh_command_run(
        target=_target(sshd), argv=["touch", str(marker)], timeout_s=20,
        fetch=_fetch_into({}, str(folder / "dump.bin")),
    )  # fmt: skip

    assert result.outcome == "error"
    assert "was not run" in result.reason and "could not be made" in result.reason
    assert not marker.exists()
    assert (folder / "theirs").read_text() == "keep me"


# --- a file put on the host before the command (a database restore's backup) --------------------


def _upload_of(local: Path, path: str, size: int | None = None) -> RemoteUpload:
    return RemoteUpload(path=path, local=str(local), size=local.stat().st_size if size is None
                        else size)  # fmt: skip


def test_ssh_command_run__upload__bytes_arrive_exactly_streamed_and_folder_removed(sshd, tmp_path):
    # Given 16 MiB of random bytes on the worker, for a command that hashes what it is given
    local = tmp_path / "worker" / "backup.dump"
    local.parent.mkdir()
    local.write_bytes(os.urandom(16 * 1024 * 1024))
    path = remote_scratch_path("backup.dump", tag="test", base=str(tmp_path))

    # When it runs with the file put on the host first
    tracemalloc.start()
    try:
        result = ssh_command_run(
            target=_target(sshd), timeout_s=60, upload=_upload_of(local, path),
            argv=_sh('ls -ld "$(dirname "$0")"; sha256sum "$0"; stat -c %s "$0"', path),
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then the host had exactly those bytes, in a private folder, removed afterwards; and the
    # worker never held the file in memory
    assert result.outcome == "passed", result.reason
    listing, digest, size = result.output.splitlines()
    assert listing.startswith("drwx------")
    assert digest.split()[0] == hashlib.sha256(local.read_bytes()).hexdigest()
    assert int(size) == local.stat().st_size
    assert not Path(path).parent.exists()
    assert peak < 6 * 1024 * 1024, f"peak {peak} bytes"


@pytest.mark.parametrize(("script", "timeout_s", "outcome"), [
    ("exit 3", 20, "failed"),
    ("sleep 1000", 3, "timed_out"),
])  # fmt: skip
def test_ssh_command_run__upload_and_command_fails_or_times_out__folder_removed(
    sshd, tmp_path, script, timeout_s, outcome
):
    local = tmp_path / "backup.dump"
    local.write_bytes(b"backup")
    path = remote_scratch_path("backup.dump", tag="test", base=str(tmp_path))

    result = ssh_command_run(
        target=_target(sshd), argv=_sh(f'test -s "$0" && echo there; {script}', path),
        timeout_s=timeout_s, kill_grace_s=0.5, upload=_upload_of(local, path),
    )  # fmt: skip

    assert result.outcome == outcome, result.reason
    assert result.output.startswith("there")
    assert not Path(path).parent.exists()


def test_ssh_command_run__cancelled_while_uploading__nothing_run_and_folder_removed(sshd, tmp_path):
    # Given a 2 MiB file, and a cancel that comes after the copy has begun
    local = tmp_path / "backup.dump"
    local.write_bytes(os.urandom(2 * 1024 * 1024))
    path = remote_scratch_path("backup.dump", tag="test", base=str(tmp_path))
    marker = tmp_path / "ran"
    asked = []

    def should_stop() -> bool:
        asked.append(Path(path).exists())  # the copy is under way once the file is there
        return len(asked) > 3

    result = ssh_command_run(
        target=_target(sshd), argv=["touch", str(marker)], timeout_s=20,
        should_stop=should_stop, upload=_upload_of(local, path),
    )  # fmt: skip

    # Then the copy stopped, the command never ran, and the folder is gone
    assert result.outcome == "cancelled", result.reason
    assert "while its file was put on the host" in result.reason
    assert asked[-1] is True
    assert not marker.exists()
    assert not Path(path).parent.exists()


def test_ssh_command_run__upload_size_differs__not_run_and_folder_removed(sshd, tmp_path):
    local = tmp_path / "backup.dump"
    local.write_bytes(b"12345")
    path = remote_scratch_path("backup.dump", tag="test", base=str(tmp_path))
    marker = tmp_path / "ran"

    result = ssh_command_run(
        target=_target(sshd), argv=["touch", str(marker)], timeout_s=20,
        upload=_upload_of(local, path, size=6),
    )  # fmt: skip

    assert result.outcome == "error"
    assert "was not run" in result.reason
    assert "holds 5 bytes after the copy, not the 6 expected" in result.reason
    assert not marker.exists()
    assert not Path(path).parent.exists()


def test_ssh_command_run__scratch_folder__private_while_it_runs_then_removed(sshd, tmp_path):
    folder = posixpath.dirname(remote_scratch_path("x", tag="dry-run-1", base=str(tmp_path)))

    result = ssh_command_run(
        target=_target(sshd), argv=_sh('echo out > "$0/file"; ls -ld "$0"; cat "$0/file"', folder),
        timeout_s=20, scratch=folder,
    )  # fmt: skip

    assert result.outcome == "passed", result.reason
    assert result.output.startswith("drwx------") and result.output.endswith("out\n")
    assert not Path(folder).exists()


@pytest.mark.parametrize("scratch", ["/var/tmp", "/var/tmp/mycelia-x/", "relative/mycelia-x"])
def test_ssh_command_run__scratch_not_a_folder_of_its_own__refused_before_connecting(sshd, scratch):
    result = ssh_command_run(target=_target(sshd), argv=["true"], timeout_s=20, scratch=scratch)

    assert result.outcome == "error"
    assert "is not a folder of its own on the host" in result.reason


_UPLOAD_RUNNER = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from upgrades.runners import RemoteUpload, SshTarget, ssh_command_run
job = json.loads(os.environ["TEST_SSH_JOB"])
ssh_command_run(target=SshTarget(**job["target"]), argv=["true"], timeout_s=120,
                upload=RemoteUpload(path=job["path"], local=job["local"], size=10**9))
"""


def test_ssh_command_run__runner_killed_while_uploading__keeper_removes_the_folder(sshd, tmp_path):
    # Given a runner (a worker) putting a file on the host that arrives slowly (a pipe the test
    # writes into, so the copy is under way for as long as the test wants)
    source = tmp_path / "source.fifo"
    os.mkfifo(source)
    path = remote_scratch_path("backup.dump", tag="test", base=str(tmp_path))
    job = {"target": dataclasses.asdict(_target(sshd)), "path": path, "local": str(source)}
    runner = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD_RUNNER], cwd=ROOT, start_new_session=True,
        env={**os.environ, "TEST_SSH_JOB": json.dumps(job)},
    )  # fmt: skip
    writer = None
    try:

        def opened() -> int | None:
            try:
                return os.open(source, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # ENXIO: the runner has not opened it yet
                return None

        writer = wait_for(opened, timeout=20, every=0.05)
        os.write(writer, os.urandom(32 * 1024))
        wait_for(lambda: Path(path).exists(), timeout=20, every=0.05)
        assert Path(path).parent.is_dir()

        # When the runner's process group is killed mid-copy
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)

        # Then the folder, and the part of the file in it, are removed from the host
        wait_for(lambda: not Path(path).parent.exists(), timeout=15, every=0.05)
    finally:
        if writer is not None:
            os.close(writer)
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()


# --- a dry run of an SSH hook from the set-up page ---------------------------------------------


@pytest.mark.django_db
def test_hook_test__ssh_hook_writes_to_output_path__passes_in_a_folder_removed_after(
    staging, sshd, tmp_path, monkeypatch
):
    # Given a database backup hook on a host that writes its dump to {output_path}
    monkeypatch.setattr(ssh_files, "REMOTE_SCRATCH_BASE", str(tmp_path))  # the host's /var/tmp
    host = EnvironmentHost.objects.create(
        environment=staging, address="127.0.0.1", port=sshd.port, user=sshd.user,
        host_key=sshd.host_key_line, private_key_file=str(sshd.client_key),
    )  # fmt: skip
    hook = EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DB_BACKUP, mode=HookMode.SSH, host=host,
        timeout_seconds=30, argv=["sh", "-c", 'echo "to=$0 $1"; ls -ld "$(dirname "$0")"; '
                                  'echo "dump $MYCELIA_DRY_RUN" > "$0"; cat "$0"',
                                  "{output_path}", "{backup_path}"],
    )  # fmt: skip
    test = HookTest.objects.create(hook=hook)

    # When its dry run is carried out
    assert hook_tests.hook_test_execute(test_id=test.pk) == "passed"

    # Then the hook wrote into a private folder of its own on the host, removed afterwards
    test.refresh_from_db()
    assert test.status == RunStatus.PASSED, test.reason + test.output
    output_path, backup_path = test.output.split("to=", 1)[1].splitlines()[0].split()
    folder = Path(output_path).parent
    assert folder.parent == tmp_path and folder.name.startswith(f"mycelia-dry-run-{test.pk}-")
    assert Path(backup_path).parent == folder
    assert "drwx------" in test.output and "dump 1" in test.output
    assert not folder.exists()


# --- a database backup hook on a host, end to end through the product --------------------------


@pytest.fixture
def ssh_backup(staging, sshd, settings, tmp_path, monkeypatch):
    """Staging's database backup hook runs on the host: it copies a known dump to
    {output_path}, and says where that was."""
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr(ssh_files, "REMOTE_SCRATCH_BASE", str(tmp_path))  # the host's /var/tmp
    host = EnvironmentHost.objects.create(
        environment=staging, address="127.0.0.1", port=sshd.port, user=sshd.user,
        host_key=sshd.host_key_line, private_key_file=str(sshd.client_key),
    )  # fmt: skip
    source = tmp_path / "source.dump"
    source.write_bytes(os.urandom(300 * 1024 + 7))  # several SFTP reads and storage chunks

    def hook(script: str) -> None:
        EnvironmentOperation.objects.update_or_create(
            environment=staging, operation=Operation.DB_BACKUP,
            defaults={"mode": HookMode.SSH, "host": host, "timeout_seconds": 30,
                      "argv": ["sh", "-c", f'echo "to=$0"; {script}', "{output_path}"]},
        )  # fmt: skip

    hook(f'cp {shlex.quote(str(source))} "$0"')
    return source, hook


def _backup_run(make_upgrade, manager) -> CheckRun:
    upgrade = make_upgrade("minor")
    step = upgrade.steps.filter(title="Backup database").order_by("phase__order").first()
    run = services.check_run_request(upgrade=upgrade, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def _remote_folder(run: CheckRun) -> Path:
    return Path(run.output.split("to=", 1)[1].splitlines()[0]).parent


@pytest.mark.django_db
def test_backup__ssh_database_hook__dump_brought_back_and_downloads_with_its_sha256(
    ssh_backup, make_upgrade, manager, client, tmp_path
):
    source, _ = ssh_backup

    # When a release manager's database backup runs on the host
    run = _backup_run(make_upgrade, manager)

    # Then it passed with one artifact: the dump's size and sha256, kept in the storage
    assert run.status == RunStatus.PASSED, run.reason + run.output
    assert "brought back" in run.reason
    dump = Artifact.objects.get(upgrade_id=run.upgrade_id)
    assert dump.kind == "db_backup" and dump.storage_name
    assert dump.size_bytes == source.stat().st_size
    assert dump.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    # And it downloads with exactly those bytes
    client.force_login(manager)
    response = client.get(reverse("upgrades:artifact_download", args=[dump.upgrade_id, dump.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == source.read_bytes()
    # And nothing is left on the host
    folder = _remote_folder(run)
    assert folder.parent == tmp_path and folder.name.startswith("mycelia-run-")
    assert not folder.exists()


@pytest.mark.django_db
def test_backup__ssh_database_hook_with_s3_storage__dump_lands_in_the_bucket_exactly(
    ssh_backup,
    make_upgrade,
    manager,
    s3_artifacts,  # noqa: F811
    moto,  # noqa: F811
):
    source, _ = ssh_backup

    run = _backup_run(make_upgrade, manager)

    # Then the dump went from the host into the bucket, with its size and sha256 recorded
    assert run.status == RunStatus.PASSED, run.reason + run.output
    dump = Artifact.objects.get(upgrade_id=run.upgrade_id)
    assert dump.path.startswith(f"s3://{s3_artifacts}/")
    assert _object(moto, s3_artifacts, dump.storage_name) == source.read_bytes()
    assert dump.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert dump.size_bytes == source.stat().st_size
    assert not _remote_folder(run).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("script", "words"), [
    ("true", "wrote no file at"),
    (': > "$0"', "is empty"),
])  # fmt: skip
def test_backup__ssh_database_hook_leaves_no_dump__failed_saying_so_no_artifact(
    ssh_backup, make_upgrade, manager, script, words
):
    _, hook = ssh_backup
    hook(script)

    run = _backup_run(make_upgrade, manager)

    assert run.status == RunStatus.FAILED, run.reason
    assert words in run.reason and "nothing was kept" in run.reason
    assert not Artifact.objects.filter(upgrade_id=run.upgrade_id).exists()
    assert not _remote_folder(run).exists()


# --- the worker dies mid-command: nothing it started lives on on the host ----------------------

_RUNNER = """
import json, os, sys
sys.path.insert(0, os.getcwd())
from upgrades.runners import RemoteFetch, SshTarget, ssh_command_run
job = json.loads(os.environ["TEST_SSH_JOB"])
ssh_command_run(target=SshTarget(**job["target"]), argv=job["argv"], timeout_s=120,
                kill_grace_s=0.5, run_mark=job["mark"],
                fetch=RemoteFetch(path=job["path"], store=lambda handle, size: None))
"""

# A command that ignores SIGHUP and SIGTERM and starts two writers that ignore them too: a
# grandchild in its process group, and one that leaves the group (setsid). Every process has the
# marker ($0) in its arguments.
STUBBORN_COMMAND = (
    "trap '' HUP TERM; "
    'sh -c \'trap "" HUP TERM; while :; do echo grandchild >> "$1"; sleep 0.1; done\' "$0" "$1" & '
    'setsid sh -c \'trap "" HUP TERM; while :; do echo escapee >> "$1"; sleep 0.1; done\' "$0" "$1" & '
    "echo ready; wait"
)


def marked_processes(marker: str, mark: str = "") -> list[int]:
    """Live processes on this machine (the host) with ``marker`` in their arguments or carrying
    the run's ``mark`` (MYCELIA_RUN_MARK)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        carries = bool(mark) and f"MYCELIA_RUN_MARK={mark}".encode() in environ
        if (marker.encode() in argv or carries) and not process_gone(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_ssh_command_run__runner_killed_mid_command__remote_tree_and_folder_gone(sshd, tmp_path):
    # Given a runner process (a worker) running a stubborn command on the host, with a fetch
    marker, mark = f"mycelia-test-{uuid.uuid4().hex}", f"run-test@{uuid.uuid4().hex}"
    ledger = tmp_path / "ledger"
    path = remote_scratch_path("dump.bin", tag="test", base=str(tmp_path))
    job = {
        "target": dataclasses.asdict(_target(sshd)),
        "argv": ["sh", "-c", STUBBORN_COMMAND, marker, str(ledger)],
        "mark": mark,
        "path": path,
    }
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER], cwd=ROOT, start_new_session=True,
        env={**os.environ, "TEST_SSH_JOB": json.dumps(job)},
    )  # fmt: skip
    try:
        wait_for(lambda: ledger.exists() and {"grandchild", "escapee"} <= set(
            ledger.read_text().split()), timeout=20, every=0.05)  # fmt: skip
        assert Path(path).parent.is_dir()
        assert len(marked_processes(marker, mark)) >= 3

        # When the runner's whole process group is killed, as a worker's would be
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait(timeout=10)

        # Then every remote process of it is gone soon (the connection dropped), the ledger
        # stops growing, and the folder made for its file is removed
        wait_for(lambda: not marked_processes(marker, mark), timeout=15, every=0.05)
        size = ledger.stat().st_size
        wait_for(lambda: not Path(path).parent.exists(), timeout=5, every=0.05)
        assert ledger.stat().st_size == size
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        for pid in marked_processes(marker, mark):  # only on failure: leave nothing behind
            os.kill(pid, signal.SIGKILL)
