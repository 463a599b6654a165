"""upgrades.runners on their own: commands run for real, HTTP against small local receivers."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from upgrades import runners

PY = sys.executable


def _py(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def _live_members(pgid: int) -> list[int]:
    """Processes still alive (zombies do not count) in a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


# --- command_run -------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads /proc to find the group")
def test_command_run__hangs_with_a_child__whole_group_killed_at_limit() -> None:
    # Given a command that starts a child and both sleep far past the limit.
    argv = _py(
        """
        import os, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(os.getpgid(0), child.pid, flush=True)
        time.sleep(60)
        """
    )

    result = runners.command_run(argv=argv, timeout_s=1.5, kill_grace_s=0.5, label="diagnose")

    pgid, child = (int(n) for n in result.output.split())
    assert result.outcome == "timed_out"
    assert result.exit_code is None
    assert result.reason == "diagnose did not finish within 1.5 s and was killed"
    assert 1400 <= result.duration_ms < 3500
    assert _live_members(pgid) == []
    assert child not in _live_members(pgid)


def test_command_run__ignores_sigterm__killed_after_grace() -> None:
    argv = _py(
        """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """
    )

    result = runners.command_run(argv=argv, timeout_s=0.5, kill_grace_s=0.3)

    assert result.outcome == "timed_out"
    assert result.output == "ready\n"
    # The limit plus the grace, and not the 60 s the command wanted.
    assert 750 <= result.duration_ms < 2500


def test_command_run__output_over_cap__kept_and_streamed_up_to_cap() -> None:
    chunks: list[str] = []
    argv = _py("import sys; sys.stdout.write('x' * 200_000); sys.stdout.flush()")

    result = runners.command_run(
        argv=argv, timeout_s=10, output_cap_bytes=1000, on_output=chunks.append
    )

    assert result.outcome == "passed"
    assert result.truncated is True
    assert result.output == "x" * 1000
    assert "".join(chunks) == result.output


def test_command_run__output_arrives_in_steps__on_output_called_before_the_end() -> None:
    arrivals: list[tuple[float, str]] = []
    argv = _py(
        """
        import sys, time
        print("first", flush=True)
        time.sleep(0.5)
        print("second", file=sys.stderr, flush=True)
        """
    )

    started = time.monotonic()
    result = runners.command_run(
        argv=argv, timeout_s=10, on_output=lambda text: arrivals.append((time.monotonic(), text))
    )
    finished = time.monotonic()

    assert result.outcome == "passed"
    assert result.output == "first\nsecond\n"  # stderr merged, in order
    assert arrivals[0][1].startswith("first")  # pipes may split a line; order is kept
    assert arrivals[0][0] - started < finished - started - 0.3  # streamed, not at the end
    assert "".join(text for _, text in arrivals) == result.output


def test_command_run__nonzero_exit__failed_quoting_last_line() -> None:
    argv = _py("import sys; print('checking'); print('disk full', file=sys.stderr); sys.exit(3)")

    result = runners.command_run(argv=argv, timeout_s=10, label="ops-lint")

    assert result.outcome == "failed"
    assert result.exit_code == 3
    assert result.reason.startswith("ops-lint exited with code 3 after ")
    assert result.reason.endswith(": disk full")


def test_command_run__missing_executable__error_not_exception() -> None:
    result = runners.command_run(argv=["pnpm-that-does-not-exist", "run", "diagnose"], timeout_s=5)

    assert result.outcome == "error"
    assert result.exit_code is None
    assert "pnpm-that-does-not-exist was not found" in result.reason


def test_command_run__string_argv__error_and_nothing_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    result = runners.command_run(argv=f"touch {marker}", timeout_s=5)  # type: ignore[arg-type]

    assert result.outcome == "error"
    assert "must be a non-empty list of strings" in result.reason
    assert not marker.exists()


def test_command_run__shell_syntax_in_argument__passed_literally(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    result = runners.command_run(argv=["echo", f"$(touch {marker}); rm -rf /"], timeout_s=5)

    assert result.outcome == "passed"
    assert result.output.strip() == f"$(touch {marker}); rm -rf /"
    assert not marker.exists()


def test_command_run__missing_working_directory__error(tmp_path: Path) -> None:
    result = runners.command_run(argv=["true"], cwd=tmp_path / "nope", timeout_s=5)

    assert result.outcome == "error"
    assert "working directory" in result.reason


def test_command_run__env_and_cwd__added_to_the_environment(tmp_path: Path) -> None:
    argv = _py(
        "import os; print(os.environ['MYCELIA_X'], bool(os.environ.get('PATH')), os.getcwd())"
    )

    result = runners.command_run(argv=argv, cwd=tmp_path, env={"MYCELIA_X": "42"}, timeout_s=10)

    assert result.output.split() == ["42", "True", str(tmp_path)]


def test_command_run__listener_raises__command_still_completes() -> None:
    def broken(_: str) -> None:
        raise RuntimeError("database is locked")

    result = runners.command_run(argv=_py("print('hello')"), timeout_s=10, on_output=broken)

    assert result.outcome == "passed"
    assert result.output == "hello\n"
    assert "(live output stopped: database is locked)" in result.reason


# --- small local HTTP receivers ----------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(
            {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
        )
        if self.path == "/slow":
            time.sleep(1.5)
        status, text = (
            (500, "boom: migration failed") if self.path == "/broken" else (202, "queued")
        )
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client gave up
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text.encode())


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _json_client(document: object, status: int = 200) -> httpx.Client:
    return httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(status, json=document))
    )


# --- webhook_post ------------------------------------------------------------------------------


def test_webhook_post__receiver_accepts__passed_with_payload_and_secret(receiver: str) -> None:
    result = runners.webhook_post(
        url=f"{receiver}/hooks/deploy",
        payload={"operation": "deploy", "version": "1.5.0"},
        secret_header_name="X-Hook-Secret",
        secret="t0ken",
        timeout_s=2,
    )

    (request,) = _Receiver.received
    assert result.outcome == "passed"
    assert result.status_code == 202
    assert result.reason.startswith("POST /hooks/deploy answered 202 after ")
    assert request["body"] == {"operation": "deploy", "version": "1.5.0"}
    assert request["headers"]["X-Hook-Secret"] == "t0ken"
    assert "t0ken" not in result.reason


def test_webhook_post__receiver_answers_500__failed_with_its_words(receiver: str) -> None:
    result = runners.webhook_post(url=f"{receiver}/broken", payload={"x": 1}, timeout_s=2)

    assert result.outcome == "failed"
    assert result.status_code == 500
    assert result.reason.endswith(": boom: migration failed")
    assert result.body == "boom: migration failed"


def test_webhook_post__receiver_too_slow__timed_out(receiver: str) -> None:
    started = time.monotonic()
    result = runners.webhook_post(url=f"{receiver}/slow", payload={}, timeout_s=0.5)

    assert result.outcome == "timed_out"
    assert result.reason == "POST /slow timed out after 0.5 s"
    assert time.monotonic() - started < 1.2


def test_webhook_post__nobody_listening__error() -> None:
    result = runners.webhook_post(
        url=f"http://127.0.0.1:{_free_port()}/deploy", payload={}, timeout_s=1
    )

    assert result.outcome == "error"
    assert result.reason.startswith("POST /deploy could not connect")


# --- http_probe conditions ---------------------------------------------------------------------

BETWEEN = {"op": "<=", "value": 0.01}
FAIL_ABOVE = {"op": ">", "value": 0.05}


@pytest.mark.parametrize(
    ("error_rate", "outcome"),
    [(0.005, "passed"), (0.02, "inconclusive"), (0.08, "failed")],
)
def test_http_probe__value_against_pass_and_fail_conditions__three_outcomes(
    error_rate: float, outcome: str
) -> None:
    client = _json_client({"slo": {"error_rate": error_rate}})

    result = runners.http_probe(
        url="http://mycelia.test/ops/status.json",
        timeout_s=1,
        json_path="slo.error_rate",
        condition=BETWEEN,
        fail_condition=FAIL_ABOVE,
        client=client,
    )

    assert result.outcome == outcome
    assert result.value == error_rate
    assert f"slo.error_rate = {error_rate}" in result.reason


def test_http_probe__expected_status_given__503_passes() -> None:
    result = runners.http_probe(
        url="http://mycelia.test/maintenance",
        timeout_s=1,
        expected_status=503,
        client=_json_client({}, 503),
    )

    assert result.outcome == "passed"


def test_http_probe__wrong_status__failed_saying_what_was_expected() -> None:
    result = runners.http_probe(
        url="http://mycelia.test/health",
        timeout_s=1,
        expected_status=200,
        client=_json_client({}, 204),
    )

    assert result.outcome == "failed"
    assert "answered 204" in result.reason and "(expected 200)" in result.reason


def test_http_probe__json_path_missing__failed_naming_it() -> None:
    result = runners.http_probe(
        url="http://mycelia.test/ops/status.json",
        timeout_s=1,
        json_path="services.9.status",
        condition={"op": "==", "value": "healthy"},
        client=_json_client({"services": [{"status": "healthy"}]}),
    )

    assert result.outcome == "failed"
    assert "the body has no services.9.status" in result.reason


def test_http_probe__text_compared_with_number__error() -> None:
    result = runners.http_probe(
        url="http://mycelia.test/ops/status.json",
        timeout_s=1,
        json_path="status",
        condition={"op": "<=", "value": 0.01},
        client=_json_client({"status": "operational"}),
    )

    assert result.outcome == "error"
    assert "cannot judge status" in result.reason


def test_http_probe__in_condition__passed() -> None:
    result = runners.http_probe(
        url="http://mycelia.test/ops/status.json",
        timeout_s=1,
        json_path="services.0.status",
        condition={"op": "in", "value": ["healthy", "degraded"]},
        client=_json_client({"services": [{"status": "degraded"}]}),
    )

    assert result.outcome == "passed"
    assert result.value == "degraded"


def test_http_probe__huge_body__capped() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"y" * 200_000))
    )

    result = runners.http_probe(url="http://mycelia.test/logs", timeout_s=1, client=client)

    assert result.outcome == "passed"
    assert len(result.body) == runners.BODY_CAP_BYTES


def test_http_probe__nobody_listening__error() -> None:
    result = runners.http_probe(url=f"http://127.0.0.1:{_free_port()}/health", timeout_s=1)

    assert result.outcome == "error"
    assert result.reason.startswith("GET /health could not connect")


def test_http_probe__no_url__error_not_exception() -> None:
    result = runners.http_probe(url="/health", timeout_s=1)

    assert result.outcome == "error"


# --- status documents and SLOs -----------------------------------------------------------------


def test_status_json_evaluate__service_without_latency__failed_naming_the_field() -> None:
    document = {
        "services": [{"name": "api", "status": "healthy", "error_rate": 0.001, "availability": 1}]
    }

    evaluation = runners.status_json_evaluate(document)

    assert evaluation.outcome == "failed"
    assert evaluation.reason == (
        "The status document is malformed: services.0.latency_p95_ms (api) is missing or not a number"
    )
    assert evaluation.figures == {}


def test_status_json_evaluate__not_an_object__failed() -> None:
    evaluation = runners.status_json_evaluate(["api"])

    assert evaluation.outcome == "failed"
    assert "expected a JSON object, got list" in evaluation.reason


def test_slo_evaluate__availability_below__failed_with_breach() -> None:
    evaluation = runners.slo_evaluate(
        figures={"error_rate": 0.001, "availability": 0.95},
        thresholds=[("error_rate", "<=", 0.01), ("availability", ">=", 0.999)],
    )

    assert evaluation.outcome == "failed"
    assert evaluation.breaches == [
        {"metric": "availability", "op": ">=", "limit": 0.999, "value": 0.95}
    ]
    assert evaluation.reason == "Out of SLO: availability is 0.95, wanted >= 0.999"


def test_slo_evaluate__figure_missing__error() -> None:
    evaluation = runners.slo_evaluate(figures={}, thresholds=[("latency_p95_ms", "<=", 500)])

    assert evaluation.outcome == "error"
    assert "No figure for latency_p95_ms" in evaluation.reason


# --- config_archive ----------------------------------------------------------------------------


def test_config_archive__folder__tar_gz_with_matching_checksum(tmp_path: Path) -> None:
    config = tmp_path / "config"
    (config / "services").mkdir(parents=True)
    (config / "app.yaml").write_text("version: 1.4.2\n")
    (config / "services" / "redemption.yaml").write_text("replicas: 3\n")

    first = runners.config_archive(
        source_dir=config, dest_dir=tmp_path / "out", label="config-backup"
    )
    second = runners.config_archive(
        source_dir=config, dest_dir=tmp_path / "out", label="config-backup"
    )

    archive = Path(first.path)
    assert archive.name.startswith("config-backup-") and archive.name.endswith(".tar.gz")
    assert first.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert first.size_bytes == archive.stat().st_size
    assert "Archived 2 file(s)" in first.reason
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "config",
            "config/app.yaml",
            "config/services",
            "config/services/redemption.yaml",
        ]
        assert tar.extractfile("config/app.yaml").read() == b"version: 1.4.2\n"
    assert second.path != first.path  # two in one second keep both
    assert not list((tmp_path / "out").glob(".archive-*"))  # no temporary files left


def test_config_archive__missing_folder__no_path_and_reason(tmp_path: Path) -> None:
    result = runners.config_archive(
        source_dir=tmp_path / "nope", dest_dir=tmp_path / "out", label="config-backup"
    )

    assert result.path is None
    assert result.reason == f"The configuration folder {tmp_path / 'nope'} does not exist"
