"""The control panel's own health: /health, /ops/status.json and `manage.py diagnose`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import RequestFactory
from django.utils import timezone

from comms.models import WorkerHeartbeat
from comms.services import worker_heartbeat_record
from mycelia_ops import health

pytestmark = pytest.mark.django_db


@pytest.fixture
def rf_get():
    return lambda path: RequestFactory().get(path)


@pytest.fixture
def staff_get(db):
    """A GET from a signed-in staff member, who sees every component of /ops/status.json."""
    staff = User.objects.create_user(username="root", password="x", is_staff=True)

    def get(path):
        request = RequestFactory().get(path)
        request.user = staff
        return request

    return get


@pytest.fixture
def registry():
    yield health.register_component
    for name in ("queued_runs", "broken"):
        health.unregister_component(name)


def _json(response):
    import json

    return json.loads(response.content)


def test_health__database_and_broker_answer__200(rf_get):
    response = health.health(rf_get("/health"))
    assert response.status_code == 200
    assert _json(response) == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_health__broker_unreachable__503_naming_it(rf_get, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"
    response = health.health(rf_get("/health"))
    body = _json(response)
    assert response.status_code == 503 and set(body["errors"]) == {"broker"}
    assert body["errors"]["broker"].strip()  # the connection error, in words


def test_ops_status__no_worker_ever__workers_and_scheduler_failing(staff_get):
    body = _json(health.ops_status(staff_get("/ops/status.json")))
    assert body["status"] == "failing"
    assert set(body["components"]) >= {"web", "database", "broker", "workers", "scheduler"}
    assert body["components"]["workers"]["status"] == "failing"
    assert "celery -A mycelia_ops worker" in body["components"]["workers"]["error"]


def test_ops_status__fresh_beat_heartbeat_and_registered_component__ok(staff_get, registry):
    worker_heartbeat_record(worker="w1@host", from_beat=True)
    registry("queued_runs", lambda: {"status": "ok", "queued": 2, "running": 1})

    body = _json(health.ops_status(staff_get("/ops/status.json")))

    assert body["status"] == "ok", body
    assert body["components"]["workers"]["workers"][0]["name"] == "w1@host"
    assert body["components"]["queued_runs"] == {"status": "ok", "queued": 2, "running": 1}


def test_ops_status__stale_heartbeat_or_broken_check__failing(staff_get, registry):
    worker_heartbeat_record(worker="w1@host", from_beat=True)
    WorkerHeartbeat.objects.update(
        seen_at=timezone.now() - timedelta(hours=1), beat_at=timezone.now() - timedelta(hours=1)
    )
    registry("broken", lambda: 1 / 0)

    components = _json(health.ops_status(staff_get("/ops/status.json")))["components"]

    assert components["workers"]["status"] == "failing"
    assert components["scheduler"]["status"] == "failing"
    assert components["broken"] == {
        "status": "failing",
        "error": "ZeroDivisionError: division by zero",
    }


def test_diagnose__all_well__exit_zero(capsys):
    worker_heartbeat_record(worker="w1@host", from_beat=True)
    call_command("diagnose")
    assert "All components healthy." in capsys.readouterr().out


def test_diagnose__no_worker__non_zero_exit_naming_it(capsys):
    with pytest.raises(CommandError, match="workers, scheduler") as info:
        call_command("diagnose")
    assert info.value.returncode == 1
    assert "FAILING  workers" in capsys.readouterr().out


# --- who sees what on /ops/status.json -------------------------------------------------------

SECRETS = ("host", "pid", "broker", "workers", "w1@host", "components")


def _fully_up():
    worker_heartbeat_record(worker="w1@host", from_beat=True)


def test_ops_status__anonymous__only_ok_and_when(client):
    _fully_up()

    response = client.get("/ops/status.json")

    body = _json(response)
    assert response.status_code == 200
    assert set(body) == {"status", "checked_at"} and body["status"] == "ok"
    assert not any(word in response.content.decode() for word in SECRETS)


def test_ops_status__anonymous_something_failing__degraded_without_naming_it(client):
    # Given no worker has ever reported (workers and scheduler failing)
    body = _json(client.get("/ops/status.json"))
    # Then the anonymous caller learns only that it is degraded
    assert set(body) == {"status", "checked_at"} and body["status"] == "degraded"


def test_ops_status__signed_in_but_not_staff__only_ok_and_when(client, manager):
    _fully_up()
    client.force_login(manager)
    assert set(_json(client.get("/ops/status.json"))) == {"status", "checked_at"}


def test_ops_status__staff_session__every_component(client, db):
    _fully_up()
    client.force_login(User.objects.create_user(username="root", password="x", is_staff=True))

    body = _json(client.get("/ops/status.json"))

    assert body["components"]["web"]["pid"] > 0 and body["components"]["web"]["host"]
    assert body["components"]["workers"]["workers"][0]["name"] == "w1@host"
    assert "broker" in body["components"]["broker"]


def test_ops_status__api_token__every_component(client, manager):
    from flags.models import ApiTokenScope
    from flags.services import api_token_create

    _fully_up()
    _, plaintext = api_token_create(user=manager, name="monitor", scope=ApiTokenScope.USER)

    response = client.get("/ops/status.json", headers={"Authorization": f"Bearer {plaintext}"})

    assert response.status_code == 200
    assert _json(response)["components"]["workers"]["workers"][0]["name"] == "w1@host"


def test_ops_status__evaluation_or_unknown_token__refused_without_details(client, manager):
    from flags.models import ApiTokenScope
    from flags.services import api_token_create, flag_environment_ensure

    environment = flag_environment_ensure(key="production", name="Production")
    _, evaluation = api_token_create(
        user=manager, name="app", scope=ApiTokenScope.EVALUATION, environment=environment
    )

    # An evaluation token ships inside applications: it may not read the details
    response = client.get("/ops/status.json", headers={"Authorization": f"Bearer {evaluation}"})
    assert response.status_code == 403 and "OFREP" in _json(response)["error"]
    # A wrong token is told so (a monitor with a typo must not silently lose the details)
    response = client.get("/ops/status.json", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert "components" not in response.content.decode()
