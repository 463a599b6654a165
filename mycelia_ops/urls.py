from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from mozilla_django_oidc.views import OIDCLogoutView

from mycelia_ops import api, health, oidc


def _superusers_only(request) -> bool:
    """The Django admin is for superusers only (being staff is not enough): everyone else,
    administrators included, sets the product up on its own pages under /setup/."""
    return request.user.is_active and request.user.is_superuser


admin.site.has_permission = _superusers_only

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="upgrades:list", permanent=False), name="home"),
    # Local accounts, and single sign-on when OIDC_ISSUER is set (docs/oidc.md): sign-out ends
    # the provider's session too when it offers RP-initiated logout.
    path("accounts/login/", oidc.SignInView.as_view(), name="login"),
    path("accounts/logout/", OIDCLogoutView.as_view(), name="logout"),
    path("oidc/", include("mozilla_django_oidc.urls")),  # authenticate/ and callback/
    path("admin/", admin.site.urls),
    path("health", health.health, name="health"),
    path("ops/status.json", health.ops_status, name="ops_status"),
    path("api/", api.urls()),  # the REST API (django-ninja): flags, upgrades; /api/openapi.json
    path("upgrades/", include("upgrades.urls")),
    path("setup/", include("upgrades.urls_setup")),  # administrators: environments, people, ...
    path("", include("flags.urls")),
    path("", include("comms.urls")),
]

handler400 = "mycelia_ops.errors.bad_request"
handler403 = "mycelia_ops.errors.permission_denied"
handler404 = "mycelia_ops.errors.page_not_found"
