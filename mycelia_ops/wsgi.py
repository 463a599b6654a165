"""WSGI entry point.

Flag evaluation (OFREP) is the one hot path that Mycelia's services call on every request, and it
authenticates with its own Bearer tokens: it needs none of the session, sign-in, CSRF, messages
or htmx middleware that the pages use. Those requests go to a second Django handler built with a
lean middleware stack; everything else goes through the full one.
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
    "flags.api.lean.ofrep_urlconf",
]


class LeanHandler(WSGIHandler):
    """Django's handler, loading only LEAN_MIDDLEWARE."""

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
