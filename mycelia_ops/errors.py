"""The product's one family of errors, and the one place that turns them into answers: error
pages that say what went wrong, JSON for API callers.

Every app raises these (or subclasses): each carries its HTTP status, a message for people and,
for bad input, the field it is about.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


class MyceliaError(Exception):
    """A refusal a person can read; `status` is the HTTP answer it maps to."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_dict(self) -> dict[str, Any]:
        return {"error": self.message, "field": self.field}


class BadInput(MyceliaError):
    """Input that cannot be used (400), naming the field when there is one."""

    status = 400


class Forbidden(MyceliaError):
    status = 403


class NotFound(MyceliaError):
    status = 404


class Conflict(MyceliaError):
    """The state of things does not allow this now (409)."""

    status = 409


class MyceliaErrorMiddleware:
    """Answers a MyceliaError that a view let through, in the shape the caller reads."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, MyceliaError):
            return None
        if _wants_json(request):
            return JsonResponse(
                {**exception.as_dict(), "status": exception.status}, status=exception.status
            )
        return render(
            request,
            "error.html",
            {"status": exception.status, "title": _TITLES.get(exception.status, "Refused"),
             "detail": exception.message},
            status=exception.status,
        )  # fmt: skip


_TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Not now"}


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(
        ("/api/", "/ofrep/")
    ) or "application/json" in request.headers.get("Accept", "")


def _error(
    request: HttpRequest, status: int, title: str, exception: Exception | None
) -> HttpResponse:
    detail = str(exception) if exception and str(exception) else title
    if _wants_json(request):
        return JsonResponse({"error": detail, "status": status}, status=status)
    return render(
        request, "error.html", {"status": status, "title": title, "detail": detail}, status=status
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 400, "Bad request", exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error(request, 403, "Not allowed", exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # Django's Resolver404 carries a dict, not a sentence: say it plainly.
    message = exception if isinstance(exception, str) else None
    return _error(request, 404, "Not found", Exception(message or f"Nothing at {request.path}"))
