from __future__ import annotations

from django.urls import path

from comms.views import channels, incidents, messages, status

app_name = "comms"
urlpatterns = [
    path("status/", status.status_page, name="status"),
    path("status/api/v2/status.json", status.status_api_status, name="api_status"),
    path("status/api/v2/summary.json", status.status_api_summary, name="api_summary"),
    path(
        "status/api/v2/scheduled-maintenances.json",
        status.status_api_scheduled_maintenances,
        name="api_scheduled_maintenances",
    ),
    path("status/api/v2/incidents.json", status.status_api_incidents, name="api_incidents"),
    path(
        "status/api/v2/incidents/unresolved.json",
        status.status_api_incidents_unresolved,
        name="api_incidents_unresolved",
    ),
    path(
        "status/api/v2/scheduled-maintenances/upcoming.json",
        status.status_api_scheduled_maintenances_upcoming,
        name="api_scheduled_maintenances_upcoming",
    ),
    path(
        "status/api/v2/scheduled-maintenances/active.json",
        status.status_api_scheduled_maintenances_active,
        name="api_scheduled_maintenances_active",
    ),
    path("status/api/v2/components.json", status.status_api_components, name="api_components"),
    path("status/feed.atom", status.status_feed, name="feed"),
    path("status/history/", status.status_history, name="history"),
    path("status/calendar.ics", status.status_calendar, name="calendar"),
    path("comms/calendar.ics", status.comms_calendar, name="calendar_all"),
    path(
        "comms/calendar/<int:user_id>/<str:token>.ics",
        status.comms_calendar_personal,
        name="calendar_personal",
    ),
    path("comms/incidents/", incidents.incident_list, name="incident_list"),
    path("comms/incidents/<int:incident_id>/", incidents.incident_detail, name="incident_detail"),
    path(
        "comms/incidents/<int:incident_id>/publish",
        incidents.incident_publish,
        name="incident_publish",
    ),
    path("comms/incidents/<int:incident_id>/post", incidents.incident_post, name="incident_post"),
    path(
        "comms/incidents/<int:incident_id>/dismiss",
        incidents.incident_dismiss,
        name="incident_dismiss",
    ),
    path("status/subscribe", status.status_subscribe, name="subscribe"),
    path("status/confirm/<str:token>", status.status_confirm, name="confirm"),
    path("status/unsubscribe/<str:token>", status.status_unsubscribe, name="unsubscribe"),
    path(
        "status/incidents/<int:upgrade_id>/resolve",
        status.status_incident_resolve,
        name="incident_resolve",
    ),
    path("comms/messages/", messages.message_list, name="message_list"),
    path("comms/messages/<int:message_id>/", messages.message_detail, name="message_detail"),
    path("comms/messages/<int:message_id>/edit", messages.message_edit, name="message_edit"),
    path("comms/messages/<int:message_id>/send", messages.message_send, name="message_send"),
    path(
        "comms/messages/<int:message_id>/discard",
        messages.message_discard,
        name="message_discard",
    ),
    path(
        "comms/messages/<int:message_id>/render",
        messages.message_rerender,
        name="message_rerender",
    ),
    path("comms/channels/", channels.channel_list, name="channel_list"),
    path("comms/channels/new", channels.channel_new, name="channel_new"),
    path("comms/channels/<int:channel_id>/edit", channels.channel_edit, name="channel_edit"),
    path(
        "comms/channels/<int:channel_id>/enabled",
        channels.channel_enabled,
        name="channel_enabled",
    ),
    path(
        "comms/deliveries/<int:delivery_id>/retry",
        messages.delivery_retry,
        name="delivery_retry",
    ),
]
