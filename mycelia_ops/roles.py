"""Who may do what: administrators set the product up, release managers operate, stakeholders
read, everyone else is turned away.

One place for the rule, so every view and endpoint enforces the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

RELEASE_MANAGERS = "Release managers"
STAKEHOLDERS = "Stakeholders"
ADMINISTRATORS = "Administrators"
ROLE_GROUPS = (ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS)


def _group_names(user: Any) -> set[str]:
    # Cached on the user object: one query per request however many checks a page makes.
    if not hasattr(user, "_mycelia_groups"):
        user._mycelia_groups = set(user.groups.values_list("name", flat=True))
    return user._mycelia_groups


def is_release_manager(user: Any) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or RELEASE_MANAGERS in _group_names(user)


def is_administrator(user: Any) -> bool:
    """Administrators set the product up (environments, hooks, playbooks, people); superusers
    are administrators."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or ADMINISTRATORS in _group_names(user)


def is_viewer(user: Any) -> bool:
    """Administrators, release managers and stakeholders read everything; a signed-in outsider
    reads nothing."""
    if not user.is_authenticated or not user.is_active:
        return False
    return (
        user.is_superuser
        or user.is_staff
        or bool(_group_names(user) & {ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS})
    )


def viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_viewer(request.user):
            raise PermissionDenied("You need the Release managers or Stakeholders role.")
        return view(request, *args, **kwargs)

    return wrapped


def release_manager_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_release_manager(request.user):
            raise PermissionDenied("Only release managers can change upgrades.")
        return view(request, *args, **kwargs)

    return wrapped


def administrator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    @login_required
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_administrator(request.user):
            raise PermissionDenied("Only administrators set Mycelia Ops up.")
        return view(request, *args, **kwargs)

    return wrapped
