"""What the lean WSGI handler for OFREP needs: its own small URLconf and the middleware that
selects it, so an evaluation resolves among two routes instead of the whole site's."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import path

from flags.api import ofrep

urlpatterns = [
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_flags, name="ofrep_bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="ofrep_flag"),
]

handler400 = "mycelia_ops.errors.bad_request"
handler403 = "mycelia_ops.errors.permission_denied"
handler404 = "mycelia_ops.errors.page_not_found"


def ofrep_urlconf(get_response: Callable[[HttpRequest], HttpResponse]):
    def middleware(request: HttpRequest) -> HttpResponse:
        request.urlconf = "flags.api.lean"
        return get_response(request)

    return middleware
