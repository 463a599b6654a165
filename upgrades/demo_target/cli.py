"""Stand-ins for the playbook's pnpm commands: ``python -m upgrades.demo_target <subcommand>``.

They read and change the same state file as the HTTP service, so they work whether or not the
service runs. Every command except ``fault``/``faults`` honours the ``command_hangs`` and
``command_fails`` switches (those two stay usable, so a hung demo can always be switched back).

Exit codes: 0 all well, 1 the check or action failed, 2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from upgrades.demo_target.state import (
    FAULTS,
    SLO,
    DeployFailed,
    NothingToRollBack,
    StateStore,
    append_log,
    database_dump,
    database_from_dump,
    database_problems,
    overall_status,
    services_now,
    slo_breaches,
)

URL_ENV = "MYCELIA_DEMO_URL"
Command = Callable[[argparse.Namespace, StateStore], int]


def _say(line: str = "") -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1


def _log(store: StateStore, message: str, *, level: str = "info", service: str = "ops") -> None:
    store.update(lambda state: append_log(state, message, level=level, service=service))


# --- the commands --------------------------------------------------------------------------


def diagnose(args: argparse.Namespace, store: StateStore) -> int:
    state = store.read()
    faults = state["faults"]
    services = services_now(state)
    problems = [f"{s['name']} is {s['status']}" for s in services if s["status"] != "healthy"]
    if faults.get("garbage_json"):
        problems.append("/ops/status.json answers something that is not JSON")
    _say(f"Mycelia diagnostics — version {state['version']}")
    _say(f"  previous version : {state.get('previous_version') or '-'}")
    _say(f"  overall status   : {overall_status(services)}")
    for s in services:
        _say(
            f"  {s['name']:<14} {s['status']:<9} errors {s['error_rate']:.4f}  p95 {s['latency_p95_ms']} ms"
        )
    on = [name for name in FAULTS if faults.get(name)]
    _say(f"  faults on        : {', '.join(on) or 'none'}")
    url = args.url or os.environ.get(URL_ENV)
    if url:
        problems.extend(_probe_health(url))
    if problems:
        _say("UNHEALTHY: " + "; ".join(problems))
        _log(store, "diagnose: unhealthy (" + "; ".join(problems) + ")", level="error")
        return 1
    _say("HEALTHY: all checks passed")
    _log(store, "diagnose: healthy")
    return 0


def _probe_health(url: str) -> list[str]:
    target = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(target, timeout=5) as answer:  # noqa: S310 - our own URL
            _say(f"  {target} answered {answer.status}")
            return []
    except urllib.error.HTTPError as exc:
        return [f"{target} answered {exc.code}"]
    except (urllib.error.URLError, OSError) as exc:
        return [f"{target} could not be reached ({exc})"]


def ops_lint(args: argparse.Namespace, store: StateStore) -> int:
    state = store.read()
    _say("SLO check")
    for s in services_now(state):
        _say(
            f"  {s['name']:<14} error rate {s['error_rate']:.4f} (<= {SLO['error_rate']})  "
            f"p95 {s['latency_p95_ms']} ms (<= {SLO['latency_p95_ms']})  "
            f"availability {s['availability']} (>= {SLO['availability']})"
        )
    breaches = slo_breaches(state)
    if breaches:
        for breach in breaches:
            _say(f"  BREACH {breach}")
        _say(f"OUT OF SLO: {len(breaches)} breach(es)")
        return 1
    _say("WITHIN SLO")
    return 0


def ops_tail(args: argparse.Namespace, store: StateStore) -> int:
    lines = store.read()["logs"]
    for line in lines[-args.lines :] if args.lines > 0 else []:
        print(json.dumps(line), flush=True)
    return 0


def _suite(store: StateStore, name: str, total: int, failing: list[str]) -> int:
    """Print a test run's summary; each name in ``failing`` is one failed test."""
    for test in failing:
        _say(f"  ✗ {test}")
    _say(f"{name}: {total - len(failing)} passed, {len(failing)} failed, {total} total")
    _log(store, f"{name}: {len(failing)} failed of {total}", level="error" if failing else "info")
    return 1 if failing else 0


def test_integration(args: argparse.Namespace, store: StateStore) -> int:
    faults = store.read()["faults"]
    failing = []
    if faults.get("health_failing"):
        failing += ["api › GET /health answers 200", "api › sign-in round trip"]
    if faults.get("error_rate_high"):
        failing += ["redemption › redeem points under load"]
    return _suite(store, "integration tests", 24, failing)


def sec_scan(args: argparse.Namespace, store: StateStore) -> int:
    _say("Scanning 412 dependencies and 3 container images…")
    return _suite(store, "security scan", 415, [])


def test_flow(args: argparse.Namespace, store: StateStore) -> int:
    faults = store.read()["faults"]
    failing = []
    if faults.get("health_failing"):
        failing.append("sign in (api is down)")
    if faults.get("error_rate_high"):
        failing.append("redeem 20 points (redemption answered 500)")
    _say("Critical path: sign in → look up balance → redeem points → receipt")
    return _suite(store, "redemption test flow", 4, failing)


def verify_data(args: argparse.Namespace, store: StateStore) -> int:
    records = store.read()["database"]
    problems = database_problems(records)
    counts = ", ".join(f"{len(v)} {k}" for k, v in records.items() if isinstance(v, list))
    _say(f"Checked {counts}")
    if problems:
        for problem in problems:
            _say(f"  ✗ {problem}")
        return _fail("data verification failed")
    _say("Data verified: all references resolve, no negative balances")
    return 0


def deploy(args: argparse.Namespace, store: StateStore) -> int:
    try:
        record = store.deploy(args.version, via="cli")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DeployFailed as exc:
        return _fail(str(exc))
    _say(f"Deployed {record['version']} (was {record['from']})")
    return 0


def rollback(args: argparse.Namespace, store: StateStore) -> int:
    try:
        record = store.rollback(via="cli", to=args.version or None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NothingToRollBack as exc:
        return _fail(str(exc))
    _say(f"Rolled back to {record['version']} (was {record['from']})")
    return 0


def db_backup(args: argparse.Namespace, store: StateStore) -> int:
    output = Path(args.output_path)
    dump = database_dump(store.read())
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(dump, indent=1))
    except OSError as exc:
        return _fail(f"could not write {output}: {exc}")
    _say(
        f"Database backed up to {output} ({output.stat().st_size} bytes, sha256 {dump['sha256'][:12]})"
    )
    _log(store, f"database backed up to {output.name}")
    return 0


def db_restore(args: argparse.Namespace, store: StateStore) -> int:
    source = Path(args.input_path)
    try:
        records = database_from_dump(source.read_text())
    except OSError as exc:
        return _fail(f"could not read {source}: {exc}")
    except ValueError as exc:
        return _fail(f"{source} cannot be restored: {exc}")

    def change(state: dict) -> None:
        state["database"] = records
        append_log(state, f"database restored from {source.name}", level="warning")

    store.update(change)
    _say(f"Database restored from {source}")
    return 0


def fault(args: argparse.Namespace, store: StateStore) -> int:
    changes: dict[str, object] = {args.name: args.switch == "on"}
    if args.seconds is not None:
        changes["slow_seconds"] = args.seconds
    try:
        store.set_faults(changes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _say(f"{args.name} is {args.switch}")
    return 0


def faults(args: argparse.Namespace, store: StateStore) -> int:
    current = store.read()["faults"]
    if args.reset:
        current = store.set_faults(dict.fromkeys(FAULTS, False))
    for name in FAULTS:
        _say(f"{name:<16} {'on' if current.get(name) else 'off'}")
    _say(f"{'slow_seconds':<16} {current.get('slow_seconds')}")
    return 0


# --- wiring --------------------------------------------------------------------------------

UNGUARDED = {"fault", "faults"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m upgrades.demo_target", description="The demo Mycelia's commands."
    )
    parser.add_argument("--state-dir", help="State directory (default $MYCELIA_DEMO_STATE_DIR).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Command, help: str) -> argparse.ArgumentParser:  # noqa: A002
        command = sub.add_parser(name, help=help, description=help)
        command.set_defaults(handler=handler)
        return command

    add("diagnose", diagnose, "Diagnostics report (pnpm run diagnose).").add_argument(
        "--url", help=f"Also probe this service's /health (default ${URL_ENV})."
    )
    add("ops-lint", ops_lint, "SLO check (pnpm run ops:lint).")
    add("ops-tail", ops_tail, "Recent log lines as JSON lines (pnpm run ops:tail).").add_argument(
        "--lines", type=int, default=50, help="How many lines (default 50)."
    )
    add("test-integration", test_integration, "Integration tests (pnpm test:integration).")
    add("sec-scan", sec_scan, "Security scan (pnpm run sec:scan).")
    add("test-flow", test_flow, "Critical paths (redemption --test-flow).")
    add("verify-data", verify_data, "Verify data (shared-kernel --verify-data).")
    add("deploy", deploy, "Deploy a version.").add_argument("version", metavar="VERSION")
    add("rollback", rollback, "Roll back to the previous version (or VERSION).").add_argument(
        "version", metavar="VERSION", nargs="?", default=""
    )
    add("db-backup", db_backup, "Dump the demo database to a file.").add_argument("output_path")
    add("db-restore", db_restore, "Restore the demo database from a dump.").add_argument(
        "input_path"
    )
    switch = add("fault", fault, "Switch one fault on or off.")
    switch.add_argument("name", choices=FAULTS)
    switch.add_argument("switch", choices=("on", "off"))
    switch.add_argument("--seconds", type=float, help="With slow: how long answers take.")
    add("faults", faults, "Show the fault switches.").add_argument(
        "--reset", action="store_true", help="Switch every fault off."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    store = StateStore(args.state_dir)
    if args.command not in UNGUARDED:
        current = store.read()["faults"]
        if current.get("command_hangs"):
            print(f"{args.command}: waiting for a lock held by another deploy…", flush=True)
            while True:  # until killed, like a real command stuck on a lock
                time.sleep(3600)
        if current.get("command_fails"):
            return _fail(
                f"{args.command} crashed: ECONNREFUSED 127.0.0.1:5432 (command_fails fault)"
            )
    return args.handler(args, store)
