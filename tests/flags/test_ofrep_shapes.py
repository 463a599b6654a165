"""One OFREP implementation: every shape of request is answered by the OFREP views themselves,
in OFREP's error shape with an errorCode, the same through the lean WSGI stack that serves
production (mycelia_ops.wsgi.application) and through the full stack (the test client); paths
decoded as Django decodes them; failures logged to django.request; no input answered 500."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from flags import runtime, services
from flags.models import ApiTokenScope, FlagEnvironment, Via
from mycelia_ops.wsgi import LeanHandler, application
from tests.flags.conftest import auth

BULK = "/ofrep/v1/evaluate/flags"
SINGLE = "/ofrep/v1/evaluate/flags/{}"
SECURITY_HEADERS = ("X-Content-Type-Options", "Referrer-Policy", "Cross-Origin-Opener-Policy")


def _raw(path: str, body: bytes, headers: dict[str, str], *, method: str = "POST",
         length: bool = True, scheme: str = "http", app=application):  # fmt: skip
    """Call the WSGI application as a server would. `path` is PATH_INFO as a WSGI server
    hands it over: the raw bytes of the URL path, decoded as latin-1."""
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
        result = app(environ, start_response)
        content = b"".join(result)
        result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return seen["status"], seen["headers"], content


def _django(client, path: str, body: bytes, headers: dict[str, str], method: str = "post"):
    response = getattr(client, method)(path, data=body, content_type="application/json", **headers)
    return response.status_code, dict(response.headers), response.content


def _ctx(**context) -> bytes:
    return json.dumps({"context": context}).encode()


@pytest.fixture(autouse=True)
def _fresh_tokens():
    runtime.tokens.clear()
    yield
    runtime.tokens.clear()


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
def token(flags_seeded, manager) -> dict[str, str]:
    return auth(services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1])


DEEP = b'{"context": {"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"


@pytest.mark.parametrize(
    "method, path, body, who",
    [
        ("POST", BULK, _ctx(targetingKey="u1"), "manager"),
        ("POST", BULK, _ctx(targetingKey="u2", plan="pro"), "evaluation"),
        ("POST", BULK, _ctx(), "manager"),  # split needs a key: an error entry in the list
        ("POST", BULK, b"{not json", "manager"),
        ("POST", BULK, b"[1, 2]", "manager"),
        ("POST", BULK, _ctx(targetingKey=5), "manager"),
        ("POST", BULK, _ctx(targetingKey="u1"), None),
        ("POST", BULK, _ctx(targetingKey="u1"), "unknown"),
        ("POST", BULK, _ctx(targetingKey="u1"), "outsider"),
        ("POST", BULK, DEEP, "manager"),
        ("POST", BULK, b'{"context": {"targetingKey": "\\ud800"}}', "manager"),
        ("POST", BULK, b'{"context": {"n": NaN}}', "manager"),
        ("POST", BULK, b'{"context": {"n": 1e999}}', "manager"),
        ("POST", BULK, b"\xff\xfe", "manager"),
        ("POST", SINGLE.format("new-checkout"), _ctx(targetingKey="u1"), "manager"),
        ("POST", SINGLE.format("split"), _ctx(), "manager"),
        ("POST", SINGLE.format("split"), _ctx(targetingKey="u3"), "manager"),
        ("POST", SINGLE.format("nope"), _ctx(targetingKey="u1"), "manager"),
        ("POST", SINGLE.format("new-checkout"), b"", "manager"),
        ("POST", SINGLE.format("split"), DEEP, "manager"),
        ("POST", SINGLE.format("split"), b'{"context": {"targetingKey": "a\\u0000b"}}', "manager"),
        ("GET", BULK, b"", "manager"),
        ("PUT", SINGLE.format("new-checkout"), b"{}", "manager"),
        ("POST", "/ofrep/v1/evaluate/flags/a/b", b"{}", "manager"),
        ("POST", "/ofrep/v1/evaluate/flags/", b"{}", "manager"),
        ("POST", "/ofrep/v2/whatever", b"{}", None),
    ],
)
def test_ofrep__every_request__the_same_answer_on_both_stacks_with_an_error_code(
    client, flags_seeded, manager, outsider, production, method, path, body, who
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

    lean = _raw(path, body, headers, method=method)
    full = _django(client, path, body, headers, method=method.lower())

    assert lean[0] == full[0] and lean[0] < 500
    assert lean[2] == full[2]
    assert lean[1]["Content-Type"] == "application/json"
    for name in SECURITY_HEADERS:
        assert lean[1].get(name) == full[1].get(name), name
    if lean[0] >= 400:
        assert json.loads(lean[2])["errorCode"] in (
            "PARSE_ERROR",
            "INVALID_CONTEXT",
            "TARGETING_KEY_MISSING",
            "FLAG_NOT_FOUND",
            "GENERAL",
        )


def test_ofrep__json_nested_50000_deep__400_parse_error_naming_the_depth(token):
    status, _, body = _raw(BULK, DEEP, token)
    assert status == 400
    assert json.loads(body) == {
        "errorCode": "PARSE_ERROR",
        "errorDetails": "The request body nests deeper than 32 levels.",
    }


@pytest.mark.parametrize("path", [BULK, SINGLE.format("split")])
def test_ofrep__lone_surrogate_targeting_key__400_invalid_context_naming_it(token, path):
    status, _, body = _raw(path, b'{"context": {"targetingKey": "u\\ud800"}}', token)
    answer = json.loads(body)
    assert status == 400 and answer["errorCode"] == "INVALID_CONTEXT"
    assert "'targetingKey'" in answer["errorDetails"] and "surrogate" in answer["errorDetails"]


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_ofrep__unbounded_number_in_context__400_parse_error(token, number):
    status, _, body = _raw(BULK, b'{"context": {"score": ' + number + b"}}", token)
    assert status == 400 and json.loads(body)["errorCode"] == "PARSE_ERROR"


def test_ofrep__key_with_non_ascii__decoded_as_django_does(token):
    # Given the path /ofrep/v1/evaluate/flags/café as a WSGI server hands it over (UTF-8
    # bytes read as latin-1), when evaluated, then the key is "café", not "cafÃ©"
    path = SINGLE.format("café").encode().decode("latin-1")
    status, _, body = _raw(path, _ctx(targetingKey="u1"), token)
    assert status == 404
    assert json.loads(body)["key"] == "café"
    assert json.loads(body)["errorCode"] == "FLAG_NOT_FOUND"


def test_ofrep__method_not_post__405_general_with_allow(token):
    status, headers, body = _raw(SINGLE.format("split"), b"", token, method="GET")
    assert (status, headers["Allow"]) == (405, "POST")
    assert json.loads(body) == {
        "key": "split",
        "errorCode": "GENERAL",
        "errorDetails": "OFREP evaluates with POST, not GET.",
    }


def test_ofrep__body_over_django_limit__413_parse_error(token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    status, _, body = _raw(BULK, _ctx(targetingKey="u" * 200), token)
    assert status == 413 and json.loads(body)["errorCode"] == "PARSE_ERROR"


def test_ofrep__no_content_length__body_read_as_empty(token):
    status, _, body = _raw(BULK, b"", token, length=False)
    assert status == 200 and json.loads(body)["flags"][0]["key"] == "new-checkout"


def test_ofrep__unexpected_failure__500_general_and_logged_to_django_request(
    token, monkeypatch, caplog
):
    def broken(environment_id):
        raise RuntimeError("the cache is gone")

    monkeypatch.setattr(runtime.definitions, "environment", broken)
    with caplog.at_level(logging.ERROR, logger="django.request"):
        status, headers, body = _raw(BULK, _ctx(targetingKey="u1"), token)
    assert status == 500 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"errorCode": "GENERAL", "errorDetails": "Evaluation failed."}
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert logged and BULK in logged[0].getMessage()
    assert logged[0].exc_info[0] is RuntimeError


def test_ofrep__default_environment_missing__404_general_not_500(token, settings):
    settings.FLAGS_DEFAULT_ENVIRONMENT = "moon"
    status, _, body = _raw(BULK, _ctx(targetingKey="u1"), token)
    answer = json.loads(body)
    assert status == 404 and answer["errorCode"] == "GENERAL" and "'moon'" in answer["errorDetails"]
    status, _, body = _raw(SINGLE.format("split"), _ctx(targetingKey="u1"), token)
    assert status == 404 and json.loads(body)["key"] == "split"


def test_ofrep__lean_stack__request_signals_sent(token):
    # Django's request signals (they check the database connection before and after) are sent
    # for every evaluation, as for any request
    seen: list[str] = []

    def started(**kwargs):
        seen.append("started")

    def finished(**kwargs):
        seen.append("finished")

    request_started.connect(started)
    request_finished.connect(finished)
    try:
        assert _raw(BULK, _ctx(targetingKey="u1"), token)[0] == 200
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)
    assert seen == ["started", "finished"]


def test_ofrep__https_required__http_redirected_and_https_answered_with_hsts(token, settings):
    # Given a lean handler started with HTTPS required (SecurityMiddleware reads it at start)
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    lean = LeanHandler()
    status, headers, _ = _raw(BULK, _ctx(targetingKey="u1"), token, app=lean)
    assert status == 301 and headers["Location"].startswith("https://")
    status, headers, _ = _raw(BULK, _ctx(targetingKey="u1"), token, scheme="https", app=lean)
    assert status == 200 and headers["Strict-Transport-Security"] == "max-age=3600"


def test_ofrep__etag__304_with_the_same_tag_on_both_stacks(client, token):
    status, first, _ = _raw(BULK, _ctx(targetingKey="u1"), token)
    assert status == 200
    again = {**token, "HTTP_IF_NONE_MATCH": first["ETag"]}
    lean = _raw(BULK, _ctx(targetingKey="u1"), again)
    full = _django(client, BULK, _ctx(targetingKey="u1"), again)
    assert (lean[0], lean[2], lean[1]["ETag"]) == (304, b"", first["ETag"])
    assert (full[0], full[2], full[1]["ETag"]) == (304, b"", first["ETag"])


def test_ofrep__flip__seen_by_the_next_request(token, manager):
    path = SINGLE.format("new-checkout")
    assert json.loads(_raw(path, _ctx(), token)[2])["value"] is True
    services.flag_rollback(flag_key="new-checkout", environment_key="production", by=manager,
                           reason="test")  # fmt: skip
    assert json.loads(_raw(path, _ctx(), token)[2])["value"] is False


def test_ofrep__bare_install__default_environment_from_migrations_answers(client, manager):
    # Given only what the migrations made (no flags, no environment created by anyone)
    assert FlagEnvironment.objects.filter(key="production").exists()
    plaintext = services.api_token_create(user=manager, name="t", scope=ApiTokenScope.USER)[1]
    # Then OFREP answers: no flags yet, and an unknown flag is FLAG_NOT_FOUND
    bulk = client.post(BULK, data=_ctx(targetingKey="u1"), content_type="application/json",
                       **auth(plaintext))  # fmt: skip
    assert bulk.status_code == 200 and bulk.json() == {"flags": []}
    single = client.post(SINGLE.format("x"), data=b"{}", content_type="application/json",
                         **auth(plaintext))  # fmt: skip
    assert single.status_code == 404 and single.json()["errorCode"] == "FLAG_NOT_FOUND"
