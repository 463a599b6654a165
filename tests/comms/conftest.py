"""Seeded communications, a real upgrade's context, and a local webhook receiver."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from comms import services
from comms.models import Audience, AudienceKey, Channel, ChannelKind


@pytest.fixture
def seeded(db) -> None:
    services.comms_seed()


class Receiver(ThreadingHTTPServer):
    """Answers `fail_with` (an HTTP status) while set, 200 otherwise; keeps what it got."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.headers_seen: list[dict] = []
        self.fail_with: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: Receiver = self.server  # type: ignore[assignment]
        if server.fail_with:
            self.send_response(server.fail_with)
            self.end_headers()
            self.wfile.write(b"receiver is down")
            return
        server.received.append(json.loads(body))
        server.headers_seen.append(dict(self.headers))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def internal_channels(seeded, receiver):
    """The internal team: two addresses by email and a chat webhook with a secret header."""
    internal = Audience.objects.get(key=AudienceKey.INTERNAL)
    mail = Channel.objects.create(
        audience=internal, name="Team mail", kind=ChannelKind.EMAIL,
        recipients="ops@example.com, oncall@example.com",
    )  # fmt: skip
    hook = Channel.objects.create(
        audience=internal, name="Team chat", kind=ChannelKind.WEBHOOK, url=receiver.url,
        secret_header_name="X-Hook-Secret", secret_header_value="s3cret",
    )  # fmt: skip
    return mail, hook


def upgrade_context(upgrade) -> dict[str, str]:
    """What the upgrades app passes: plain strings from the upgrade's own fields."""
    start = upgrade.window_start or timezone.now() + timedelta(days=1)
    return {
        "version_or_feature": upgrade.version_to or upgrade.flag_key,
        "date_time": start.strftime("%d %b %Y %H:%M UTC"),
        "type": upgrade.get_upgrade_type_display(),
        "duration": f"{upgrade.window_minutes} minutes" if upgrade.window_minutes else "",
        "impact": "Checkout may be slow for a few minutes.",
        "rollback_plan": upgrade.get_rollback_method_display(),
        "contact": upgrade.owner.email,
        "status": "In Progress",
        "progress": "Deployment finished; verifying.",
        "eta": "30 minutes",
        "issues": "None",
        "next_steps": "Watch the SLOs for a day.",
        "upgrade_title": upgrade.title,
        "upgrade_url": f"http://testserver{upgrade.get_absolute_url()}",
    }


def sync(upgrade_id: int = 1, **overrides):
    """status_maintenance_sync with sensible values for one upgrade."""
    now = timezone.now()
    values = {
        "upgrade_id": upgrade_id, "title": f"Upgrade to 1.5.{upgrade_id}",
        "type_label": "Minor version", "environment_key": "staging",
        "environment_name": "Staging", "public": True, "status": "scheduled",
        "window_start": now + timedelta(hours=2), "window_end": now + timedelta(hours=3),
        "progress_percent": 0, "phase_title": "", "url": f"http://testserver/upgrades/{upgrade_id}/",
    }  # fmt: skip
    values.update(overrides)
    return services.status_maintenance_sync(**values)


@pytest.fixture
def login():
    """A client of its own per user (the shared *_client fixtures are one client)."""
    from django.test import Client

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
