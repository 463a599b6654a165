"""The playbook's JSON API, tried with a release manager's, a stakeholder's and an outsider's
token, plus the OpenAPI document generated from it."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema_rs
import pytest
from django.urls import URLResolver, get_resolver

from flags.models import FlagEvent, FlagState, Via
from flags.services import flag_create
from tests.flags.conftest import auth


def _post(client, url, body, token=None, raw=False):
    data = body if raw else json.dumps(body)
    headers = auth(token) if token else {}
    return client.post(url, data=data, content_type="application/json", **headers)


def _state(flag, key="production"):
    return FlagState.objects.get(flag=flag, environment__key=key)


def test_enable__manager_token__on_in_default_environment_and_recorded(
    client, flag, manager_token, manager
):
    response = _post(client, "/api/feature-flags/enable", {"name": flag.key}, manager_token)
    assert response.status_code == 200
    assert response.json() == {
        "changed": True,
        "name": "new-checkout",
        "environment": "production",
        "enabled": True,
        "version": 1,
    }
    event = FlagEvent.objects.filter(flag=flag).first()
    assert (event.via, event.actor, event.environment.key) == (Via.API, manager, "production")


def test_enable__already_on__200_unchanged_no_event(client, flag, manager_token):
    _post(client, "/api/feature-flags/enable", {"name": flag.key}, manager_token)
    events = FlagEvent.objects.count()
    response = _post(client, "/api/feature-flags/enable", {"name": flag.key}, manager_token)
    assert response.status_code == 200 and response.json()["changed"] is False
    assert FlagEvent.objects.count() == events


def test_disable__given_environment_and_reason__only_that_environment(client, flag, manager_token):
    for env in ("production", "staging"):
        _post(
            client,
            "/api/feature-flags/enable",
            {"name": flag.key, "environment": env},
            manager_token,
        )
    response = _post(
        client,
        "/api/feature-flags/disable",
        {"name": flag.key, "environment": "staging", "reason": "bug 12"},
        manager_token,
    )
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert not _state(flag, "staging").enabled and _state(flag, "production").enabled
    assert FlagEvent.objects.filter(flag=flag).first().reason == "bug 12"


def test_enable__default_environment_setting__used(client, flag, manager_token, settings):
    settings.FLAGS_DEFAULT_ENVIRONMENT = "staging"
    response = _post(client, "/api/feature-flags/enable", {"name": flag.key}, manager_token)
    assert response.json()["environment"] == "staging"
    assert _state(flag, "staging").enabled


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        ({"name": "new-checkout", "colour": "red", "env": "x"}, 400, "colour, env"),
        ({}, 400, "Missing fields: name"),
        ({"name": 3}, 400, "'name' must be a string"),
        ({"name": "ghost"}, 404, "ghost"),
        ({"name": "new-checkout", "environment": "moon"}, 404, "moon"),
    ],
)
def test_enable__bad_request__error_names_the_problem(
    client, flag, manager_token, body, status, needle
):
    raw = isinstance(body, str)
    response = _post(client, "/api/feature-flags/enable", body, manager_token, raw=raw)
    assert response.status_code == status
    assert needle in response.json()["error"]
    assert not _state(flag).enabled


@pytest.mark.parametrize(
    "header",
    [None, "Bearer ", "Bearer mfo_wrong", "Token abc", "Basic dXNlcjpwdw=="],
)
def test_api__missing_or_invalid_token__401(client, flag, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for response in (
        client.get("/api/feature-flags", **extra),
        client.post(
            "/api/feature-flags/enable",
            data=json.dumps({"name": flag.key}),
            content_type="application/json",
            **extra,
        ),
    ):
        assert response.status_code == 401
        assert "token" in response.json()["error"]


def test_api__session_login_without_token__401(manager_client, flag):
    response = manager_client.get("/api/feature-flags")
    assert response.status_code == 401


def test_api__revoked_token__401(client, flag, manager):
    from flags.services import api_token_create, api_token_revoke

    token, plaintext = api_token_create(user=manager, name="x", scope="user")
    api_token_revoke(token=token)
    assert client.get("/api/feature-flags", **auth(plaintext)).status_code == 401


WRITES = [
    ("/api/feature-flags/enable", {"name": "new-checkout"}),
    ("/api/feature-flags/disable", {"name": "new-checkout"}),
    ("/api/feature-flags", {"name": "another-flag"}),
]


@pytest.mark.parametrize(("url", "body"), WRITES)
def test_api_write__stakeholder_token__403_and_nothing_changes(
    client, flag, stakeholder_token, url, body
):
    events = FlagEvent.objects.count()
    response = _post(client, url, body, stakeholder_token)
    assert response.status_code == 403
    assert "release managers" in response.json()["error"]
    assert FlagEvent.objects.count() == events


@pytest.mark.parametrize(("url", "body"), WRITES)
def test_api_write__outsider_token__403(client, flag, outsider_token, url, body):
    assert _post(client, url, body, outsider_token).status_code == 403


def test_api_read__outsider_token__403(client, flag, outsider_token):
    assert client.get("/api/feature-flags", **auth(outsider_token)).status_code == 403
    assert client.get(f"/api/feature-flags/{flag.key}", **auth(outsider_token)).status_code == 403


def test_api__evaluation_token__403_everywhere_but_ofrep(client, flag, evaluation_token):
    assert client.get("/api/feature-flags", **auth(evaluation_token)).status_code == 403
    response = _post(client, "/api/feature-flags/enable", {"name": flag.key}, evaluation_token)
    assert response.status_code == 403 and "OFREP" in response.json()["error"]


@pytest.mark.parametrize("who", ["manager_token", "stakeholder_token"])
def test_api_read__viewer_tokens__list_and_detail(client, flag, who, request):
    token = request.getfixturevalue(who)
    listing = client.get("/api/feature-flags", **auth(token))
    assert listing.status_code == 200
    assert [f["name"] for f in listing.json()["results"]] == ["new-checkout"]
    detail = client.get(f"/api/feature-flags/{flag.key}", **auth(token)).json()
    assert detail["environments"]["production"]["enabled"] is False
    assert [e["kind"] for e in detail["history"]] == ["created"]


def test_api_detail__unknown_flag__404_named(client, flag, manager_token):
    response = client.get("/api/feature-flags/ghost", **auth(manager_token))
    assert response.status_code == 404 and "ghost" in response.json()["error"]


def test_api_list__more_than_a_page__paginated(
    client, environments, manager, manager_token, settings
):
    settings.PAGE_SIZE = 2
    for i in range(5):
        flag_create(key=f"flag-{i}", by=manager, via=Via.UI)
    first = client.get("/api/feature-flags", **auth(manager_token)).json()
    assert (first["count"], first["pages"], first["previous"]) == (5, 3, None)
    assert first["next"] == "/api/feature-flags?page=2"
    last = client.get("/api/feature-flags?page=3", **auth(manager_token)).json()
    assert [f["name"] for f in last["results"]] == ["flag-4"] and last["next"] is None
    assert client.get("/api/feature-flags?page=9", **auth(manager_token)).status_code == 400


def test_api_create__manager__201_off_everywhere(client, environments, manager_token):
    response = _post(
        client,
        "/api/feature-flags",
        {"name": "dark-mode", "description": "Dark UI", "tags": ["ui"]},
        manager_token,
    )
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "dark-mode" and body["tags"] == ["ui"] and body["owner"] == "alice"
    assert {k: v["enabled"] for k, v in body["environments"].items()} == {
        "production": False,
        "staging": False,
    }


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "Bad Name"}, 400),
        ({"name": "new-checkout"}, 409),
        ({"name": "x", "owner": "y"}, 400),
    ],
)
def test_api_create__bad_or_duplicate__error(client, flag, manager_token, body, status):
    response = _post(client, "/api/feature-flags", body, manager_token)
    assert response.status_code == status and response.json()["error"]


# ---- OpenAPI document (generated by django-ninja from the code) ---------------------------

FLAG_OPERATIONS = {
    ("get", "/api/feature-flags"),
    ("post", "/api/feature-flags"),
    ("get", "/api/feature-flags/{name}"),
    ("post", "/api/feature-flags/enable"),
    ("post", "/api/feature-flags/disable"),
    ("post", "/ofrep/v1/evaluate/flags"),
    ("post", "/ofrep/v1/evaluate/flags/{key}"),
}
NOT_OPERATIONS = {"/api/", "/api/openapi.json"}  # ninja's root (404) and the document itself


def _routes(patterns, prefix: str = "") -> list[str]:
    routes = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += _routes(pattern.url_patterns, route)
        elif route.startswith(("api/", "ofrep/v1/")):
            routes.append("/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route))
    return routes


def test_openapi__every_operation__listed(client, db):
    # Given the document the API generates and every API and OFREP route Django resolves
    doc = client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    routes = set(_routes(get_resolver().url_patterns)) - NOT_OPERATIONS
    # Then each route is described, and each flags/OFREP operation is there with its method
    assert routes == set(doc["paths"])
    operations = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert operations >= FLAG_OPERATIONS
    assert "/api/openapi.json" not in doc["paths"]


def _validator(doc: dict[str, Any], path: str, method: str, status: int):
    spec = doc["paths"][path][method]["responses"][str(status)]
    schema = spec["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for({**schema, "components": doc["components"]})


def test_openapi__responses__match_their_schemas(client, flag, manager_token, stakeholder_token):
    doc = client.get("/api/openapi.json").json()

    def check(path: str, method: str, response) -> None:
        errors = [
            e.message
            for e in _validator(doc, path, method, response.status_code).iter_errors(
                response.json()
            )
        ]
        assert not errors, f"{method.upper()} {path} {response.status_code}: {errors}"

    token = manager_token
    check("/api/feature-flags", "get", client.get("/api/feature-flags", **auth(token)))
    check("/api/feature-flags", "post", _post(client, "/api/feature-flags", {"name": "x-1"}, token))
    check("/api/feature-flags", "post", _post(client, "/api/feature-flags", {"name": "x-1"}, token))
    check(
        "/api/feature-flags/{name}",
        "get",
        client.get("/api/feature-flags/new-checkout", **auth(token)),
    )
    check("/api/feature-flags/{name}", "get", client.get("/api/feature-flags/nope", **auth(token)))
    check(
        "/api/feature-flags/enable",
        "post",
        _post(client, "/api/feature-flags/enable", {"name": "new-checkout"}, token),
    )
    check(
        "/api/feature-flags/enable",
        "post",
        _post(client, "/api/feature-flags/enable", {"name": "x", "y": 1}, token),
    )
    check(
        "/api/feature-flags/enable",
        "post",
        _post(client, "/api/feature-flags/enable", {"name": "x"}, None),
    )
    check(
        "/api/feature-flags/disable",
        "post",
        _post(client, "/api/feature-flags/disable", {"name": "new-checkout"}, stakeholder_token),
    )
    check(
        "/api/feature-flags/disable",
        "post",
        _post(client, "/api/feature-flags/disable", {"name": "new-checkout"}, token),
    )
    ofrep = "/ofrep/v1/evaluate/flags"
    check(ofrep + "/{key}", "post", _post(client, ofrep + "/new-checkout", {"context": {}}, token))
    check(ofrep + "/{key}", "post", _post(client, ofrep + "/ghost", {"context": {}}, token))
    check(ofrep + "/{key}", "post", _post(client, ofrep + "/new-checkout", {"context": []}, token))
    check(ofrep, "post", _post(client, ofrep, {"context": {"targetingKey": "u"}}, token))
    check(ofrep, "post", _post(client, ofrep, "{", token, raw=True))
    check(ofrep, "post", _post(client, ofrep, {}, "mfo_unknown"))
