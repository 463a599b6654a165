"""OFREP's URLs, in a module of their own: included by flags/urls.py for the whole site, and
the URLconf of the lean OFREP handler in mycelia_ops/wsgi.py (`ofrep_urlconf` below selects it),
where an evaluation resolves among three routes instead of the whole site's.

Any other path under /ofrep/ is answered by `ofrep.not_found` in OFREP's error shape; the
handlers here do the same for what Django itself refuses before a view runs (a bad Host
header, say) on the lean stack.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path

from flags.api import ofrep
from flags.evaluation import ErrorCode

urlpatterns = [
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_flags, name="ofrep_bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="ofrep_flag"),
    re_path(r"^ofrep/", ofrep.not_found, name="ofrep_other"),
]


def _refused(status: int, details: str) -> HttpResponse:
    return ofrep.OfrepError(status, ErrorCode.GENERAL, details).response()


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _refused(400, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _refused(403, "Not allowed.")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return ofrep.not_found(request)


def server_error(request: HttpRequest) -> HttpResponse:
    return _refused(500, "Evaluation failed.")


handler400 = "flags.api.ofrep_urls.bad_request"
handler403 = "flags.api.ofrep_urls.permission_denied"
handler404 = "flags.api.ofrep_urls.page_not_found"
handler500 = "flags.api.ofrep_urls.server_error"


def ofrep_urlconf(get_response: Callable[[HttpRequest], HttpResponse]):
    """Middleware of the lean OFREP stack: resolve against this module."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.urlconf = "flags.api.ofrep_urls"
        return get_response(request)

    return middleware
