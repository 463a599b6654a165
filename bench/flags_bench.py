#!/usr/bin/env python3
"""Load OFREP bulk and single evaluation under the product's web server, side by side with a
minimal Django view.

    .venv/bin/python bench/flags_bench.py [--duration 10] [--connections 32] [--server gunicorn]

One run: a fresh data folder and database, migrate, seed 20 flags, start the server (`python -m
mycelia_ops.serve`: granian, 2 workers; or gunicorn to compare) on a
free 127.0.0.1 port, then for each scenario a warm-up and a measured run of a load generator
(wrk; a bounded Python asyncio+httpx loop when wrk is missing), and print requests/s, p50/p99 and
the ratio to the baseline's requests/s. The server is always stopped at the end. See README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # every request of this script goes here and nowhere else
TARGET_RATIO = 1.0  # OFREP bulk serves at least as many requests/s as a minimal Django view
TARGET_P99_MS = 25.0


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    authorised: bool
    check: str  # what a correct answer looks like, checked once before loading


@dataclass(frozen=True)
class Result:
    scenario: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# ---------------------------------------------------------------------------------------------
# Setup: data folder, database, seed


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _fresh_database(env: dict[str, str], data_dir: Path) -> str | None:
    """SQLite in the data folder by default. With DATABASE_URL (PostgreSQL), a fresh database
    named mycelia_bench_<random> on that server; returns its name so it can be dropped."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit("DATABASE_URL must be a PostgreSQL URL (or unset for SQLite).")
    import psycopg
    from psycopg import sql

    name = f"mycelia_bench_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env["DATABASE_URL"] = urllib.parse.urlsplit(url)._replace(path=f"/{name}").geturl()
    return name


def _drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _bench_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "MYCELIA_DATA_DIR": str(data_dir),
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("DATABASE_URL", None)  # set again by _fresh_database when given
    return env


def _run(cmd: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


# ---------------------------------------------------------------------------------------------
# Server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _start_server(
    env: dict[str, str], port: int, args: argparse.Namespace, log: Path
) -> subprocess.Popen[bytes]:
    """The product's own server (`python -m mycelia_ops.serve`, granian) by default; gunicorn's
    sync or gthread workers with --server gunicorn, to compare."""
    if args.server == "granian":
        env = {
            **env,
            "HOST": HOST,
            "PORT": str(port),
            "WEB_WORKERS": str(args.workers),
            "WEB_THREADS": str(args.threads),
        }
        cmd = [sys.executable, "-m", "mycelia_ops.serve"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "mycelia_ops.wsgi:application",
            "--chdir",
            str(ROOT),
            "--bind",
            f"{HOST}:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--log-level",
            "warning",
            "--backlog",
            "2048",
        ]
        if args.worker_class == "gthread":
            cmd += ["--threads", str(args.threads)]
    _log(" ".join(cmd[2:]))
    with log.open("wb") as out:
        # Its own process group, so the master and its workers can be stopped together.
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )


def _stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=5)
    except ProcessLookupError:
        pass


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _wait_ready(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text()}")
        try:
            status, _ = _post(f"{base}/bench/baseline", b"{}", {}, timeout=1)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not answer within 30 s:\n{log.read_text()}")


# ---------------------------------------------------------------------------------------------
# Load generators

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
%(auth)s
local users = %(users)d
local n = 0
request = function()
  -- A different user per request (cycling through a pool): no answer is a repeat of the last.
  n = (n + 1) %% users
  local body = '{"context": {"targetingKey": "user-' .. n .. '", "country": "nl", "plan": "pro"}}'
  return wrk.format(nil, nil, nil, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%%d duration_us=%%d p50_us=%%d p99_us=%%d errors=%%d\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def _body(n: int) -> bytes:
    return json.dumps(
        {"context": {"targetingKey": f"user-{n}", "country": "nl", "plan": "pro"}}
    ).encode()


def _wrk(
    url: str, token: str | None, connections: int, threads: int, seconds: int, users: int, tmp: Path
) -> Result:
    auth = f'wrk.headers["Authorization"] = "Bearer {token}"' if token else ""
    script = tmp / "bench.lua"
    script.write_text(LUA % {"auth": auth, "users": users})
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(
        r"BENCH requests=(\d+) duration_us=(\d+) p50_us=(\d+) p99_us=(\d+) errors=(\d+)",
        done.stdout,
    )
    if done.returncode != 0 or not match:
        raise SystemExit(f"wrk failed:\n{done.stdout}\n{done.stderr}")
    requests, duration, p50, p99, errors = (int(g) for g in match.groups())
    return Result("", requests, duration / 1e6, p50 / 1000, p99 / 1000, errors)


async def _httpx_load(
    url: str, token: str | None, connections: int, seconds: int, users: int
) -> Result:
    """The fallback: `connections` keep-alive clients posting in a loop. Bounded by time and by
    a request budget, so it ends even when the server stalls."""
    import httpx

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    budget = 200_000
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=5) as client:

        async def one_client() -> None:
            nonlocal errors, counter
            while time.monotonic() < deadline and counter < budget:
                counter += 1
                started = time.perf_counter()
                try:
                    response = await client.post(
                        url, content=_body(counter % users), headers=headers
                    )
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    return Result("", len(latencies), elapsed, pct(0.50), pct(0.99), errors)


def _load(
    generator: str,
    url: str,
    token: str | None,
    args: argparse.Namespace,
    seconds: int,
    tmp: Path,
) -> Result:
    if generator == "wrk":
        return _wrk(url, token, args.connections, args.wrk_threads, seconds, args.users, tmp)
    return asyncio.run(_httpx_load(url, token, args.connections, seconds, args.users))


def _pick_generator(wanted: str) -> str:
    if wanted in ("auto", "wrk") and shutil.which("wrk"):
        return "wrk"
    if wanted == "wrk" or wanted == "auto":
        if os.geteuid() == 0 and shutil.which("apt-get"):
            _log("wrk is missing; installing it (apt-get install -y wrk)")
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, timeout=300
            )
            if shutil.which("wrk"):
                return "wrk"
        _log(
            "wrk is missing: install it with `sudo apt-get install -y wrk` (Debian/Ubuntu) or "
            "`brew install wrk`. Falling back to the Python asyncio+httpx load generator, which "
            "needs CPU of its own and so reports lower throughput than wrk would."
        )
        if wanted == "wrk":
            raise SystemExit("wrk was asked for and cannot be had.")
    return "python"


# ---------------------------------------------------------------------------------------------
# The run


def _check(base: str, scenario: Scenario, token: str) -> None:
    headers = {"Content-Type": "application/json"}
    if scenario.authorised:
        headers["Authorization"] = f"Bearer {token}"
    status, content = _post(base + scenario.path, _body(1), headers)
    if status != 200 or scenario.check not in content.decode():
        raise SystemExit(f"{scenario.name}: unexpected answer {status}: {content[:500]!r}")


def _table(results: list[Result]) -> str:
    baseline = results[0].rps
    lines = [
        f"{'scenario':<24} {'requests/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>6} {'errors':>7}",
    ]
    for r in results:
        ratio = r.rps / baseline if baseline else 0
        lines.append(
            f"{r.scenario:<24} {r.rps:>11.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
            f"{ratio:>6.2f} {r.errors:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--server",
        choices=["granian", "gunicorn"],
        default="granian",
        help="granian: the product's server (mycelia_ops.serve); gunicorn: to compare",
    )
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument(
        "--worker-class", choices=["gthread", "sync"], default="sync", help="gunicorn only"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per process (default: 2 for granian, the product's WEB_THREADS default; "
        "4 for gunicorn gthread)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=10_000, help="distinct targeting keys")
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=None,
        help="override the database's CONN_MAX_AGE (default: the product's setting)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 600 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be 1..600 and --warmup 0..60 seconds")
    if args.threads is None:
        args.threads = 2 if args.server == "granian" else 4

    generator = _pick_generator(args.loadgen)
    load = os.getloadavg()[0]
    if load > 0.5:
        _log(f"load average {load:.2f} before starting: other work shares the CPUs; expect noise")
    tmp = Path(tempfile.mkdtemp(prefix="mycelia-bench-"))
    env = _bench_env(tmp / "data")
    if args.conn_max_age is not None:
        env["MYCELIA_BENCH_CONN_MAX_AGE"] = str(args.conn_max_age)
    pg_name: str | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        pg_name = _fresh_database(env, tmp / "data")
        database = f"PostgreSQL ({pg_name})" if pg_name else "SQLite (WAL, in a temp folder)"
        database += (
            ", product CONN_MAX_AGE"
            if args.conn_max_age is None
            else f", CONN_MAX_AGE overridden to {args.conn_max_age}"
        )
        _log(f"data in {tmp}; database: {database}")
        _run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], env)
        seeded = json.loads(
            _run([sys.executable, "-m", "bench.seed"], env).strip().splitlines()[-1]
        )
        token = seeded["token"]

        port = _free_port()
        base = f"http://{HOST}:{port}"
        log = tmp / "server.log"
        server = _start_server(env, port, args, log)
        _wait_ready(base, server, log)

        scenarios = [
            Scenario("baseline (Django JSON)", "/bench/baseline", False, '"ok": true'),
            Scenario(
                f"ofrep bulk ({len(seeded['flags'])} flags)",
                "/ofrep/v1/evaluate/flags",
                True,
                f'"key": "{seeded["flags"][-1]}"',
            ),
            Scenario(
                "ofrep single",
                f"/ofrep/v1/evaluate/flags/{seeded['single']}",
                True,
                '"reason": "TARGETING_MATCH"',
            ),
        ]
        results: list[Result] = []
        for scenario in scenarios:
            _check(base, scenario, token)
            the_token = token if scenario.authorised else None
            if args.warmup:
                _load(generator, base + scenario.path, the_token, args, args.warmup, tmp)
            _log(f"{scenario.name}: {args.duration} s at {args.connections} connections")
            measured = _load(generator, base + scenario.path, the_token, args, args.duration, tmp)
            results.append(
                Result(
                    scenario.name,
                    *(
                        getattr(measured, f)
                        for f in ("requests", "seconds", "p50_ms", "p99_ms", "errors")
                    ),
                )
            )
    finally:
        if server is not None:
            _stop_server(server)
        if pg_name:
            _drop_database(pg_name)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    if args.server == "granian":
        server_desc = f"granian (mycelia_ops.serve) {args.workers} workers x {args.threads} thread"
        server_desc += "s" if args.threads != 1 else ""
    else:
        server_desc = f"gunicorn {args.workers} {args.worker_class} workers" + (
            f" x {args.threads} threads" if args.worker_class == "gthread" else ""
        )
    print(
        f"\n{server_desc}; {generator} {args.connections} connections"
        + (f", {args.wrk_threads} threads" if generator == "wrk" else "")
        + f"; {args.duration} s per scenario after {args.warmup} s warm-up; {database}; "
        f"{os.cpu_count()} CPUs (load average {load:.2f} at start); "
        f"targeting keys cycled over {args.users} users\n"
    )
    print(_table(results))
    bulk = results[1]
    ratio = bulk.rps / results[0].rps if results[0].rps else 0
    met = ratio >= TARGET_RATIO and bulk.p99_ms < TARGET_P99_MS
    print(
        f"\nTarget (bulk >= {TARGET_RATIO} x baseline requests/s and bulk p99 < "
        f"{TARGET_P99_MS:g} ms): {'MET' if met else 'NOT MET'} "
        f"(ratio {ratio:.2f}, p99 {bulk.p99_ms:.2f} ms)"
    )
    if any(r.errors for r in results):
        print("Some requests failed (see the errors column): the figures are not trustworthy.")
        return 1
    return 0 if met else 2


if __name__ == "__main__":
    sys.exit(main())
