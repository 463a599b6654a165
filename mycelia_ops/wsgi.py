"""WSGI entry point.

Flag evaluation (OFREP) is the one hot path that Mycelia's services call on every request, and it
authenticates with its own Bearer tokens: it needs none of the session, sign-in, CSRF, messages,
htmx or CSP middleware that the pages use. Requests under /ofrep/ go to a second Django handler
whose middleware is SecurityMiddleware (its headers and HTTPS redirect, as on every response) and
a middleware that points the request at OFREP's own URLconf (flags/api/ofrep_urls.py); the views
are the same ones the full stack routes to. Everything else goes through the full handler.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mycelia_ops.settings")

LEAN_PREFIXES = ("/ofrep/",)
LEAN_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "flags.api.ofrep_urls.ofrep_urlconf",
]


class LeanHandler(WSGIHandler):
    """Django's own WSGI handler, built with LEAN_MIDDLEWARE instead of settings.MIDDLEWARE.

    Django reads the list from settings when it loads the middleware, once, here at start-up
    before any request is served; the setting is put back at once."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = LEAN_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


pages = get_wsgi_application()
lean = LeanHandler()


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(LEAN_PREFIXES):
        return lean(environ, start_response)
    return pages(environ, start_response)
