"""The comms app's services: messages to stakeholders, the status page, its subscribers.

Views, commands, tasks and the upgrades app import `from comms import services` and call
`services.<name>`. comms never imports upgrades: callers pass ids and plain values.

Calls for the upgrades app
--------------------------
status_maintenance_sync(*, upgrade_id: int, title: str, type_label: str,
        environment_key: str, environment_name: str, status: str,
        window_start: datetime | None, window_end: datetime | None,
        progress_percent: int, phase_title: str, url: str, public: bool = False
        ) -> StatusMaintenance
    Upsert the status page's record of one upgrade; call it after every change the page shows
    (status, window, current phase, progress). `public` is the environment's "shown on the
    status page" setting: upgrades of an environment not shown never reach the page, its JSON,
    feeds, calendar or subscribers (signed-in users see them in the private calendar).
    `status` is the upgrade's lifecycle value: draft, scheduled, in_progress, monitoring,
    completed, rolled_back, failed, cancelled. Drafts and cancelled upgrades are not shown.
    Statuspage maintenance status: scheduled -> scheduled, in_progress -> in_progress,
    monitoring -> verifying, completed / rolled_back / failed -> completed (the page says
    "Ended" for the last two). A status change posts an update to the page's stream. Confirmed
    subscribers are mailed (a notice Message, sent at once) about an hour before a shown window
    (status_reminders_send), when it moves, when the work starts (in_progress, or the start
    time passes: status_windows_check) and when it ends. Never opens an incident. Raises
    InvalidInput for an unknown status or a window ending before it starts.

status_incident_draft(*, upgrade_id: int, lifecycle: str) -> StatusIncident | None
    After a rollback or failure ("rolled_back" | "failed"): a draft incident, impact proposed
    from the environment's component health, words that disclose nothing about the change.
    None for an environment not shown; an existing incident is returned as it is. Release
    managers publish (status_incident_publish), edit (status_incident_edit), post updates or
    resolve (status_incident_post) or dismiss it with a reason (status_incident_dismiss).

message_draft_create(*, upgrade_id: int, template_key: str, context: dict[str, str],
        by: User | None, environment_key: str, moment: str = "") -> Message
    A draft from the MessageTemplate record: template_key is "pre_upgrade" | "progress" |
    "post_upgrade". Templates use Django template syntax ({{ version_or_feature }}) rendered as
    plain text; context keys (strings, any may be empty or missing, and empty ones render as
    "—"): version_or_feature, date_time, type, duration, impact, rollback_plan, contact, status,
    progress, eta, issues, next_steps, upgrade_title, upgrade_url. Audiences default to the
    template's. Sent at once (by=None) when CommsEnvironmentSettings(environment_key).auto_send.
    moment: the playbook moment (scheduled, started, phase, rollback, ended); a newer draft
    about the same upgrade discards the older ones still waiting, naming itself as the reason.
    Raises InvalidInput (unknown key) or NotFound (templates not seeded). A template that does
    not render (a syntax error, an {% include %}, ...) never raises: the draft is kept with
    `render_error` saying why, is not sent by itself, and message_send refuses it until it is
    rendered again (message_rerender, after the template is fixed) or edited by hand.

message_update(*, message, subject: str, body: str, audience_keys: list[str], by) -> Message
message_discard(*, message, reason: str, by) -> Message     (a draft not to send; kept, struck)
message_rerender(*, message, by) -> Message     (a draft with render_error, from its template)
message_send(*, message: Message, by: User | None) -> Message
    One Delivery per (channel, recipient) of the message's audiences, each sent by
    delivery_send_task (enqueued on commit). "Sent" only once a delivery went out; with no
    recipient at all the message is "not sent" with `not_sent_reason` (no channel for this
    audience, or its channels have no recipients). External messages are also posted to the
    upgrade's status page stream. Raises Conflict if the message is not a draft.
delivery_attempt(*, delivery_id: int) -> DeliveryOutcome      (the task's body)
delivery_retry(*, delivery: Delivery, by) -> Delivery          (failed -> queued)
deliveries_sweep() -> dict                                     (beat: stale claims, lost nudges)
status_incident_resolve(*, upgrade_id: int, body: str, by) -> StatusIncident
status_windows_check() -> dict                                 (beat: window start/end passing)
status_health_record(*, environment_key: str, environment_name: str,
        document: dict | None, error: str) -> EnvironmentHealth
status_health_refresh(*, environments: list[dict]) -> dict[str, str]
    environments: [{"key", "name", "status_url", "timeout"}]; fetched with httpx. The task
    comms.tasks.status_health_refresh_task(environments) takes the same list.
subscriber_subscribe / subscriber_confirm / subscriber_unsubscribe    (status page forms)
subscriber_by_token(*, token) -> Subscriber     (NotFound for an unknown or malformed token)
channel_save(*, channel: Channel | None, data: dict, by) -> Channel
    Create (channel=None) or update a channel; data keys: audience (key), name, kind
    (email | webhook | slack | teams), recipients, to_subscribers, url, secret_header_name,
    secret_header_value, environment_keys (list of str), and enabled on create. A key left out
    keeps the current value. Raises InvalidInput naming the problem. Recorded as
    channel_created / channel_updated (changed field names; never the secret's value).
channel_set_enabled(*, channel: Channel, enabled: bool, by) -> bool
    False, and nothing recorded, when the channel already was in that state.
comms_seed() -> dict    audiences, the six templates and the subscribers' channel; idempotent
    (also `python manage.py comms_seed`).
comms_demo_seed() -> list[str]   comms_seed and a demo channel per audience (`seed --demo`);
    creates only the channels that do not exist (by name), never changes one.

Errors are comms.exceptions.CommsError subclasses (InvalidInput 400, NotFound 404,
Conflict 409) with a sentence for the person who caused them.
"""

from __future__ import annotations

from comms.exceptions import CommsError, Conflict, InvalidInput, NotFound
from comms.services._outgoing import site_url
from comms.services.channels import channel_save, channel_set_enabled
from comms.services.deliveries import (
    DeliveryOutcome,
    deliveries_sweep,
    delivery_attempt,
    delivery_retry,
    message_status_refresh,
)
from comms.services.incidents import (
    status_incident_dismiss,
    status_incident_draft,
    status_incident_edit,
    status_incident_post,
    status_incident_publish,
    status_incident_resolve,
)
from comms.services.messages import (
    CONTEXT_KEYS,
    audiences_without_channel,
    comms_demo_seed,
    comms_seed,
    message_discard,
    message_draft_create,
    message_preview,
    message_render,
    message_rerender,
    message_send,
    message_targets,
    message_update,
    notice_send,
    reminder_send,
)
from comms.services.ops import worker_heartbeat_record
from comms.services.status import (
    component_status_for,
    status_environment_note,
    status_health_record,
    status_health_refresh,
    status_maintenance_sync,
    status_reminders_send,
    status_windows_check,
    window_text,
)
from comms.services.subscribers import (
    subscriber_by_token,
    subscriber_confirm,
    subscriber_confirmation_send,
    subscriber_subscribe,
    subscriber_unsubscribe,
)
from comms.services.uptime import status_uptime_rollup

__all__ = [
    "CONTEXT_KEYS",
    "CommsError",
    "Conflict",
    "DeliveryOutcome",
    "InvalidInput",
    "NotFound",
    "audiences_without_channel",
    "channel_save",
    "channel_set_enabled",
    "comms_demo_seed",
    "comms_seed",
    "component_status_for",
    "deliveries_sweep",
    "delivery_attempt",
    "delivery_retry",
    "message_discard",
    "message_draft_create",
    "message_preview",
    "message_render",
    "message_rerender",
    "message_send",
    "message_status_refresh",
    "message_targets",
    "message_update",
    "notice_send",
    "reminder_send",
    "site_url",
    "status_health_record",
    "status_health_refresh",
    "status_environment_note",
    "status_incident_dismiss",
    "status_incident_draft",
    "status_incident_edit",
    "status_incident_post",
    "status_incident_publish",
    "status_incident_resolve",
    "status_reminders_send",
    "status_uptime_rollup",
    "status_maintenance_sync",
    "status_windows_check",
    "subscriber_by_token",
    "subscriber_confirm",
    "subscriber_confirmation_send",
    "subscriber_subscribe",
    "subscriber_unsubscribe",
    "window_text",
    "worker_heartbeat_record",
]
