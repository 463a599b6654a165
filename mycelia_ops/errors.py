"""Error pages that say what went wrong; JSON for API callers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render


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
