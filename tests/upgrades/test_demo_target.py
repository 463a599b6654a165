"""The demo Mycelia, driven through the same runners the workers use: a real HTTP server on a
free port with its own state directory, and the scripts run as the shell would run them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from upgrades import runners
from upgrades.demo_target import cli
from upgrades.demo_target.server import SECRET_HEADER, DemoServer, make_server
from upgrades.demo_target.state import INITIAL_VERSION, StateStore

ROOT = Path(__file__).resolve().parent.parent.parent
SLO_THRESHOLDS = [
    ("error_rate", "<=", 0.01),
    ("latency_p95_ms", "<=", 500),
    ("availability", ">=", 0.999),
]


def _serve(state_dir: Path, secret: str | None = None) -> Iterator[DemoServer]:
    server = make_server(port=0, state_dir=state_dir, secret=secret, quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "demo-state"


@pytest.fixture
def store(state_dir: Path) -> StateStore:
    return StateStore(state_dir)


@pytest.fixture
def demo(state_dir: Path) -> Iterator[DemoServer]:
    yield from _serve(state_dir, secret="")


@pytest.fixture
def guarded_demo(tmp_path: Path) -> Iterator[DemoServer]:
    yield from _serve(tmp_path / "guarded-state", secret="s3cret")


def _cli(state_dir: Path, *args: str) -> int:
    return cli.main(["--state-dir", str(state_dir), *args])


def _version(demo: DemoServer) -> str:
    return httpx.get(f"{demo.url}/health").json()["version"]


# --- the HTTP service --------------------------------------------------------------------------


def test_health__no_fault__passed(demo: DemoServer) -> None:
    result = runners.http_probe(url=f"{demo.url}/health", timeout_s=2)

    assert result.outcome == "passed"
    assert result.status_code == 200
    assert result.reason.startswith("GET /health answered 200 after ")
    assert json.loads(result.body) == {"status": "ok", "version": INITIAL_VERSION}


def test_health__health_failing_fault__failed_answered_503(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"health_failing": True}).raise_for_status()

    result = runners.http_probe(url=f"{demo.url}/health", timeout_s=2)

    assert result.outcome == "failed"
    assert result.status_code == 503
    assert "GET /health answered 503" in result.reason


def test_status_json__garbage_json_fault__failed_body_not_json(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"garbage_json": True}).raise_for_status()

    result = runners.http_probe(
        url=f"{demo.url}/ops/status.json",
        timeout_s=2,
        json_path="services.0.status",
        condition={"op": "==", "value": "healthy"},
    )

    assert result.outcome == "failed"
    assert result.reason == "GET /ops/status.json answered 200 but the body is not JSON"


def test_status_json__slow_beyond_timeout__timed_out_near_timeout(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"slow": True, "slow_seconds": 1.5}).raise_for_status()

    started = time.monotonic()
    result = runners.http_probe(url=f"{demo.url}/ops/status.json", timeout_s=0.5)
    took = time.monotonic() - started

    assert result.outcome == "timed_out"
    assert result.reason == "GET /ops/status.json timed out after 0.5 s"
    assert 0.4 < took < 1.2


def test_faults__slow_on__faults_endpoint_still_answers_fast(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"slow": True, "slow_seconds": 5}).raise_for_status()

    # The demo can always be switched back, even when everything else is slow.
    answer = httpx.post(f"{demo.url}/faults", json={"slow": False}, timeout=1)

    assert answer.json()["slow"] is False
    assert runners.http_probe(url=f"{demo.url}/health", timeout_s=1).outcome == "passed"


def test_status_json__healthy__passed_with_figures(demo: DemoServer) -> None:
    probe = runners.http_probe(url=f"{demo.url}/ops/status.json", timeout_s=2)

    evaluation = runners.status_json_evaluate(json.loads(probe.body))

    assert evaluation.outcome == "passed"
    assert evaluation.reason == "All 4 services healthy"
    assert set(evaluation.figures["services"]) == {
        "api",
        "redemption",
        "shared-kernel",
        "feature-flags",
    }
    assert evaluation.figures["overall"] == {
        "error_rate": 0.002,
        "latency_p95_ms": 180,
        "availability": 0.9995,
    }
    slo = runners.slo_evaluate(figures=evaluation.figures["overall"], thresholds=SLO_THRESHOLDS)
    assert slo.outcome == "passed"


def test_status_json__error_rate_high__slo_failed_naming_the_breach(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"error_rate_high": True}).raise_for_status()
    probe = runners.http_probe(url=f"{demo.url}/ops/status.json", timeout_s=2)

    evaluation = runners.status_json_evaluate(json.loads(probe.body))
    slo = runners.slo_evaluate(figures=evaluation.figures["overall"], thresholds=SLO_THRESHOLDS)

    assert evaluation.outcome == "failed"
    assert "api is degraded" in evaluation.reason and "redemption is degraded" in evaluation.reason
    assert slo.outcome == "failed"
    assert slo.breaches == [{"metric": "error_rate", "op": "<=", "limit": 0.01, "value": 0.082}]
    assert "error_rate is 0.082, wanted <= 0.01" in slo.reason


def test_status_json__json_path_condition__reads_the_slo_figure(demo: DemoServer) -> None:
    result = runners.http_probe(
        url=f"{demo.url}/ops/status.json",
        timeout_s=2,
        json_path="services.1.error_rate",
        condition={"op": "<=", "value": 0.01},
    )

    assert result.outcome == "passed"
    assert result.value == 0.001
    assert "services.1.error_rate = 0.001, wanted <= 0.01" in result.reason


def test_deploy_then_rollback__over_http__version_changes_and_returns(demo: DemoServer) -> None:
    deployed = runners.webhook_post(
        url=f"{demo.url}/deploy", payload={"version": "1.5.0"}, timeout_s=2
    )
    after_deploy = _version(demo)
    rolled_back = runners.webhook_post(url=f"{demo.url}/rollback", payload={}, timeout_s=2)
    after_rollback = _version(demo)
    again = runners.webhook_post(url=f"{demo.url}/rollback", payload={}, timeout_s=2)

    assert deployed.outcome == "passed" and after_deploy == "1.5.0"
    assert rolled_back.outcome == "passed" and after_rollback == INITIAL_VERSION
    assert again.outcome == "failed" and again.status_code == 409
    assert "no previous version" in again.reason


def test_deploy__secret_configured__refused_without_it_accepted_with_it(
    guarded_demo: DemoServer,
) -> None:
    url = f"{guarded_demo.url}/deploy"

    refused = runners.webhook_post(url=url, payload={"version": "2.0.0"}, timeout_s=2)
    wrong = runners.webhook_post(
        url=url,
        payload={"version": "2.0.0"},
        secret_header_name=SECRET_HEADER,
        secret="nope",
        timeout_s=2,
    )
    accepted = runners.webhook_post(
        url=url,
        payload={"version": "2.0.0"},
        secret_header_name=SECRET_HEADER,
        secret="s3cret",
        timeout_s=2,
    )

    assert (refused.status_code, wrong.status_code, accepted.status_code) == (401, 401, 200)
    assert "s3cret" not in accepted.reason
    assert _version(guarded_demo) == "2.0.0"


def test_deploy__deploy_fails_fault__500_and_version_kept(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/faults", json={"deploy_fails": True}).raise_for_status()

    result = runners.webhook_post(
        url=f"{demo.url}/deploy", payload={"version": "1.5.0"}, timeout_s=2
    )

    assert result.outcome == "failed"
    assert result.status_code == 500
    assert "deploy of 1.5.0 failed" in result.reason
    assert _version(demo) == INITIAL_VERSION


def test_deploy__malformed_version__400(demo: DemoServer) -> None:
    result = runners.webhook_post(
        url=f"{demo.url}/deploy", payload={"version": "latest"}, timeout_s=2
    )

    assert result.status_code == 400
    assert "'latest' is not a version" in result.reason


def test_faults__unknown_switch__400_and_nothing_changed(demo: DemoServer) -> None:
    answer = httpx.post(f"{demo.url}/faults", json={"on_fire": True, "slow": True})

    assert answer.status_code == 400
    assert "unknown fault 'on_fire'" in answer.json()["error"]
    assert httpx.get(f"{demo.url}/faults").json()["slow"] is False


def test_logs__after_deploy__json_lines_name_it(demo: DemoServer) -> None:
    httpx.post(f"{demo.url}/deploy", json={"version": "1.5.0"}).raise_for_status()

    answer = httpx.get(f"{demo.url}/logs", params={"lines": 2})
    lines = [json.loads(line) for line in answer.text.splitlines()]

    assert answer.headers["content-type"] == "application/x-ndjson"
    assert len(lines) == 2
    assert lines[-1]["message"] == "deployed 1.5.0 (was 1.4.2) via http"


# --- the scripts -------------------------------------------------------------------------------

HEALTHY_SUBCOMMANDS = [
    "diagnose",
    "ops-lint",
    "test-integration",
    "sec-scan",
    "test-flow",
    "verify-data",
]


@pytest.mark.parametrize(
    ("fault", "failing"),
    [
        (None, set()),
        ("health_failing", {"diagnose", "ops-lint", "test-integration", "test-flow"}),
        ("error_rate_high", {"diagnose", "ops-lint", "test-integration", "test-flow"}),
        ("slow", {"diagnose", "ops-lint"}),
        ("garbage_json", {"diagnose"}),
        ("deploy_fails", set()),
        ("command_fails", set(HEALTHY_SUBCOMMANDS)),
    ],
)
def test_cli_checks__each_fault__expected_exit_codes(
    state_dir: Path, store: StateStore, fault: str | None, failing: set[str], capsys
) -> None:
    if fault:
        store.set_faults({fault: True})

    codes = {name: _cli(state_dir, name) for name in HEALTHY_SUBCOMMANDS}

    assert codes == {name: (1 if name in failing else 0) for name in HEALTHY_SUBCOMMANDS}


def test_cli_diagnose__error_rate_high__report_names_the_unwell(
    state_dir: Path, store: StateStore, capsys
) -> None:
    store.set_faults({"error_rate_high": True})

    code = _cli(state_dir, "diagnose")

    out = capsys.readouterr().out
    assert code == 1
    assert "UNHEALTHY: api is degraded; redemption is degraded" in out
    assert "faults on        : error_rate_high" in out


def test_cli_ops_lint__error_rate_high__prints_figures_and_breaches(
    state_dir: Path, store: StateStore, capsys
) -> None:
    store.set_faults({"error_rate_high": True})

    code = _cli(state_dir, "ops-lint")

    out = capsys.readouterr().out
    assert code == 1
    assert "BREACH api: error rate 0.082 > 0.01" in out
    assert "OUT OF SLO: 2 breach(es)" in out


def test_cli_command_fails__fault_and_faults_still_work(
    state_dir: Path, store: StateStore, capsys
) -> None:
    store.set_faults({"command_fails": True})

    blocked = _cli(state_dir, "deploy", "1.5.0")
    switched = _cli(state_dir, "fault", "command_fails", "off")
    deployed = _cli(state_dir, "deploy", "1.5.0")

    assert (blocked, switched, deployed) == (1, 0, 0)
    assert "command_fails fault" in capsys.readouterr().err
    assert store.read()["version"] == "1.5.0"


def test_cli_deploy_and_rollback__versions__switch_and_return(
    state_dir: Path, store: StateStore
) -> None:
    assert _cli(state_dir, "rollback") == 1  # nothing deployed yet
    assert _cli(state_dir, "deploy", "not-a-version") == 2
    assert _cli(state_dir, "deploy", "1.6.0") == 0
    assert store.read()["version"] == "1.6.0"
    assert _cli(state_dir, "rollback") == 0
    assert store.read()["version"] == INITIAL_VERSION
    assert [d["kind"] for d in store.read()["deployments"]] == ["deploy", "rollback"]


def test_cli_deploy__deploy_fails_fault__exit_1_version_kept(
    state_dir: Path, store: StateStore
) -> None:
    store.set_faults({"deploy_fails": True})

    assert _cli(state_dir, "deploy", "1.6.0") == 1
    assert store.read()["version"] == INITIAL_VERSION


def test_cli_db_backup_restore__round_trip__data_restored(
    tmp_path: Path, state_dir: Path, store: StateStore
) -> None:
    dump = tmp_path / "backups" / "db.dump"
    assert _cli(state_dir, "db-backup", str(dump)) == 0
    original = store.read()["database"]
    # Given the data changes after the backup...
    store.update(lambda state: state["database"]["accounts"].pop())

    code = _cli(state_dir, "db-restore", str(dump))

    assert code == 0
    assert store.read()["database"] == original
    assert _cli(state_dir, "verify-data") == 0


def test_cli_db_restore__corrupt_dump__exit_1_data_untouched(
    tmp_path: Path, state_dir: Path, store: StateStore, capsys
) -> None:
    dump = tmp_path / "db.dump"
    assert _cli(state_dir, "db-backup", str(dump)) == 0
    dump.write_text(dump.read_text().replace('"balance": 120', '"balance": 999999'))
    before = store.read()["database"]

    code = _cli(state_dir, "db-restore", str(dump))

    assert code == 1
    assert "checksum does not match" in capsys.readouterr().err
    assert store.read()["database"] == before


def test_cli_verify_data__dangling_redemption__exit_1(
    state_dir: Path, store: StateStore, capsys
) -> None:
    store.update(
        lambda state: state["database"]["redemptions"].append(
            {"id": 9, "account_id": 42, "points": 1}
        )
    )

    assert _cli(state_dir, "verify-data") == 1
    assert "points at no account" in capsys.readouterr().out


def test_cli_ops_tail__lines_2__two_json_lines(state_dir: Path, store: StateStore, capsys) -> None:
    for n in range(5):
        store.log(f"line {n}")

    code = _cli(state_dir, "ops-tail", "--lines", "2")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [line["message"] for line in lines] == ["line 3", "line 4"]


def _module_argv(state_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "upgrades.demo_target", "--state-dir", str(state_dir), *args]


def _plain_env() -> dict[str, str]:
    # No Django settings: the scripts must not need them.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return {**env, "PYTHONPATH": str(ROOT)}


def test_cli_as_module__other_cwd_no_django__runs(tmp_path: Path, state_dir: Path) -> None:
    done = subprocess.run(
        _module_argv(state_dir, "diagnose"),
        cwd=tmp_path,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )
    imports = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, upgrades.demo_target.cli, upgrades.demo_target.server; print('django' in sys.modules)",
        ],
        cwd=tmp_path,
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=20,
    )

    assert done.returncode == 0, done.stderr
    assert "HEALTHY: all checks passed" in done.stdout
    assert imports.stdout.strip() == "False"


def test_cli_as_module__state_dir_from_env__shared_with_server(
    tmp_path: Path, demo: DemoServer
) -> None:
    # The server was started on demo.store.dir; a script pointed there by the env var sees it.
    env = {**_plain_env(), "MYCELIA_DEMO_STATE_DIR": str(demo.store.dir)}
    argv = [sys.executable, "-m", "upgrades.demo_target", "deploy", "3.0.0"]

    done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)

    assert done.returncode == 0, done.stderr
    assert _version(demo) == "3.0.0"


def test_cli_command_hangs__run_through_command_run__killed_at_limit(
    state_dir: Path, store: StateStore
) -> None:
    store.set_faults({"command_hangs": True})

    result = runners.command_run(
        argv=_module_argv(state_dir, "diagnose"), env=_plain_env(), timeout_s=1.5, label="diagnose"
    )

    assert result.outcome == "timed_out"
    assert result.reason == "diagnose did not finish within 1.5 s and was killed"
    assert "waiting for a lock" in result.output
    assert 1400 <= result.duration_ms < 4500


def test_cli_command_fails__run_through_command_run__failed_with_message(
    state_dir: Path, store: StateStore
) -> None:
    store.set_faults({"command_fails": True})

    result = runners.command_run(
        argv=_module_argv(state_dir, "sec-scan"), env=_plain_env(), timeout_s=20
    )

    assert result.outcome == "failed"
    assert result.exit_code == 1
    assert "exited with code 1" in result.reason
    assert "sec-scan crashed: ECONNREFUSED" in result.reason


def test_manage_demo_target__port__serves_and_prints_its_url(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = [sys.executable, str(ROOT / "manage.py"), "demo_target", "--port", str(port)]
    argv += ["--state-dir", str(tmp_path / "state")]
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        first_line = server.stdout.readline()
        health = runners.http_probe(url=f"http://127.0.0.1:{port}/health", timeout_s=2)
    finally:
        server.terminate()
        server.wait(timeout=10)

    assert first_line.startswith(f"Demo Mycelia at http://127.0.0.1:{port}/")
    assert health.outcome == "passed"
    assert (tmp_path / "state" / "state.json").exists()
