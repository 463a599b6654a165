from __future__ import annotations

from django.urls import path

from flags import views
from flags.api import management, ofrep, schema

app_name = "flags"

# Included at the site root: every pattern carries its full prefix.
urlpatterns = [
    # The playbook's API. enable/disable come before {name}: those two words are reserved keys.
    path("api/feature-flags", management.flag_collection, name="api_flags"),
    path("api/feature-flags/enable", management.flag_enable, name="api_enable"),
    path("api/feature-flags/disable", management.flag_disable, name="api_disable"),
    path("api/feature-flags/<str:name>", management.flag_detail, name="api_flag"),
    path("api/openapi.json", schema.openapi_schema, name="api_schema"),
    # OFREP
    path("ofrep/v1/evaluate/flags", ofrep.evaluate_flags, name="ofrep_bulk"),
    path("ofrep/v1/evaluate/flags/<str:key>", ofrep.evaluate_flag, name="ofrep_flag"),
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
