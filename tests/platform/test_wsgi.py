"""The WSGI entry point: flag evaluation takes the lean handler, pages the full one."""

from __future__ import annotations

import io
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
    assert b"/ofrep/v1/nothing-here" in body
