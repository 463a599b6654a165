from __future__ import annotations

from django.urls import path

from upgrades import views

app_name = "upgrades"
urlpatterns = [
    path("", views.upgrade_list, name="list"),
    path("new/", views.upgrade_create, name="create"),
    path("<int:upgrade_id>/", views.upgrade_detail, name="detail"),
    path("<int:upgrade_id>/timeline/", views.upgrade_timeline, name="timeline"),
    path("<int:upgrade_id>/transition/", views.upgrade_transition, name="transition"),
    path("<int:upgrade_id>/decision/", views.upgrade_decide, name="decide"),
    path("<int:upgrade_id>/risk/", views.upgrade_set_risk, name="risk"),
    path(
        "<int:upgrade_id>/steps/<int:step_id>/<slug:action>/",
        views.step_action,
        name="step_action",
    ),
]
