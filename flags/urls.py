from __future__ import annotations

from django.urls import include, path

from flags import views

app_name = "flags"

# Included at the site root: every pattern carries its full prefix. The flags API is part of
# the product's API (mycelia_ops/api.py, at /api/).
urlpatterns = [
    # OFREP (its own URLconf module: the lean OFREP handler resolves against it alone)
    path("", include("flags.api.ofrep_urls")),
    # Pages
    path("flags/", views.flag_list, name="list"),
    path("flags/new/", views.flag_create, name="create"),
    path("flags/tokens/", views.token_list, name="tokens"),
    path("flags/tokens/<int:token_id>/revoke/", views.token_revoke, name="token_revoke"),
    path("flags/<str:key>/", views.flag_detail, name="detail"),
    path("flags/<str:key>/toggle/<slug:environment>/", views.flag_toggle, name="toggle"),
    path("flags/<str:key>/targeting/<slug:environment>/", views.flag_targeting, name="targeting"),
    path("flags/<str:key>/archive/", views.flag_archive, name="archive"),
]
