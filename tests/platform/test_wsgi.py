"""The WSGI entry point: flag evaluation takes the lean Django handler (SecurityMiddleware and
OFREP's own URLconf), pages the full one."""

from __future__ import annotations

import io
import json
from wsgiref.util import setup_testing_defaults

import pytest

from mycelia_ops.wsgi import application, lean, pages


def _call(path: str, method: str = "GET") -> tuple[str, dict[str, str], bytes]:
    environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO()}
    setup_testing_defaults(environ)
    environ["HTTP_HOST"] = "localhost"
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, headers

    body = b"".join(application(environ, start_response))
    return seen["status"], dict(seen["headers"]), body


@pytest.mark.django_db(transaction=True)
def test_wsgi__ofrep_without_token__answered_by_the_lean_handler_with_json_401():
    status, headers, body = _call("/ofrep/v1/evaluate/flags", "POST")
    assert status.startswith("401")
    assert headers["Content-Type"].startswith("application/json")
    assert "csrftoken" not in headers.get("Set-Cookie", "")
    # No clickjacking middleware on this path: the page stack did not run
    assert "X-Frame-Options" not in headers


@pytest.mark.django_db(transaction=True)
def test_wsgi__pages__keep_the_full_middleware():
    status, headers, _ = _call("/accounts/login/")
    assert status.startswith("200")
    assert "csrftoken" in headers.get("Set-Cookie", "")
    assert headers.get("X-Frame-Options") == "DENY"
    assert pages is not lean


@pytest.mark.django_db(transaction=True)
def test_wsgi__ofrep_unknown_path__answers_404_from_the_small_urlconf():
    status, headers, body = _call("/ofrep/v1/nothing-here", "POST")
    assert status.startswith("404")
    assert headers["Content-Type"].startswith("application/json")
    # In OFREP's error shape, naming the path
    assert json.loads(body)["errorCode"] == "GENERAL"
    assert "/ofrep/v1/nothing-here" in json.loads(body)["errorDetails"]


@pytest.mark.django_db(transaction=True)
def test_wsgi__ofrep__security_headers_as_on_every_response():
    _status, headers, _ = _call("/ofrep/v1/evaluate/flags", "POST")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_wsgi__lean_handler__only_security_and_the_ofrep_urlconf():
    # The pages' middleware list is left as it was
    from django.conf import settings

    from mycelia_ops.wsgi import LEAN_MIDDLEWARE

    assert LEAN_MIDDLEWARE == [
        "django.middleware.security.SecurityMiddleware",
        "flags.api.ofrep_urls.ofrep_urlconf",
    ]
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE
