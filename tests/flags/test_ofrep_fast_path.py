"""The WSGI fast path for OFREP answers exactly what the Django views answer (status, bytes,
headers), skips Django's request handling for the plain case, and hands every other request
to Django."""

from __future__ import annotations

import io
import json

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from flags import services
from flags.models import ApiTokenScope, Via
from mycelia_ops.wsgi import application
from tests.flags.conftest import auth

BULK = "/ofrep/v1/evaluate/flags"
SINGLE = "/ofrep/v1/evaluate/flags/{}"
COMPARED_HEADERS = ("Content-Type", "ETag", "WWW-Authenticate", "X-Content-Type-Options",
                    "Referrer-Policy", "Cross-Origin-Opener-Policy")  # fmt: skip


def _raw(path: str, body: bytes, headers: dict[str, str], *, method: str = "POST",
         length: bool = True, scheme: str = "http"):  # fmt: skip
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver", "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": scheme, "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), **headers,
    }  # fmt: skip
    if length:
        environ["CONTENT_LENGTH"] = str(len(body))
    seen: dict = {}

    def start_response(status, response_headers, exc_info=None):
        seen["status"], seen["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: the test's transaction keeps its connection open.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        content = b"".join(application(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return seen["status"], seen["headers"], content


def _django(client, path: str, body: bytes, headers: dict[str, str]):
    response = client.post(path, data=body, content_type="application/json", **headers)
    return response.status_code, dict(response.headers), response.content


@pytest.fixture
def flags_seeded(environments, manager, production):
    checkout = services.flag_create(key="new-checkout", by=manager, via=Via.UI)
    services.flag_set_state(flag=checkout, environment=production, on=True, by=manager,
                            via=Via.UI)  # fmt: skip
    split = services.flag_create(key="split", by=manager, via=Via.UI)
    services.flag_set_targeting(flag=split, environment=production, rollout_percentage=40,
                                rules=[{"attribute": "plan", "operator": "in", "values": ["pro"]}],
                                by=manager, via=Via.UI)  # fmt: skip
    services.flag_set_state(flag=split, environment=production, on=True, by=manager, via=Via.UI)


@pytest.fixture
def django_requests(monkeypatch) -> list[dict]:
    """The environ of every request Django's handlers build a request object for."""
    from django.core.handlers.wsgi import WSGIHandler, WSGIRequest

    built: list[dict] = []

    class CountedRequest(WSGIRequest):
        def __init__(self, environ):
            built.append(environ)
            super().__init__(environ)

    monkeypatch.setattr(WSGIHandler, "request_class", CountedRequest)
    return built


def _ctx(**context) -> bytes:
    return json.dumps({"context": context}).encode()


@pytest.mark.parametrize(
    "path, body, who",
    [
        (BULK, _ctx(targetingKey="u1"), "manager"),
        (BULK, _ctx(targetingKey="u2", plan="pro"), "evaluation"),
        (BULK, _ctx(), "manager"),  # split needs a key: an error entry in the list
        (BULK, b"{not json", "manager"),
        (BULK, b"[1, 2]", "manager"),
        (BULK, _ctx(targetingKey=5), "manager"),
        (BULK, _ctx(targetingKey="u1"), None),
        (BULK, _ctx(targetingKey="u1"), "unknown"),
        (BULK, _ctx(targetingKey="u1"), "outsider"),
        (SINGLE.format("new-checkout"), _ctx(targetingKey="u1"), "manager"),
        (SINGLE.format("split"), _ctx(), "manager"),
        (SINGLE.format("split"), _ctx(targetingKey="u3"), "manager"),
        (SINGLE.format("nope"), _ctx(targetingKey="u1"), "manager"),
        (SINGLE.format("new-checkout"), b"", "manager"),
    ],
)
def test_fast_path__every_answer__the_same_as_the_django_view(
    client, flags_seeded, manager, outsider, staging_env, production, path, body, who
):
    tokens = {
        "manager": services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1],
        "evaluation": services.api_token_create(
            user=manager, name="e", scope=ApiTokenScope.EVALUATION, environment=production
        )[1],
        "outsider": services.api_token_create(user=outsider, name="o", scope=ApiTokenScope.USER)[1],
        "unknown": "mfo_not-a-token",
    }
    headers = auth(tokens[who]) if who else {}

    fast = _raw(path, body, headers)
    slow = _django(client, path, body, headers)

    assert fast[0] == slow[0]
    assert fast[2] == slow[2]
    for name in COMPARED_HEADERS:
        assert fast[1].get(name) == slow[1].get(name), name


def test_fast_path__etag__304_with_the_same_tag(client, flags_seeded, manager):
    headers = auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])
    status, first, _ = _raw(BULK, _ctx(targetingKey="u1"), headers)
    assert status == 200
    again = {**headers, "HTTP_IF_NONE_MATCH": first["ETag"]}
    fast = _raw(BULK, _ctx(targetingKey="u1"), again)
    slow = _django(client, BULK, _ctx(targetingKey="u1"), again)
    assert (fast[0], fast[2], fast[1]["ETag"]) == (304, b"", first["ETag"])
    assert (slow[0], slow[2], slow[1]["ETag"]) == (304, b"", first["ETag"])


def test_fast_path__plain_post__no_django_request_built(flags_seeded, manager, django_requests):
    headers = auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])
    assert _raw(BULK, _ctx(targetingKey="u1"), headers)[0] == 200
    assert django_requests == []
    # A request that is not the plain case (no Content-Length) goes through Django
    assert _raw(BULK, b"", headers, length=False)[0] == 200
    assert [r["PATH_INFO"] for r in django_requests] == [BULK]


@pytest.mark.parametrize(
    "method, path, expected",
    [("GET", BULK, 405), ("PUT", SINGLE.format("new-checkout"), 405),
     ("POST", "/ofrep/v1/evaluate/flags/a/b", 404)],
)  # fmt: skip
def test_fast_path__other_requests__answered_by_django(flags_seeded, method, path, expected):
    status, headers, body = _raw(path, b"{}", {}, method=method)
    assert status == expected


def test_fast_path__body_over_the_limit__django_refuses_it(flags_seeded, manager, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    headers = auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])
    status, _, _ = _raw(BULK, _ctx(targetingKey="u" * 200), headers)
    assert status == 400


def test_fast_path__https_required__http_left_to_django_and_https_answered_with_hsts(
    flags_seeded, manager, settings, django_requests
):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    headers = auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])
    # Plain http: Django's SecurityMiddleware decides (it redirects when started with the setting)
    _raw(BULK, _ctx(targetingKey="u1"), headers)
    assert [r["wsgi.url_scheme"] for r in django_requests] == ["http"]
    # https: answered here, with the HSTS header SecurityMiddleware would add
    status, response_headers, _ = _raw(BULK, _ctx(targetingKey="u1"), headers, scheme="https")
    assert status == 200 and len(django_requests) == 1
    assert response_headers["Strict-Transport-Security"] == "max-age=3600"


def test_fast_path__flip__seen_by_the_next_request(flags_seeded, manager, production):
    headers = auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])
    path = SINGLE.format("new-checkout")
    assert json.loads(_raw(path, _ctx(), headers)[2])["value"] is True
    services.flag_rollback(flag_key="new-checkout", environment_key="production", by=manager,
                           reason="test")  # fmt: skip
    assert json.loads(_raw(path, _ctx(), headers)[2])["value"] is False
