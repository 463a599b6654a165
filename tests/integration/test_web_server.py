"""The production web server (`python -m mycelia_ops.serve`: granian, 2 processes) in front of the
test database: pages and sign-in work through it, OFREP answers over kept-alive connections, a
flip reaches every process within a second, and SIGTERM stops it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from flags import services
from flags.models import Via
from tests.conftest import PASSWORD
from tests.integration.conftest import ROOT, _database_url, free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class WebServer:
    def __init__(self, tmp_path: Path, **extra_env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "web.log"
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "MYCELIA_DATA_DIR": str(settings.DATA_DIR),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_WORKERS": "2",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mycelia_ops.serve"], cwd=ROOT, env=env,
            stdout=self.log_path.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_for(self._answers, timeout=30)
        # Both processes up (one answering is not enough: a flip must reach each of them)
        wait_for(lambda: self.log_path.read_text().count("Started worker-") == 2, timeout=30)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the server exited:\n{self.log_path.read_text()}")
        try:
            return httpx.get(f"{self.url}/accounts/login/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            # To the main process only, as Docker or a process manager sends it
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode


@pytest.fixture
def production(db):
    return services.flag_environment_ensure(key="production", name="Production")


@pytest.fixture
def web(tmp_path) -> Iterator[WebServer]:
    server = WebServer(tmp_path)
    yield server
    server.stop()


def test_serve__sign_in_through_the_server__dashboard_shown(web, manager):
    # The server process hashes with the production hasher, not the suite's fast one
    hasher = PBKDF2PasswordHasher()
    manager.password = hasher.encode(PASSWORD, hasher.salt())
    manager.save(update_fields=["password"])
    with httpx.Client(base_url=web.url, timeout=10) as browser:
        login = browser.get("/accounts/login/")
        assert login.status_code == 200
        csrf = browser.cookies["csrftoken"]
        signed_in = browser.post(
            "/accounts/login/",
            data={"username": manager.username, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
            headers={"Referer": f"{web.url}/accounts/login/"},
        )
        assert signed_in.status_code == 302, signed_in.text[:500]
        page = browser.get("/upgrades/")
        assert page.status_code == 200
        assert manager.username in page.text


def test_serve__ofrep_bulk__answers_over_one_kept_alive_connection(web, production, manager):
    services.flag_create(key="search-v2", by=manager, via=Via.CLI)
    _token, plaintext = services.api_token_create(
        user=manager, name="sdk", scope="evaluation", environment=production
    )
    headers = {"Authorization": f"Bearer {plaintext}"}
    body = {"context": {"targetingKey": "user-1"}}
    with httpx.Client(base_url=web.url, timeout=10, headers=headers) as sdk:
        answers = [sdk.post("/ofrep/v1/evaluate/flags", json=body) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert answers[0].json()["flags"][0] == {
        "key": "search-v2",
        "value": False,
        "reason": "DISABLED",
        "variant": "off",
        "metadata": {},
    }
    # HTTP/1.1 keep-alive: the server never asked to close the connection
    assert all(a.headers.get("connection", "").lower() != "close" for a in answers)
    assert answers[0].headers["x-content-type-options"] == "nosniff"


def test_serve__flip__every_process_answers_the_new_state_within_a_second(web, production, manager):
    flag = services.flag_create(key="dark-mode", by=manager, via=Via.CLI)
    _token, plaintext = services.api_token_create(
        user=manager, name="sdk", scope="evaluation", environment=production
    )
    headers = {"Authorization": f"Bearer {plaintext}"}

    def values() -> set[bool]:
        # A new connection per request, so both processes answer some of them
        return {
            httpx.post(
                f"{web.url}/ofrep/v1/evaluate/flags/dark-mode", json={}, headers=headers, timeout=5
            ).json()["value"]
            for _ in range(20)
        }

    assert values() == {False}
    services.flag_set_state(flag=flag, environment=production, on=True, by=manager, via=Via.API)
    # Another process's clock cannot be held: wait for the flip to show, within a second or so.
    wait_for(lambda: values() == {True}, timeout=3.0, every=0.1)


def test_serve__sigterm__stops_cleanly(tmp_path, db):
    server = WebServer(tmp_path)
    started = time.monotonic()
    assert server.stop() == 0, server.log_path.read_text()
    assert time.monotonic() - started < 15


def test_serve__bad_setting__refuses_to_start_with_the_reason(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mycelia_ops.serve"],
        cwd=ROOT,
        env={**os.environ, "WEB_WORKERS": "two"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "WEB_WORKERS must be a whole number, not 'two'" in done.stderr


def test_serve__options__from_the_environment(monkeypatch):
    from mycelia_ops.serve import server_options

    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("WEB_THREADS", "3")
    options = server_options()
    assert (options["port"], options["workers"], options["blocking_threads"]) == (9123, 2, 3)
    monkeypatch.delenv("WEB_THREADS")
    assert server_options()["blocking_threads"] == 2
    assert options["target"] == "mycelia_ops.wsgi:application"
    monkeypatch.setenv("WEB_THREADS", "0")
    with pytest.raises(SystemExit, match="at least 1"):
        server_options()


def test_serve__procfile_docker_and_make_run__all_start_the_same_server():
    assert "web: python -m mycelia_ops.serve" in (ROOT / "Procfile").read_text()
    assert 'CMD ["python", "-m", "mycelia_ops.serve"]' in (ROOT / "Dockerfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert 'command: ["python", "-m", "mycelia_ops.serve"]' in compose
    assert '"-m", "mycelia_ops.serve"' in (ROOT / "scripts" / "run.py").read_text()
