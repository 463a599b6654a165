"""The demo Mycelia's state: one JSON file that the HTTP service and the scripts share.

Writers take an exclusive lock on a separate lock file (the state file itself is replaced on
every write, so locking it would lock a file that is about to vanish) and write a temporary
file that ``os.replace`` swaps in; readers therefore always see a whole document.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "MYCELIA_DEMO_STATE_DIR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
# Beside the product's own data, wherever MYCELIA_DATA_DIR puts it.
DEFAULT_STATE_DIR = (
    Path(os.environ.get("MYCELIA_DATA_DIR") or PROJECT_ROOT / "data") / "demo_target"
)
STATE_FILE = "state.json"
LOCK_FILE = "state.lock"

INITIAL_VERSION = "1.4.2"
MAX_LOG_LINES = 500
MAX_HISTORY = 100
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?$")
DUMP_FORMAT = "mycelia-demo-dump/1"

# Boolean switches; "slow_seconds" is the one number, the delay the "slow" switch adds.
FAULTS = (
    "health_failing",
    "error_rate_high",
    "slow",
    "garbage_json",
    "command_hangs",
    "command_fails",
    "deploy_fails",
)
DEFAULT_SLOW_SECONDS = 3.0

# The service level objectives the demo is held to, and each service's figures when well.
SLO = {"error_rate": 0.01, "latency_p95_ms": 500, "availability": 0.999}
BASE_SERVICES = (
    {"name": "api", "error_rate": 0.002, "latency_p95_ms": 120, "availability": 0.9995},
    {"name": "redemption", "error_rate": 0.001, "latency_p95_ms": 180, "availability": 0.9998},
    {"name": "shared-kernel", "error_rate": 0.0005, "latency_p95_ms": 90, "availability": 0.9999},
    {"name": "feature-flags", "error_rate": 0.0008, "latency_p95_ms": 45, "availability": 0.9999},
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def resolve_state_dir(state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The argument, else $MYCELIA_DEMO_STATE_DIR, else data/demo_target in the project."""
    chosen = state_dir or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR
    return Path(chosen).expanduser().resolve()


def _initial_database() -> dict[str, Any]:
    return {
        "accounts": [
            {"id": 1, "name": "Spore Cafe", "balance": 120},
            {"id": 2, "name": "Hyphae Books", "balance": 45},
            {"id": 3, "name": "Fruiting Body Gym", "balance": 300},
        ],
        "redemptions": [
            {"id": 101, "account_id": 1, "points": 20},
            {"id": 102, "account_id": 3, "points": 50},
        ],
    }


def initial_state() -> dict[str, Any]:
    return {
        "version": INITIAL_VERSION,
        "previous_version": None,
        "faults": {**dict.fromkeys(FAULTS, False), "slow_seconds": DEFAULT_SLOW_SECONDS},
        "deployments": [],
        "logs": [
            {"ts": now_iso(), "level": "info", "service": "api", "message": "Mycelia started"},
        ],
        "database": _initial_database(),
    }


class StateStore:
    """Reads and changes the state file in one directory."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = resolve_state_dir(state_dir)
        self.path = self.dir / STATE_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_unlocked(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text())
        except FileNotFoundError:
            return initial_state()
        # Fill in keys a newer demo added, so an old state file keeps working.
        state = initial_state()
        state.update(loaded)
        state["faults"] = {**initial_state()["faults"], **loaded.get("faults", {})}
        return state

    def _write_unlocked(self, state: dict[str, Any]) -> None:
        handle, temp = tempfile.mkstemp(dir=self.dir, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(state, out, indent=1)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def read(self) -> dict[str, Any]:
        return self._read_unlocked()

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to the state under the lock and save it; return what it returns."""
        with self._locked():
            state = self._read_unlocked()
            result = change(state)
            self._write_unlocked(state)
            return result

    # --- changes shared by the HTTP service and the scripts -----------------------------------

    def log(self, message: str, *, level: str = "info", service: str = "ops") -> None:
        self.update(lambda state: append_log(state, message, level=level, service=service))

    def set_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Switch faults; raises ValueError naming an unknown switch or a bad value."""
        cleaned = clean_fault_changes(changes)

        def change(state: dict[str, Any]) -> dict[str, Any]:
            state["faults"].update(cleaned)
            for name, value in cleaned.items():
                shown = value if name == "slow_seconds" else ("on" if value else "off")
                append_log(state, f"fault {name} {shown}", level="warning")
            return dict(state["faults"])

        return self.update(change)

    def deploy(self, version: str, *, via: str) -> dict[str, Any]:
        """Switch to ``version``, keeping the current one for rollback.

        Raises ValueError for a malformed version and DeployFailed when the fault is on.
        """
        if not VERSION_PATTERN.match(version or ""):
            raise ValueError(f"{version!r} is not a version like 1.5.0")

        def change(state: dict[str, Any]) -> dict[str, Any]:
            if state["faults"].get("deploy_fails"):
                append_log(
                    state, f"deploy of {version} failed: migration 0042 aborted", level="error"
                )
                raise DeployFailed(f"deploy of {version} failed: migration 0042 aborted")
            current = state["version"]
            if version != current:
                state["previous_version"] = current
                state["version"] = version
            record = {
                "kind": "deploy",
                "version": version,
                "from": current,
                "at": now_iso(),
                "via": via,
            }
            _record(state, record)
            append_log(state, f"deployed {version} (was {current}) via {via}")
            return record

        return self.update(change)

    def rollback(self, *, via: str, to: str | None = None) -> dict[str, Any]:
        """Go back to the previous version (or ``to``); raises NothingToRollBack."""

        def change(state: dict[str, Any]) -> dict[str, Any]:
            target = to or state.get("previous_version")
            if not target:
                raise NothingToRollBack("no previous version to roll back to")
            if not VERSION_PATTERN.match(target):
                raise ValueError(f"{target!r} is not a version like 1.4.2")
            current = state["version"]
            state["version"] = target
            # One step back only: a second rollback would otherwise flip forward again.
            state["previous_version"] = None
            record = {
                "kind": "rollback",
                "version": target,
                "from": current,
                "at": now_iso(),
                "via": via,
            }
            _record(state, record)
            append_log(state, f"rolled back to {target} (was {current}) via {via}", level="warning")
            return record

        return self.update(change)


class DeployFailed(RuntimeError):
    pass


class NothingToRollBack(RuntimeError):
    pass


def _record(state: dict[str, Any], record: dict[str, Any]) -> None:
    state["deployments"] = [*state.get("deployments", []), record][-MAX_HISTORY:]


def append_log(
    state: dict[str, Any], message: str, *, level: str = "info", service: str = "ops"
) -> None:
    line = {
        "ts": now_iso(),
        "level": level,
        "service": service,
        "version": state.get("version"),
        "message": message,
    }
    state["logs"] = [*state.get("logs", []), line][-MAX_LOG_LINES:]


def clean_fault_changes(changes: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(changes, dict):
        raise ValueError('faults must be a JSON object, e.g. {"slow": true}')
    cleaned: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "slow_seconds":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError("slow_seconds must be a number of seconds, 0 or more")
            cleaned[name] = float(value)
        elif name in FAULTS:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false")
            cleaned[name] = value
        else:
            raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}, slow_seconds")
    return cleaned


# --- what the state looks like from outside ------------------------------------------------


def services_now(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Each service's figures as the faults shape them (fixed numbers, so tests can rely on them)."""
    faults = state["faults"]
    services = []
    for base in BASE_SERVICES:
        service = {**copy.deepcopy(base), "status": "healthy"}
        if faults.get("error_rate_high") and service["name"] in ("api", "redemption"):
            service["error_rate"] = 0.082 if service["name"] == "api" else 0.054
            service["status"] = "degraded"
        if faults.get("slow"):
            service["latency_p95_ms"] = int(max(faults.get("slow_seconds", 0) * 1000, 2400))
            service["status"] = "degraded"
        if faults.get("health_failing") and service["name"] == "api":
            service.update(status="down", error_rate=0.5, availability=0.95)
        services.append(service)
    return services


def overall_status(services: list[dict[str, Any]]) -> str:
    statuses = {s["status"] for s in services}
    if "down" in statuses:
        return "outage"
    return "degraded" if "degraded" in statuses else "operational"


def status_document(state: dict[str, Any]) -> dict[str, Any]:
    services = services_now(state)
    return {
        "version": state["version"],
        "status": overall_status(services),
        "generated_at": now_iso(),
        "services": [
            {k: s[k] for k in ("name", "status", "error_rate", "latency_p95_ms", "availability")}
            for s in services
        ],
        "slo": dict(SLO),
    }


def slo_breaches(state: dict[str, Any]) -> list[str]:
    """Human lines for each service figure outside the SLO."""
    breaches = []
    for s in services_now(state):
        if s["error_rate"] > SLO["error_rate"]:
            breaches.append(f"{s['name']}: error rate {s['error_rate']:.3f} > {SLO['error_rate']}")
        if s["latency_p95_ms"] > SLO["latency_p95_ms"]:
            breaches.append(
                f"{s['name']}: p95 latency {s['latency_p95_ms']} ms > {SLO['latency_p95_ms']} ms"
            )
        if s["availability"] < SLO["availability"]:
            breaches.append(
                f"{s['name']}: availability {s['availability']} < {SLO['availability']}"
            )
    return breaches


# --- the demo "database" -------------------------------------------------------------------


def _checksum(records: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()


def database_dump(state: dict[str, Any]) -> dict[str, Any]:
    records = state["database"]
    return {
        "format": DUMP_FORMAT,
        "version": state["version"],
        "taken_at": now_iso(),
        "sha256": _checksum(records),
        "records": records,
    }


def database_from_dump(text: str) -> dict[str, Any]:
    """The records of a dump; raises ValueError saying what is wrong with a corrupt one."""
    try:
        dump = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the dump is not JSON ({exc})") from None
    if not isinstance(dump, dict) or dump.get("format") != DUMP_FORMAT:
        raise ValueError(f"the dump is not a {DUMP_FORMAT} file")
    records = dump.get("records")
    if not isinstance(records, dict) or _checksum(records) != dump.get("sha256"):
        raise ValueError("the dump's checksum does not match its records")
    problems = database_problems(records)
    if problems:
        raise ValueError("the dump's records are inconsistent: " + "; ".join(problems))
    return records


def database_problems(records: dict[str, Any]) -> list[str]:
    """What verify-data looks for: every redemption belongs to an account, no negative balance."""
    problems = []
    accounts = records.get("accounts")
    redemptions = records.get("redemptions")
    if not isinstance(accounts, list) or not isinstance(redemptions, list):
        return ["accounts and redemptions must both be lists"]
    ids = {a.get("id") for a in accounts if isinstance(a, dict)}
    for account in accounts:
        if not isinstance(account, dict) or not isinstance(account.get("balance"), int):
            problems.append(f"account {account!r} has no whole-number balance")
        elif account["balance"] < 0:
            problems.append(f"account {account['id']} has a negative balance")
    for redemption in redemptions:
        if not isinstance(redemption, dict) or redemption.get("account_id") not in ids:
            problems.append(f"redemption {redemption!r} points at no account")
    return problems
