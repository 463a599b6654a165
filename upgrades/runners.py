"""The checks and actions that workers carry out against an environment, free of Django.

Each function does one outside thing, never raises for an outside failure, and returns a
small frozen result: an ``outcome`` (one of OUTCOMES), the measured values, and a one-line
``reason`` a release manager can read. Tasks turn these into rows; nothing here touches one.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import operator
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

Outcome = Literal["passed", "failed", "inconclusive", "error", "timed_out"]
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "inconclusive", "error", "timed_out")
BODY_CAP_BYTES = 64 * 1024
KILL_GRACE_S = 2.0
_READ_CHUNK = 16 * 1024


def _seconds(value: float) -> str:
    return f"{value:g} s"


# --- conditions and JSON paths ---------------------------------------------------------------

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda value, limit: value in limit,
}


class ConditionError(ValueError):
    """A condition that cannot be judged: unknown op, or a value it cannot compare."""


def _numeric(value: Any) -> Any:
    # JSON figures sometimes arrive as strings ("0.002"); compare them as the numbers they are.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def condition_holds(value: Any, condition: Mapping[str, Any]) -> bool:
    """Whether ``value`` meets ``{"op": "<=", "value": 0.01}``; raises ConditionError."""
    op = condition.get("op") if isinstance(condition, Mapping) else None
    if op not in _OPS or "value" not in condition:
        raise ConditionError(
            f"the condition {condition!r} needs an op ({', '.join(_OPS)}) and a value"
        )
    limit = condition["value"]
    if op in ("<", "<=", ">", ">="):
        value, limit = _numeric(value), _numeric(limit)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConditionError(f"{value!r} is not a number to compare with {limit!r}")
    try:
        return bool(_OPS[op](value, limit))
    except TypeError as exc:
        raise ConditionError(f"{value!r} cannot be compared with {limit!r} ({exc})") from None


def describe_condition(condition: Mapping[str, Any]) -> str:
    return f"{condition.get('op')} {json.dumps(condition.get('value'))}"


_MISSING = object()


def json_path_get(document: Any, path: str) -> Any:
    """``services.0.status`` in a parsed JSON document; raises KeyError naming the missing step."""
    current = document
    for step in path.split(".") if path else []:
        if isinstance(current, list) and re.fullmatch(r"-?\d+", step):
            index = int(step)
            current = current[index] if -len(current) <= index < len(current) else _MISSING
        elif isinstance(current, dict):
            current = current.get(step, _MISSING)
        else:
            current = _MISSING
        if current is _MISSING:
            raise KeyError(step)
    return current


# --- HTTP probes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpProbeResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int | None
    value: Any
    reason: str
    body: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    latency_ms: int
    body: str
    truncated: bool


def _read_capped(response: httpx.Response, cap: int, deadline: float) -> tuple[bytes, bool]:
    """The body, at most ``cap`` bytes; raises httpx.ReadTimeout when the deadline passes."""
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept.extend(chunk[: cap - len(kept)])
        if len(kept) >= cap:
            return bytes(kept), True
        # httpx times each read, not the whole body: a trickling server is stopped here.
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("the body took too long")
    return bytes(kept), False


def _request(
    client: httpx.Client | None,
    method: str,
    url: str,
    *,
    label: str,
    timeout_s: float,
    body_cap_bytes: int,
    **kwargs: Any,
) -> _Answer | tuple[Outcome, str]:
    """One request, or the outcome and reason when no whole answer came."""
    started = time.monotonic()
    http = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    try:
        with http.stream(method, url, timeout=timeout_s, **kwargs) as response:
            raw, truncated = _read_capped(response, body_cap_bytes, started + timeout_s)
            encoding = response.encoding or "utf-8"
            status = response.status_code
    except httpx.TimeoutException:
        return "timed_out", f"{label} timed out after {_seconds(timeout_s)}"
    except httpx.ConnectError as exc:
        return "error", f"{label} could not connect: {exc or 'connection refused'}"
    except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as exc:
        return "error", f"{label} failed: {exc or type(exc).__name__}"
    finally:
        if client is None:
            http.close()
    latency_ms = round((time.monotonic() - started) * 1000)
    return _Answer(status, latency_ms, raw.decode(encoding, errors="replace"), truncated)


def _status_ok(status: int, expected: int | Iterable[int] | None) -> bool:
    if expected is None:
        return 200 <= status < 300
    if isinstance(expected, int | str):
        return status == int(expected)
    return status in {int(e) for e in expected}


def _judge_body(
    answer: _Answer,
    label: str,
    json_path: str | None,
    condition: Mapping[str, Any] | None,
    fail_condition: Mapping[str, Any] | None,
) -> tuple[Outcome, str, Any]:
    answered = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    try:
        document = json.loads(answer.body)
    except ValueError:
        cut = " (cut at the size limit)" if answer.truncated else ""
        return "failed", f"{label} answered {answer.status} but the body is not JSON{cut}", None
    try:
        value = json_path_get(document, json_path or "")
    except KeyError as exc:
        return (
            "failed",
            f"{label} answered {answer.status} but the body has no {json_path} (no {exc})",
            None,
        )
    shown = (
        f"{json_path} = {json.dumps(value)}" if json_path else f"the body {json.dumps(value)[:80]}"
    )
    if condition is None:
        return "passed", f"{answered}; {shown}", value
    wanted = f"{answered}; {shown}, wanted {describe_condition(condition)}"
    try:
        if condition_holds(value, condition):
            return "passed", wanted, value
        if fail_condition is not None and not condition_holds(value, fail_condition):
            return (
                "inconclusive",
                f"{answered}; {shown}: not {describe_condition(condition)}, "
                f"yet not {describe_condition(fail_condition)} either",
                value,
            )
    except ConditionError as exc:
        return "error", f"{answered}; cannot judge {shown}: {exc}", value
    return "failed", wanted, value


def http_probe(
    *,
    url: str,
    method: str = "GET",
    timeout_s: float,
    expected_status: int | Iterable[int] | None = None,
    json_path: str | None = None,
    condition: Mapping[str, Any] | None = None,
    fail_condition: Mapping[str, Any] | None = None,
    client: httpx.Client | None = None,
    body_cap_bytes: int = BODY_CAP_BYTES,
) -> HttpProbeResult:
    """Request ``url`` and judge the answer.

    passed: the status is expected (any 2xx by default) and, with a condition, the value at
    ``json_path`` (the whole JSON body without one) meets it. failed: the status is wrong, the
    body is not JSON or lacks the path, or the value misses the condition; with a
    ``fail_condition`` only values meeting it fail, and the ones between are inconclusive.
    timed_out: no whole answer within ``timeout_s``. error: no answer at all (refused, bad URL)
    or a condition that cannot be judged.
    """
    method = method.upper()
    label = f"{method} {urlsplit(url).path or '/'}"
    answer = _request(
        client, method, url, label=label, timeout_s=timeout_s, body_cap_bytes=body_cap_bytes
    )
    if isinstance(answer, tuple):
        return HttpProbeResult(answer[0], None, None, None, answer[1], None)
    answered = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    value = None
    if not _status_ok(answer.status, expected_status):
        wanted = f" (expected {expected_status})" if expected_status is not None else ""
        outcome: Outcome = "failed"
        reason = answered + wanted
    elif json_path is None and condition is None:
        outcome, reason = "passed", answered
    else:
        outcome, reason, value = _judge_body(answer, label, json_path, condition, fail_condition)
    return HttpProbeResult(outcome, answer.status, answer.latency_ms, value, reason, answer.body)


# --- the status document and SLOs -----------------------------------------------------------

METRICS = ("error_rate", "latency_p95_ms", "availability")
# Overall figures are the worst service's: an SLO is broken when any service breaks it.
_WORST = {"error_rate": max, "latency_p95_ms": max, "availability": min}


@dataclass(frozen=True)
class StatusEvaluation:
    outcome: Outcome
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def status_json_evaluate(document: Any) -> StatusEvaluation:
    """Judge a parsed /ops/status.json: passed when every service says "healthy".

    figures: {"version", "status", "overall": {metric: worst value}, "services": {name:
    {"status", metric: value}}}. A document missing a field or with one of the wrong type
    fails, with the field named and no figures.
    """

    def broken(what: str) -> StatusEvaluation:
        return StatusEvaluation("failed", f"The status document is malformed: {what}")

    if not isinstance(document, dict):
        return broken(f"expected a JSON object, got {type(document).__name__}")
    services = document.get("services")
    if not isinstance(services, list) or not services:
        return broken('"services" is missing or not a non-empty list')
    per_service: dict[str, dict[str, Any]] = {}
    for index, service in enumerate(services):
        if not isinstance(service, dict):
            return broken(f"services.{index} is not an object")
        name = service.get("name")
        if not isinstance(name, str) or not name:
            return broken(f"services.{index}.name is missing")
        if not isinstance(service.get("status"), str):
            return broken(f"services.{index}.status ({name}) is missing or not text")
        entry: dict[str, Any] = {"status": service["status"]}
        for metric in METRICS:
            value = service.get(metric)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return broken(f"services.{index}.{metric} ({name}) is missing or not a number")
            entry[metric] = value
        per_service[name] = entry
    overall = {m: _WORST[m](s[m] for s in per_service.values()) for m in METRICS}
    figures = {
        "version": document.get("version"),
        "status": document.get("status"),
        "overall": overall,
        "services": per_service,
    }
    unwell = [
        f"{name} is {s['status']}" for name, s in per_service.items() if s["status"] != "healthy"
    ]
    if unwell:
        return StatusEvaluation(
            "failed",
            f"{len(unwell)} of {len(per_service)} services unwell: {', '.join(unwell)}",
            figures,
        )
    return StatusEvaluation("passed", f"All {len(per_service)} services healthy", figures)


@dataclass(frozen=True)
class SloEvaluation:
    outcome: Outcome
    reason: str
    breaches: list[dict[str, Any]] = field(default_factory=list)


def slo_evaluate(
    *, figures: Mapping[str, Any], thresholds: Sequence[tuple[str, str, float]]
) -> SloEvaluation:
    """Hold ``figures`` ({metric: value}) to ``thresholds`` ([(metric, op, limit)]).

    passed when every figure meets its threshold; failed naming each breach; error when a
    figure is missing or a threshold cannot be judged (nothing can be said about it).
    """
    if not thresholds:
        return SloEvaluation("error", "No SLO thresholds to check against")
    breaches: list[dict[str, Any]] = []
    for metric, op, limit in thresholds:
        value = figures.get(metric)
        if value is None:
            return SloEvaluation("error", f"No figure for {metric} to hold to {op} {limit}")
        try:
            held = condition_holds(value, {"op": op, "value": limit})
        except ConditionError as exc:
            return SloEvaluation("error", f"Cannot judge {metric}: {exc}")
        if not held:
            breaches.append({"metric": metric, "op": op, "limit": limit, "value": value})
    if breaches:
        named = "; ".join(
            f"{b['metric']} is {b['value']}, wanted {b['op']} {b['limit']}" for b in breaches
        )
        return SloEvaluation("failed", f"Out of SLO: {named}", breaches)
    return SloEvaluation("passed", f"Within SLO on {len(thresholds)} threshold(s)")


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    outcome: Outcome
    exit_code: int | None
    duration_ms: int
    output: str
    truncated: bool
    reason: str


def _command_label(argv: Sequence[str]) -> str:
    shown = shlex.join([Path(argv[0]).name, *argv[1:]])
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is left in the group.

    On Linux this reads /proc, because a container's init may never reap orphans and
    their zombies would look alive to ``killpg(pgid, 0)`` forever.
    """
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while we looked
        if fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _dying_with_parent(argv: list[str]) -> list[str]:
    """Have Linux kill the command if the worker running it dies (setpriv's parent-death
    signal), so a crashed worker leaves no orphan finishing the work behind a retry's back.
    Elsewhere the argument list is run as it is."""
    setpriv = shutil.which("setpriv")
    if setpriv and sys.platform.startswith("linux"):
        return [setpriv, "--pdeathsig", "KILL", "--", *argv]
    return argv


def _kill_group(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM the whole process group, give it ``grace_s`` to go, then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    give_up = time.monotonic() + grace_s
    while time.monotonic() < give_up:
        proc.poll()  # reap the leader, or its zombie keeps the group alive
        if not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class _Output:
    """Keeps the first ``cap`` bytes of a command's output and hands them on as text."""

    def __init__(self, cap: int, on_output: Callable[[str], None] | None) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.truncated = False
        self.tail = b""  # the last bytes, even past the cap, so a failure's reason can quote them
        self.listener_problem = ""
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _deliver(self, text: str) -> None:
        if not text or self._on_output is None:
            return
        try:
            self._on_output(text)
        except Exception as exc:  # noqa: BLE001 - a broken listener must not orphan the process
            self.listener_problem = f" (live output stopped: {exc})"
            self._on_output = None

    def take(self, chunk: bytes) -> None:
        self.tail = (self.tail + chunk)[-2048:]
        if self.truncated:
            return
        room = self.cap - len(self.kept)
        self.kept.extend(chunk[:room])
        self._deliver(self._decoder.decode(chunk[:room]))
        if len(chunk) > room:
            self.truncated = True
            self.finish()

    def finish(self) -> None:
        self._deliver(self._decoder.decode(b"", final=True))

    @property
    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def _pump(proc: subprocess.Popen[bytes], output: _Output, deadline: float) -> bool:
    """Read the output until it ends or the deadline passes; True when the command is still
    running at the deadline."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(timeout=min(remaining, 0.2)):
                try:
                    chunk = os.read(fd, _READ_CHUNK)
                except BlockingIOError:
                    continue
                if not chunk:
                    break  # end of output: every writer has closed it
                output.take(chunk)
            elif proc.poll() is not None:
                break  # exited, and only a detached descendant still holds the pipe
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.05))
    except subprocess.TimeoutExpired:
        return True
    return False


def _drain(proc: subprocess.Popen[bytes], output: _Output) -> None:
    # Whatever was written before the end is still worth keeping.
    assert proc.stdout is not None
    with contextlib.suppress(OSError):
        while chunk := os.read(proc.stdout.fileno(), _READ_CHUNK):
            output.take(chunk)
    proc.stdout.close()
    if not output.truncated:
        output.finish()


def command_run(
    *,
    argv: Sequence[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float,
    output_cap_bytes: int = 65536,
    on_output: Callable[[str], None] | None = None,
    label: str | None = None,
    kill_grace_s: float = KILL_GRACE_S,
) -> CommandResult:
    """Run ``argv`` (a list, never through a shell) and report how it went.

    stdout and stderr are merged in order. ``env`` is added to this process's environment
    (commands need PATH and HOME as much as their own variables). ``on_output`` receives
    text as it arrives, up to the cap; the result keeps the same first ``output_cap_bytes``.
    The command runs in its own process group, so on timeout the whole group is stopped,
    children too.
    """
    started = time.monotonic()

    def cannot_run(why: str) -> CommandResult:
        duration_ms = round((time.monotonic() - started) * 1000)
        return CommandResult("error", None, duration_ms, "", False, f"{name} cannot run: {why}")

    name = "The command"
    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        return cannot_run(f"it must be a non-empty list of strings, not {argv!r}")
    name = label or _command_label(argv)
    if cwd is not None and not Path(cwd).is_dir():
        return cannot_run(f"the working directory {cwd} does not exist")
    # Looked up here, not left to exec: behind setpriv a missing program is only an exit code.
    search_path = (env or {}).get("PATH", os.environ.get("PATH"))
    program = argv[0] if os.sep in argv[0] else shutil.which(argv[0], path=search_path)
    if program is None or not Path(cwd or ".", program).exists():
        return cannot_run(f"{argv[0]} was not found (is it installed and on PATH?)")
    if not os.access(Path(cwd or ".", program), os.X_OK):
        return cannot_run(f"{argv[0]} is not executable")
    try:
        proc = subprocess.Popen(
            _dying_with_parent(list(argv)),
            cwd=cwd,
            env={**os.environ, **env} if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        return cannot_run(f"{argv[0]} was not found (is it installed and on PATH?)")
    except PermissionError:
        return cannot_run(f"{argv[0]} is not executable")
    except OSError as exc:
        return cannot_run(str(exc))

    output = _Output(output_cap_bytes, on_output)
    timed_out = _pump(proc, output, started + timeout_s)
    if timed_out:
        _kill_group(proc, kill_grace_s)
    _drain(proc, output)

    duration_ms = round((time.monotonic() - started) * 1000)
    code = None if timed_out else proc.returncode
    if timed_out:
        outcome: Outcome = "timed_out"
        reason = f"{name} did not finish within {_seconds(timeout_s)} and was killed"
    elif code == 0:
        outcome, reason = "passed", f"{name} finished in {_seconds(round(duration_ms / 1000, 1))}"
    else:
        outcome = "failed"
        try:
            cause = (
                f"was killed by {signal.Signals(-code).name}"
                if code < 0
                else f"exited with code {code}"
            )
        except ValueError:
            cause = f"was killed by signal {-code}"
        last = _last_line(output.tail.decode("utf-8", errors="replace"))
        reason = f"{name} {cause} after {_seconds(round(duration_ms / 1000, 1))}" + (
            f": {last}" if last else ""
        )
    return CommandResult(
        outcome, code, duration_ms, output.text, output.truncated, reason + output.listener_problem
    )


# --- webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int | None
    reason: str
    body: str | None


def webhook_post(
    *,
    url: str,
    payload: Mapping[str, Any],
    secret_header_name: str | None = None,
    secret: str | None = None,
    timeout_s: float,
    client: httpx.Client | None = None,
) -> WebhookResult:
    """POST ``payload`` as JSON; passed on any 2xx. The secret, if both parts are given, goes
    in its header and never into the reason."""
    headers = {"User-Agent": "mycelia-ops"}
    if secret_header_name and secret:
        headers[secret_header_name] = secret
    label = f"POST {urlsplit(url).path or '/'}"
    answer = _request(
        client,
        "POST",
        url,
        label=label,
        timeout_s=timeout_s,
        body_cap_bytes=BODY_CAP_BYTES,
        json=dict(payload),
        headers=headers,
    )
    if isinstance(answer, tuple):
        return WebhookResult(answer[0], None, None, answer[1], None)
    reason = f"{label} answered {answer.status} after {answer.latency_ms} ms"
    if 200 <= answer.status < 300:
        return WebhookResult("passed", answer.status, answer.latency_ms, reason, answer.body)
    # The receiver's own words on a failure are usually the most useful part of the reason.
    snippet = " ".join(answer.body.split())[:160]
    reason += f": {snippet}" if snippet else ""
    return WebhookResult("failed", answer.status, answer.latency_ms, reason, answer.body)


# --- configuration archive ------------------------------------------------------------------


@dataclass(frozen=True)
class ArchiveResult:
    path: str | None  # None when no archive was made; the reason says why
    sha256: str | None
    size_bytes: int | None
    reason: str


def config_archive(
    *, source_dir: str | os.PathLike[str], dest_dir: str | os.PathLike[str], label: str
) -> ArchiveResult:
    """The playbook's ``cp -r config/ config-backup-$(date +%Y%m%d-%H%M%S)/`` as one
    ``<label>-<UTC stamp>.tar.gz`` in ``dest_dir``, with its SHA-256.

    Symlinks are stored as links, not followed, so nothing outside the folder is copied.
    """
    source = Path(source_dir)
    if not source.is_dir():
        return ArchiveResult(None, None, None, f"The configuration folder {source} does not exist")
    safe_label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip(".-") or "config-backup"
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dest = Path(dest_dir)
    temp_name = None
    try:
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / f"{safe_label}-{stamp}.tar.gz"
        number = 1
        while target.exists():  # two archives in one second keep both
            target = dest / f"{safe_label}-{stamp}-{number}.tar.gz"
            number += 1
        # Written aside and renamed, so a half-written archive never carries the final name.
        handle, temp_name = tempfile.mkstemp(dir=dest, prefix=".archive-", suffix=".tar.gz")
        os.close(handle)
        with tarfile.open(temp_name, "w:gz") as archive:
            archive.add(source, arcname=source.resolve().name or "config")
        digest = hashlib.sha256()
        with open(temp_name, "rb") as written:
            for block in iter(lambda: written.read(1024 * 1024), b""):
                digest.update(block)
        os.replace(temp_name, target)
        temp_name = None
    except OSError as exc:
        return ArchiveResult(None, None, None, f"Could not archive {source}: {exc}")
    finally:
        if temp_name:
            with contextlib.suppress(OSError):
                os.unlink(temp_name)
    size = target.stat().st_size
    files = sum(1 for p in source.rglob("*") if p.is_file())
    return ArchiveResult(
        str(target),
        digest.hexdigest(),
        size,
        f"Archived {files} file(s) from {source} to {target.name} ({size} bytes)",
    )
