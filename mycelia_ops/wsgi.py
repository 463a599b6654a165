"""WSGI entry point.

Flag evaluation (OFREP) is the one hot path that Mycelia's services call on every request, and it
authenticates with its own Bearer tokens: it needs none of the session, sign-in, CSRF, messages
or htmx middleware that the pages use. Those requests go to a second Django handler built with a
lean middleware stack, and the plain evaluation POSTs skip Django's request handling altogether
(flags/api/ofrep_wsgi.py); everything else goes through the full one.
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
lean_django = LeanHandler()
# The plain OFREP POST skips Django altogether; the rest of /ofrep/ goes to the lean handler.
from flags.api.ofrep_wsgi import ofrep_fast_path  # noqa: E402  (needs django.setup() first)

lean = ofrep_fast_path(lean_django)


def application(environ, start_response):
    if environ.get("PATH_INFO", "").startswith(LEAN_PREFIXES):
        return lean(environ, start_response)
    return pages(environ, start_response)
