"""No input answers 500 on the flags API: each input issue 11 lists is its own test, plus the
errors the one mapping in mycelia_ops/api.py gives (400 naming the field, JSON bodies)."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from flags.models import Flag, FlagEvent, FlagState
from tests.flags.conftest import auth

ENABLE = "/api/feature-flags/enable"
CREATE = "/api/feature-flags"


def _post(client, url, raw: bytes | str, token):
    return client.post(url, data=raw, content_type="application/json", **auth(token))


def test_api__json_nested_50000_deep__400_naming_the_depth(client, flag, manager_token):
    # Given a body nested far deeper than Python's stack (RecursionError in json.loads)
    raw = b'{"name": "new-checkout", "reason": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    for url in (ENABLE, CREATE):
        response = _post(client, url, raw, manager_token)
        assert response.status_code == 400
        assert response.json()["error"] == "The request body nests deeper than 32 levels."
    assert not FlagState.objects.filter(enabled=True).exists()


@pytest.mark.parametrize("field", ["reason", "environment"])
def test_enable__lone_surrogate__400_naming_the_field(client, flag, manager_token, field):
    body = '{"name": "new-checkout", "' + field + '": "x\\ud800"}'
    response = _post(client, ENABLE, body, manager_token)
    assert response.status_code == 400
    assert response.json()["field"] == field
    assert f"'{field}'" in response.json()["error"] and "surrogate" in response.json()["error"]
    assert not FlagState.objects.filter(enabled=True).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "dark-mode", "description": "\\ud800"}', "description"),
        ('{"name": "dark-mode", "tags": ["ok", "\\udfff"]}', "tags"),
        ('{"name": "dark-mode", "tags": "a,\\ud800"}', "tags"),
        ('{"name": "\\ud800"}', "name"),
    ],
)
def test_create__lone_surrogate__400_naming_the_field(
    client, environments, manager_token, body, field
):
    response = _post(client, CREATE, body, manager_token)
    assert response.status_code == 400 and response.json()["field"] == field
    assert not Flag.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "new-checkout", "reason": "nul\x00"}, "reason"),
        ({"name": "new-checkout", "environment": "prod\x1b[31m"}, "environment"),
        ({"name": "new\x00checkout"}, "name"),
    ],
)
def test_enable__control_characters__400_naming_the_field(client, flag, manager_token, body, field):
    response = _post(client, ENABLE, json.dumps(body), manager_token)
    assert response.status_code == 400 and response.json()["field"] == field
    assert "control character" in response.json()["error"]


def test_enable__reason_with_tabs_and_line_breaks__kept(client, flag, manager_token):
    body = {"name": "new-checkout", "reason": "rollout\tstep 1\r\nsee #12"}
    assert _post(client, ENABLE, json.dumps(body), manager_token).status_code == 200
    assert FlagEvent.objects.filter(flag=flag).first().reason == "rollout\tstep 1\nsee #12"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_api__unbounded_numbers_in_body__400(client, flag, manager_token, number):
    raw = '{"name": "new-checkout", "reason": ' + number + "}"
    response = _post(client, ENABLE, raw, manager_token)
    assert response.status_code == 400 and response.json()["error"]


@pytest.mark.parametrize("page", ["9" * 30, str(2**63), "0", "-1", "nan", "1.5", "x"])
def test_list__page_out_of_range_or_not_a_number__400_naming_page(
    client, flag, manager_token, page
):
    response = client.get(f"/api/feature-flags?page={page}", **auth(manager_token))
    assert response.status_code == 400 and response.json()["field"] == "page"


@pytest.mark.parametrize("name", ["%00", "a%00b", "%E2%80%AE", "x" * 300, "Bad Name"])
def test_detail__names_no_flag_can_have__404(client, flag, manager_token, name):
    response = client.get(f"/api/feature-flags/{name}", **auth(manager_token))
    assert response.status_code == 404 and response.json()["error"]


def test_create__tags_too_long_in_all__400_naming_tags(client, environments, manager_token):
    body = {"name": "dark-mode", "tags": [f"tag-{i:03}" for i in range(40)]}
    response = _post(client, CREATE, json.dumps(body), manager_token)
    assert response.status_code == 400 and response.json()["field"] == "tags"
    assert not Flag.objects.exists()


def test_create__fields_too_long__400_naming_them(client, environments, manager_token):
    body = {"name": "dark-mode", "description": "x" * 5001}
    response = _post(client, CREATE, json.dumps(body), manager_token)
    assert response.status_code == 400 and response.json()["field"] == "description"
    assert "longer than 5000" in response.json()["error"]


def test_api__body_not_utf8__400(client, flag, manager_token):
    response = _post(client, ENABLE, b'{"name": "\xff"}', manager_token)
    assert response.status_code == 400 and "UTF-8" in response.json()["error"]


def test_api__no_body__400_missing_fields(client, flag, manager_token):
    response = client.post(ENABLE, **auth(manager_token))
    assert response.status_code == 400 and response.json()["error"]


def test_api__unexpected_failure__500_json_logged_to_django_request(
    flag, manager_token, monkeypatch, caplog
):
    # Given a service that fails in a way nobody planned for
    from flags import services

    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "flag_set_state", broken)
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        response = _post(client, ENABLE, json.dumps({"name": "new-checkout"}), manager_token)
    # Then the caller gets JSON, and people get the traceback in the log
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert "logged" in response.json()["error"]
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged and logged[0].exc_info[0] is RuntimeError


def test_api__unknown_api_path__404_json(client, db):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


def test_api__upgrade_error_like_exception__its_status_and_field(flag, manager_token, monkeypatch):
    # Anything carrying .status and .message (upgrades' UpgradeError and the like) is answered
    # with that status and {"error", "field"} by the one mapping
    from flags import services

    class Refused(Exception):
        status, message, field = 409, "Frozen until Monday.", "environment"

    def refuse(**kwargs):
        raise Refused()

    monkeypatch.setattr(services, "flag_set_state", refuse)
    response = _post(Client(), ENABLE, json.dumps({"name": "new-checkout"}), manager_token)
    assert response.status_code == 409
    assert response.json() == {"error": "Frozen until Monday.", "field": "environment"}


def test_enable__bare_install__default_environment_from_migrations(client, manager, db):
    # Given only what the migrations made, and a flag created through the API
    from flags.services import api_token_create

    token = api_token_create(user=manager, name="t", scope="user")[1]
    assert _post(client, CREATE, json.dumps({"name": "dark-mode"}), token).status_code == 201
    # When the playbook's curl runs, then the flag is on in the default environment
    response = _post(client, ENABLE, json.dumps({"name": "dark-mode"}), token)
    assert response.status_code == 200
    assert response.json()["environment"] == "production" and response.json()["enabled"]


def test_enable__default_environment_missing__404_naming_it(client, flag, manager_token, settings):
    settings.FLAGS_DEFAULT_ENVIRONMENT = "moon"
    response = _post(client, ENABLE, json.dumps({"name": "new-checkout"}), manager_token)
    assert response.status_code == 404 and "moon" in response.json()["error"]
