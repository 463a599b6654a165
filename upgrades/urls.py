from __future__ import annotations

from django.urls import path

from upgrades import views, views_more

app_name = "upgrades"
urlpatterns = [
    path("", views.upgrade_list, name="list"),
    path("new/", views_more.upgrade_create, name="create"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("lessons/", views.lessons, name="lessons"),
    path("<int:upgrade_id>/reviews/<int:review_id>/", views.review_save, name="review_save"),
    path(
        "<int:upgrade_id>/reviews/<int:review_id>/follow-ups/",
        views.follow_up_create,
        name="follow_up_create",
    ),
    path("<int:upgrade_id>/", views.upgrade_detail, name="detail"),
    path("<int:upgrade_id>/timeline/", views.upgrade_timeline, name="timeline"),
    path("<int:upgrade_id>/report/", views.upgrade_report, name="report"),
    path("<int:upgrade_id>/report.md", views.upgrade_report_markdown, name="report_md"),
    path("<int:upgrade_id>/transition/", views.upgrade_transition, name="transition"),
    path("<int:upgrade_id>/decision/", views.upgrade_decide, name="decide"),
    path("<int:upgrade_id>/risk/", views.upgrade_set_risk, name="risk"),
    path("<int:upgrade_id>/monitoring/", views.upgrade_monitoring, name="monitoring"),
    path("<int:upgrade_id>/monitoring/extend/", views.monitoring_extend, name="monitoring_extend"),
    path("<int:upgrade_id>/monitoring/end/", views.monitoring_end, name="monitoring_end"),
    path("<int:upgrade_id>/runs/", views.upgrade_runs, name="runs"),
    path("<int:upgrade_id>/runs/<int:run_id>/", views.run_detail, name="run"),
    path("<int:upgrade_id>/runs/<int:run_id>/log/", views.run_log, name="run_log"),
    path("<int:upgrade_id>/runs/<int:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("<int:upgrade_id>/steps/<int:step_id>/run/", views.step_run, name="step_run"),
    path("<int:upgrade_id>/phases/<int:phase_id>/run/", views.phase_run, name="phase_run"),
    path("<int:upgrade_id>/actions/<slug:action>/", views.upgrade_action, name="action"),
    path(
        "<int:upgrade_id>/artifacts/<int:artifact_id>/download/",
        views.artifact_download,
        name="artifact_download",
    ),
    path(
        "<int:upgrade_id>/steps/<int:step_id>/<slug:action>/",
        views.step_action,
        name="step_action",
    ),
    # Setting upgrades up (views_more): freezes, editing, trying again.
    path("freezes/", views_more.freeze_list, name="freezes"),
    path("freezes/new/", views_more.freeze_create, name="freeze_create"),
    path("freezes/notices/", views_more.freeze_notices, name="freeze_notices"),
    path("freezes/<int:freeze_id>/lift/", views_more.freeze_lift, name="freeze_lift"),
    path("<int:upgrade_id>/edit/", views_more.upgrade_edit, name="edit"),
    path("<int:upgrade_id>/clone/", views_more.upgrade_clone, name="clone"),
]
