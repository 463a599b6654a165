"""The demo Mycelia's HTTP service, on the standard library's threading HTTP server.

GET  /health            200 {"status": "ok", "version": ...}, or 503 with the health fault
GET  /ops/status.json   the status document (non-JSON with the garbage_json fault)
POST /deploy            {"version": "x.y.z"}; checks the shared secret header if one is set
POST /rollback          {} or {"version": "x.y.z"}; back to the previous version
GET  /faults            the fault switches
POST /faults            {"slow": true, "slow_seconds": 2, ...} switches some of them
GET  /logs?lines=N      recent log lines, as JSON lines
GET  /metrics           Prometheus metrics that the faults move (upgrades/demo_target/metrics.py)

/faults, /logs and /metrics are never slowed, so a demo (or a test) can always switch the faults
off, and a scrape sees the slowness in the latency histogram instead of timing out.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from upgrades.demo_target.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from upgrades.demo_target.metrics import DemoMetrics
from upgrades.demo_target.state import (
    DeployFailed,
    NothingToRollBack,
    StateStore,
    append_log,
    status_document,
)

SECRET_ENV = "MYCELIA_DEMO_SECRET"
SECRET_HEADER = "X-Mycelia-Secret"
MAX_BODY_BYTES = 64 * 1024
UNSLOWED_PATHS = ("/faults", "/logs", "/metrics")


class DemoServer(ThreadingHTTPServer):
    """Carries the state store and settings that each request handler needs."""

    daemon_threads = True  # a slowed answer must not hold up shutdown

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store: StateStore,
        secret: str | None = None,
        quiet: bool = False,
    ) -> None:
        super().__init__(address, DemoHandler)
        self.store = store
        self.secret = secret
        self.quiet = quiet
        self.metrics = DemoMetrics()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class DemoHandler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "MyceliaDemo/1"

    # --- plumbing ------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        if not self.server.quiet:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        # The client may have given up on a slowed answer; that is its business, not an error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    def _json(self, status: int, document: Any) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _body(self) -> dict[str, Any] | None:
        """The request's JSON object ({} when empty); None after answering 400/413."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body is too large")
            return None
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "the body is not JSON")
            return None
        if not isinstance(body, dict):
            self._error(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
            return None
        return body

    def _authorised(self) -> bool:
        if not self.server.secret:
            return True
        given = self.headers.get(SECRET_HEADER, "")
        if hmac.compare_digest(given.encode(), self.server.secret.encode()):
            return True
        self._error(HTTPStatus.UNAUTHORIZED, f"missing or wrong {SECRET_HEADER} header")
        return False

    def _slow_down(self, path: str, state: dict[str, Any]) -> None:
        faults = state["faults"]
        if faults.get("slow") and path not in UNSLOWED_PATHS:
            time.sleep(float(faults.get("slow_seconds", 0)))

    # --- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the base class names it
        url = urlsplit(self.path)
        state = self.server.store.read()
        self._slow_down(url.path, state)
        if url.path == "/health":
            if state["faults"].get("health_failing"):
                self._json(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    {"status": "failing", "version": state["version"], "error": "api is down"},
                )
            else:
                self._json(HTTPStatus.OK, {"status": "ok", "version": state["version"]})
        elif url.path == "/ops/status.json":
            if state["faults"].get("garbage_json"):
                self._send(HTTPStatus.OK, b"<html><body>502 Bad Gateway", "application/json")
            else:
                self._json(HTTPStatus.OK, status_document(state))
        elif url.path == "/faults":
            self._json(HTTPStatus.OK, state["faults"])
        elif url.path == "/metrics":
            self._send(HTTPStatus.OK, self.server.metrics.exposition(state), METRICS_CONTENT_TYPE)
        elif url.path == "/logs":
            try:
                lines = max(int(parse_qs(url.query).get("lines", ["50"])[0]), 0)
            except ValueError:
                self._error(HTTPStatus.BAD_REQUEST, "lines must be a whole number")
                return
            tail = state["logs"][-lines:] if lines else []
            text = "".join(json.dumps(line) + "\n" for line in tail)
            self._send(HTTPStatus.OK, text.encode(), "application/x-ndjson")
        else:
            self._error(HTTPStatus.NOT_FOUND, f"nothing at {url.path}")

    def do_POST(self) -> None:  # noqa: N802 - the base class names it
        path = urlsplit(self.path).path
        store = self.server.store
        self._slow_down(path, store.read())
        body = self._body()
        if body is None:
            return
        if path == "/faults":
            changes = {k: v for k, v in body.items() if k not in ("operation", "environment")}
            try:
                self._json(HTTPStatus.OK, store.set_faults(changes))
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
        elif path == "/deploy":
            if not self._authorised():
                return
            try:
                record = store.deploy(str(body.get("version", "")), via="http")
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except DeployFailed as exc:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc))
            else:
                self._json(HTTPStatus.OK, record)
        elif path == "/rollback":
            if not self._authorised():
                return
            try:
                record = store.rollback(via="http", to=str(body.get("version") or "") or None)
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except NothingToRollBack as exc:
                self._error(HTTPStatus.CONFLICT, str(exc))
            else:
                self._json(HTTPStatus.OK, record)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"nothing at {path}")


def make_server(
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    state_dir: str | os.PathLike[str] | None = None,
    secret: str | None = None,
    quiet: bool = False,
) -> DemoServer:
    """A bound, not yet serving, demo server; port 0 picks a free port.

    The secret defaults to $MYCELIA_DEMO_SECRET; without one, deploy and rollback are open.
    """
    store = StateStore(state_dir)
    store.update(lambda state: append_log(state, "HTTP service starting", service="api"))
    return DemoServer(
        (host, port),
        store=store,
        secret=secret if secret is not None else os.environ.get(SECRET_ENV) or None,
        quiet=quiet,
    )


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8100,
    state_dir: str | os.PathLike[str] | None = None,
    secret: str | None = None,
) -> None:
    """Run in the foreground until Ctrl-C."""
    server = make_server(host=host, port=port, state_dir=state_dir, secret=secret)
    print(f"Demo Mycelia at {server.url}/ (state in {server.store.dir})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Demo Mycelia stopped.", file=sys.stderr)
    finally:
        server.server_close()
