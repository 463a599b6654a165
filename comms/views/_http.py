"""Answers made for polling and caches: a strong ETag on every public status response, 304 for
an unchanged one, and a short public Cache-Control so a reverse proxy in front can answer a
crowd from one rendering every few seconds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase, HttpResponseNotModified
from django.utils.cache import patch_vary_headers

from comms import selectors


def max_age() -> int:
    return int(getattr(settings, "STATUS_CACHE_MAX_AGE", 5))


def stale_while_revalidate() -> int:
    return int(getattr(settings, "STATUS_CACHE_STALE_WHILE_REVALIDATE", 30))


def public_cache_control() -> str:
    return f"public, max-age={max_age()}, stale-while-revalidate={stale_while_revalidate()}"


def strong_etag(content: bytes) -> str:
    return '"' + hashlib.blake2b(content, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    # Strong comparison (RFC 9110 13.1.2 allows weak for If-None-Match; both match here).
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return etag in candidates


def _is_shared(request: HttpRequest, response: HttpResponseBase) -> bool:
    """The same bytes for everyone: an anonymous request to a public page, no flash message
    shown, no cookie set, no CSRF token rendered."""
    if not selectors.page_public() or response.cookies:
        return False
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return False
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return False
    storage = getattr(request, "_messages", None)
    return not (storage is not None and getattr(storage, "used", False))


def cached(
    view: Callable[..., HttpResponseBase], *, private: bool = False
) -> Callable[..., HttpResponseBase]:
    """ETag (a hash of the body: strong, the same on every server), 304 on If-None-Match, and
    `public, max-age, stale-while-revalidate` when the answer is the same for everyone
    (`private, no-cache` for a signed-in person's page, which carries their name and token)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = view(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD") or response.status_code != 200:
            return response
        if getattr(response, "streaming", False):
            return response
        etag = strong_etag(response.content)
        shared = not private and _is_shared(request, response)
        control = public_cache_control() if shared else "private, no-cache"
        patch_vary_headers(response, ["HX-Request"])
        if _matches(request.headers.get("If-None-Match", ""), etag):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = etag
            not_modified["Cache-Control"] = control
            for header in ("Vary", "Access-Control-Allow-Origin", "Content-Type"):
                if header in response:
                    not_modified[header] = response[header]
            del not_modified["Content-Type"]
            return not_modified
        response["ETag"] = etag
        response["Cache-Control"] = control
        return response

    return wrapped


def cached_private(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """ETag and 304, never stored by a shared cache (one person's calendar)."""
    return cached(view, private=True)
