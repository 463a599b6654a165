"""The set-up pages (administrators), mounted at /setup/ by mycelia_ops/urls.py."""

from __future__ import annotations

from django.urls import path

from upgrades import views_people as people
from upgrades import views_setup as views

app_name = "setup"
urlpatterns = [
    path("", views.setup_start, name="start"),
    path("history/", views.setup_history, name="history"),
    path("environments/", views.environment_list, name="environments"),
    path("environments/new/", views.environment_create, name="environment_create"),
    path("environments/<int:environment_id>/", views.environment_detail, name="environment"),
    path(
        "environments/<int:environment_id>/remove/",
        views.environment_delete,
        name="environment_delete",
    ),
    path("environments/<int:environment_id>/hooks/", views.hook_create, name="hook_create"),
    path("environments/<int:environment_id>/slo/", views.slo_save, name="slo"),
    path("environments/<int:environment_id>/hosts/", views.host_create, name="host_create"),
    path("hosts/<int:host_id>/", views.host_edit, name="host"),
    path("hosts/<int:host_id>/remove/", views.host_delete, name="host_delete"),
    path("hooks/<int:hook_id>/", views.hook_edit, name="hook"),
    path("hooks/<int:hook_id>/remove/", views.hook_delete, name="hook_delete"),
    path("hooks/<int:hook_id>/test/", views.hook_test, name="hook_test"),
    path("hook-tests/<int:test_id>/", views.hook_test_detail, name="hook_test_detail"),
    path("playbooks/", views.template_list, name="templates"),
    path("playbooks/load/", views.playbook_load, name="playbook_load"),
    path("playbooks/<int:template_id>/", views.template_detail, name="template"),
    path("playbooks/<int:template_id>/phases/", views.phase_create, name="phase_create"),
    path("phases/<int:phase_id>/", views.phase_edit, name="phase"),
    path("phases/<int:phase_id>/steps/", views.step_create, name="step_create"),
    path("steps/<int:step_id>/", views.step_edit, name="step"),
    path("common-issues/", views.common_issues, name="common_issues"),
    path("common-issues/<int:issue_id>/", views.common_issue_edit, name="common_issue"),
    path("people/", people.people_list, name="people"),
    path("people/invite/", people.invitation_create, name="invite"),
    path(
        "people/invitations/<int:invitation_id>/call-off/",
        people.invitation_revoke,
        name="invitation_revoke",
    ),
    path("people/<int:user_id>/roles/", people.person_roles, name="person_roles"),
    path("people/<int:user_id>/active/", people.person_active, name="person_active"),
    path("service-accounts/", people.service_account_create, name="service_account_create"),
    path(
        "service-accounts/<int:account_id>/tokens/",
        people.service_token_create,
        name="token_create",
    ),
    path("tokens/<int:token_id>/revoke/", people.service_token_revoke, name="token_revoke"),
    path("join/<str:token>/", people.join, name="join"),
]
