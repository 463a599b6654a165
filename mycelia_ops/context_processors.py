from __future__ import annotations

from django.http import HttpRequest

from mycelia_ops.roles import is_administrator, is_release_manager, is_viewer


def roles(request: HttpRequest) -> dict[str, bool]:
    user = getattr(request, "user", None)
    if user is None:
        return {"is_release_manager": False, "is_viewer": False, "is_administrator": False}
    return {
        "is_release_manager": is_release_manager(user),
        "is_viewer": is_viewer(user),
        "is_administrator": is_administrator(user),
    }
