from __future__ import annotations

from django.urls import path

from upgrades import views, views_more
from upgrades import views_page as page

app_name = "upgrades"
urlpatterns = [
    path("", views.upgrade_list, name="list"),
    path("new/", views_more.upgrade_create, name="create"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("lessons/", views.lessons, name="lessons"),
    path("<int:upgrade_id>/reviews/<int:review_id>/", page.review_save, name="review_save"),
    path(
        "<int:upgrade_id>/reviews/<int:review_id>/follow-ups/",
        page.follow_up_create,
        name="follow_up_create",
    ),
    path("<int:upgrade_id>/", page.upgrade_detail, name="detail"),
    path("<int:upgrade_id>/timeline/", views.upgrade_timeline, name="timeline"),
    path("<int:upgrade_id>/report/", views.upgrade_report, name="report"),
    path("<int:upgrade_id>/report.md", views.upgrade_report_markdown, name="report_md"),
    path("<int:upgrade_id>/transition/", page.upgrade_transition, name="transition"),
    path("<int:upgrade_id>/decision/", page.upgrade_decide, name="decide"),
    path("<int:upgrade_id>/risk/", page.upgrade_set_risk, name="risk"),
    path("<int:upgrade_id>/monitoring/", page.upgrade_monitoring, name="monitoring"),
    path("<int:upgrade_id>/monitoring/extend/", page.monitoring_extend, name="monitoring_extend"),
    path("<int:upgrade_id>/monitoring/end/", page.monitoring_end, name="monitoring_end"),
    path("<int:upgrade_id>/runs/", page.upgrade_runs, name="runs"),
    path("<int:upgrade_id>/runs/<int:run_id>/", page.run_detail, name="run"),
    path("<int:upgrade_id>/runs/<int:run_id>/log/", views.run_log, name="run_log"),
    path("<int:upgrade_id>/runs/<int:run_id>/cancel/", page.run_cancel, name="run_cancel"),
    path(
        "<int:upgrade_id>/runs/<int:run_id>/check-target/",
        page.run_check_target,
        name="run_check_target",
    ),
    path("<int:upgrade_id>/runs/<int:run_id>/resolve/", page.run_resolve, name="run_resolve"),
    path("<int:upgrade_id>/steps/<int:step_id>/run/", page.step_run, name="step_run"),
    path("<int:upgrade_id>/phases/<int:phase_id>/run/", page.phase_run, name="phase_run"),
    path("<int:upgrade_id>/actions/<slug:action>/", page.upgrade_run_action, name="action"),
    path("<int:upgrade_id>/act/<slug:action>/", page.upgrade_action, name="act"),
    path("<int:upgrade_id>/phases/<int:phase_id>/skip/", page.phase_skip, name="phase_skip"),
    path(
        "<int:upgrade_id>/artifacts/<int:artifact_id>/download/",
        views.artifact_download,
        name="artifact_download",
    ),
    path(
        "<int:upgrade_id>/steps/<int:step_id>/<slug:action>/",
        page.step_action,
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
