"""The status page's mirror of upgrades, the environments it shows, and their health.

What the public sees is only what is true and only what concerns it: an environment the
upgrades app does not mark as shown never reaches the page, its JSON, feeds or subscribers, and
an upgrade that went wrong drafts an incident (comms/services/incidents.py) instead of
announcing it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import formats, timezone

from comms.exceptions import InvalidInput
from comms.models import (
    HIDDEN_LIFECYCLES,
    ComponentHealth,
    ComponentSample,
    ComponentStatus,
    EnvironmentHealth,
    MaintenanceStatus,
    StatusEnvironment,
    StatusMaintenance,
    StatusUpdate,
    TemplateKey,
    UpgradeLifecycle,
)
from comms.services._events import event_record
from comms.services._outgoing import site_url
from comms.services.messages import notice_send

logger = logging.getLogger(__name__)

# Upgrade lifecycle -> Statuspage scheduled maintenance status.
MAINTENANCE_STATUS = {
    UpgradeLifecycle.DRAFT: MaintenanceStatus.SCHEDULED,
    UpgradeLifecycle.SCHEDULED: MaintenanceStatus.SCHEDULED,
    UpgradeLifecycle.IN_PROGRESS: MaintenanceStatus.IN_PROGRESS,
    UpgradeLifecycle.MONITORING: MaintenanceStatus.VERIFYING,
    UpgradeLifecycle.COMPLETED: MaintenanceStatus.COMPLETED,
    UpgradeLifecycle.ROLLED_BACK: MaintenanceStatus.COMPLETED,
    UpgradeLifecycle.FAILED: MaintenanceStatus.COMPLETED,
    UpgradeLifecycle.CANCELLED: MaintenanceStatus.COMPLETED,
}
# What the page posts by itself at each status change. An upgrade that went wrong says only
# that the maintenance ended: whether and how to tell more is a release manager's call (the
# drafted incident), never the page's.
UPDATE_TEXT = {
    UpgradeLifecycle.SCHEDULED: "Scheduled for {window}.",
    UpgradeLifecycle.IN_PROGRESS: "The upgrade is in progress.",
    UpgradeLifecycle.MONITORING: "The upgrade is deployed; we are verifying it.",
    UpgradeLifecycle.COMPLETED: "The upgrade is complete.",
    UpgradeLifecycle.ROLLED_BACK: "The maintenance has ended.",
    UpgradeLifecycle.FAILED: "The maintenance has ended.",
}
ENDED = frozenset(
    {UpgradeLifecycle.COMPLETED, UpgradeLifecycle.ROLLED_BACK, UpgradeLifecycle.FAILED}
)


def _when(value: datetime | None) -> str:
    if value is None:
        return "not set"
    local = timezone.localtime(value)
    return f"{formats.date_format(local, 'j M Y H:i')} {local.tzname()}"


def window_text(start: datetime | None, end: datetime | None) -> str:
    if start is None and end is None:
        return "not set"
    return f"{_when(start)} – {_when(end)}"


def public_outcome(m: StatusMaintenance) -> str:
    """The maintenance's state in the words the public gets: an upgrade that was rolled back
    or failed "Ended" (true, and no more than that until a manager publishes an incident)."""
    if m.lifecycle in (UpgradeLifecycle.ROLLED_BACK, UpgradeLifecycle.FAILED):
        return "Ended"
    return m.get_lifecycle_display()


def _notice(m: StatusMaintenance, key: str, **extra: str) -> None:
    context = {
        "upgrade_title": m.title,
        "environment": m.environment_name,
        "window": window_text(m.window_start, m.window_end),
        "status": public_outcome(m),
        "status_page_url": site_url("/status/"),
        **extra,
    }
    notice_send(
        template_key=key, upgrade_id=m.upgrade_id, environment_key=m.environment_key,
        context=context, upgrade_title=m.title, upgrade_url=m.url,
    )  # fmt: skip


def status_environment_note(*, environment_key: str, environment_name: str, public: bool) -> bool:
    """Record whether an environment is shown on the status page (call inside a transaction).
    When the setting changes, its upgrades follow at once. Returns the setting."""
    now = timezone.now()
    env = (
        StatusEnvironment.objects.select_for_update()
        .filter(environment_key=environment_key)
        .first()
    )
    if env is None:
        env = StatusEnvironment.objects.create(
            environment_key=environment_key, environment_name=environment_name[:200],
            is_public=public, updated_at=now,
        )  # fmt: skip
        event_record(kind="environment_shown" if public else "environment_hidden", subject=env)
        return public
    if env.is_public == public and env.environment_name == environment_name[:200]:
        return public
    changed = env.is_public != public
    env.is_public, env.environment_name, env.updated_at = public, environment_name[:200], now
    env.save()
    if changed:
        StatusMaintenance.objects.filter(environment_key=environment_key).exclude(
            lifecycle__in=HIDDEN_LIFECYCLES
        ).update(is_public=public, updated_at=now)
        event_record(kind="environment_shown" if public else "environment_hidden", subject=env)
    return public


def status_maintenance_sync(
    *,
    upgrade_id: int,
    title: str,
    type_label: str,
    environment_key: str,
    environment_name: str,
    status: str,
    window_start: datetime | None,
    window_end: datetime | None,
    progress_percent: int,
    phase_title: str,
    url: str,
    public: bool = False,
) -> StatusMaintenance:
    """Upsert the status page's record of one upgrade (call it on every change the page
    shows: status, window, phase, progress). `public`: the environment's "shown on the status
    page" setting (not shown unless said); an upgrade of an environment not shown stays off
    the page, its JSON, feeds and subscriber notices. Posts a status update when the status changes and mails
    subscribers when a shown window moves, starts or ends. Never opens an incident: a rollback
    or failure is drafted as one by status_incident_draft, for a release manager to publish."""
    if status not in UpgradeLifecycle.values:
        raise InvalidInput(f"Unknown upgrade status '{status}'.")
    if window_start and window_end and window_end < window_start:
        raise InvalidInput("The window ends before it starts.")
    now = timezone.now()
    values = {
        "title": title[:300], "type_label": type_label[:100],
        "environment_key": environment_key, "environment_name": environment_name[:200],
        "lifecycle": status, "status": MAINTENANCE_STATUS[status],
        "is_public": bool(public) and status not in HIDDEN_LIFECYCLES,
        "window_start": window_start, "window_end": window_end,
        "progress_percent": max(0, min(int(progress_percent or 0), 100)),
        "phase_title": phase_title[:300], "url": url[:500],
    }  # fmt: skip
    with transaction.atomic():
        status_environment_note(
            environment_key=environment_key, environment_name=environment_name, public=public
        )
        m = StatusMaintenance.objects.select_for_update().filter(upgrade_id=upgrade_id).first()
        if m is None:
            m = StatusMaintenance.objects.create(upgrade_id=upgrade_id, updated_at=now, **values)
            event_record(kind="maintenance_created", subject=m, to_state=status)
            if m.is_public:
                _status_changed(m, None, now)
            return m
        before = {k: getattr(m, k) for k in values}
        if before == values:
            return m
        for key, value in values.items():
            setattr(m, key, value)
        m.updated_at = now
        window_moved = (before["window_start"], before["window_end"]) != (window_start, window_end)
        if window_moved:
            m.reminder_sent_at = None  # the new time gets its own reminder
        moved = (
            before["is_public"] and m.is_public and before["lifecycle"] not in ENDED
            and window_moved and before["window_start"] is not None
        )  # fmt: skip
        m.save()
        event_record(
            kind="maintenance_synced",
            subject=m,
            from_state=before["lifecycle"],
            to_state=status,
            detail={k: str(v) for k, v in values.items() if before[k] != v},
        )
        if moved:
            _notice(m, TemplateKey.WINDOW_MOVED,
                    previous_window=window_text(before["window_start"], before["window_end"]))  # fmt: skip
        if before["lifecycle"] != status and m.is_public:
            _status_changed(m, before["lifecycle"], now)
    return m


def _status_changed(m: StatusMaintenance, before: str | None, now: datetime) -> None:
    """Inside the sync's transaction: post the update, stamp the times, notify."""
    fields = []
    if (
        m.status in (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING)
        and not m.started_at
    ):
        m.started_at = now
        fields.append("started_at")
    if m.lifecycle in ENDED and not m.completed_at:
        m.completed_at = now
        fields.append("completed_at")
    text = UPDATE_TEXT.get(m.lifecycle, "").format(window=window_text(m.window_start, m.window_end))
    if text:
        StatusUpdate.objects.create(
            maintenance=m, status=m.status,
            body=text + (f" Phase: {m.phase_title}." if m.phase_title and m.lifecycle not in ENDED else ""),
            created_at=now,
        )  # fmt: skip
    if m.status == MaintenanceStatus.IN_PROGRESS and not m.start_notified_at:
        m.start_notified_at = now
        fields.append("start_notified_at")
        _notice(m, TemplateKey.WINDOW_STARTED, at=_when(now))
    if m.lifecycle in ENDED and m.start_notified_at and not m.end_notified_at:
        m.end_notified_at = now
        fields.append("end_notified_at")
        _notice(m, TemplateKey.WINDOW_ENDED, at=_when(now))
    if fields:
        m.save(update_fields=fields)


def status_windows_check() -> dict[str, int]:
    """For beat: mail subscribers once when a scheduled window's start time passes (before the
    upgrade reports it started), and once when its end passes."""
    now = timezone.now()
    started = ended = 0
    due_start = StatusMaintenance.objects.filter(
        is_public=True, status=MaintenanceStatus.SCHEDULED, window_start__lte=now,
        start_notified_at__isnull=True,
    ).values_list("pk", flat=True)  # fmt: skip
    for pk in list(due_start[:500]):
        with transaction.atomic():
            m = StatusMaintenance.objects.select_for_update().get(pk=pk)
            if m.start_notified_at is None:
                m.start_notified_at = now
                m.save(update_fields=["start_notified_at"])
                event_record(kind="window_started", subject=m, to_state=m.lifecycle)
                _notice(m, TemplateKey.WINDOW_STARTED, at=_when(m.window_start))
                started += 1
    due_end = StatusMaintenance.objects.filter(
        is_public=True, window_end__lte=now, start_notified_at__isnull=False,
        end_notified_at__isnull=True,
    ).values_list("pk", flat=True)  # fmt: skip
    for pk in list(due_end[:500]):
        with transaction.atomic():
            m = StatusMaintenance.objects.select_for_update().get(pk=pk)
            if m.end_notified_at is None:
                m.end_notified_at = now
                m.save(update_fields=["end_notified_at"])
                event_record(kind="window_ended", subject=m, to_state=m.lifecycle)
                _notice(m, TemplateKey.WINDOW_ENDED, at=_when(m.window_end))
                ended += 1
    return {"started": started, "ended": ended}


REMINDER_BEFORE = timedelta(minutes=60)


def status_reminders_send() -> int:
    """For beat: the reminder to subscribers about an hour before a shown, scheduled window
    starts, once per window. Each is claimed with a conditional update in the transaction that
    queues it: two schedulers running at once send it once, and a failed queueing leaves it
    for the next run. Returns how many were sent."""
    now = timezone.now()
    due = StatusMaintenance.objects.filter(
        is_public=True, status=MaintenanceStatus.SCHEDULED, reminder_sent_at__isnull=True,
        window_start__gt=now, window_start__lte=now + REMINDER_BEFORE,
    ).values_list("pk", flat=True)  # fmt: skip
    sent = 0
    for pk in list(due[:500]):
        with transaction.atomic():
            claimed = StatusMaintenance.objects.filter(
                pk=pk, reminder_sent_at__isnull=True, status=MaintenanceStatus.SCHEDULED
            ).update(reminder_sent_at=now)
            if not claimed:
                continue  # another scheduler got it, or it started meanwhile
            m = StatusMaintenance.objects.get(pk=pk)
            event_record(kind="window_reminder_sent", subject=m, to_state=m.lifecycle)
            _notice(m, TemplateKey.WINDOW_REMINDER, at=_when(m.window_start))
            sent += 1
    return sent


# --- environment health ----------------------------------------------------------------------

_SERVICE_STATUS = {
    "healthy": ComponentStatus.OPERATIONAL,
    "ok": ComponentStatus.OPERATIONAL,
    "operational": ComponentStatus.OPERATIONAL,
    "up": ComponentStatus.OPERATIONAL,
    "degraded": ComponentStatus.DEGRADED_PERFORMANCE,
    "slow": ComponentStatus.DEGRADED_PERFORMANCE,
    "partial": ComponentStatus.PARTIAL_OUTAGE,
    "partial_outage": ComponentStatus.PARTIAL_OUTAGE,
    "down": ComponentStatus.MAJOR_OUTAGE,
    "outage": ComponentStatus.MAJOR_OUTAGE,
    "failing": ComponentStatus.MAJOR_OUTAGE,
    "maintenance": ComponentStatus.UNDER_MAINTENANCE,
}


def component_status_for(reported: str) -> str:
    """An environment's own word for a service -> a Statuspage component status; a word we
    do not know reads as a partial outage (something is off, we cannot say how much)."""
    return _SERVICE_STATUS.get((reported or "").strip().lower(), ComponentStatus.PARTIAL_OUTAGE)


def status_health_record(
    *,
    environment_key: str,
    environment_name: str,
    document: dict[str, Any] | None,
    error: str,
    public: bool | None = None,
) -> EnvironmentHealth:
    """Record one look at an environment's /ops/status.json ({"version", "services": [{"name",
    "status", figures...}]}). With an error (unreachable, not JSON), its known components read
    as a major outage: the status page cannot see the system answer. `public`: the
    environment's "shown on the status page" setting (None leaves what comms knows). Each
    look is also kept as one sample per service, for the scheduler's daily uptime roll-up."""
    now = timezone.now()
    services: list[dict[str, Any]] = []
    if document is not None and not error:
        raw = document.get("services") if isinstance(document, dict) else None
        if not isinstance(raw, list):
            error = 'The status document has no "services" list.'
        else:
            services = [s for s in raw if isinstance(s, dict) and isinstance(s.get("name"), str)]
    elif not error:
        error = "No status document."
    with transaction.atomic():
        if public is not None:
            status_environment_note(
                environment_key=environment_key, environment_name=environment_name, public=public
            )
        env, _ = EnvironmentHealth.objects.select_for_update().get_or_create(
            environment_key=environment_key, defaults={"environment_name": environment_name}
        )
        was_ok = not env.error
        env.environment_name, env.checked_at, env.error = environment_name, now, error[:1000]
        env.version = str((document or {}).get("version") or "")[:100] if not error else env.version
        env.save()
        existing = {
            c.name: c for c in ComponentHealth.objects.filter(environment_key=environment_key)
        }
        changes: dict[str, list[str]] = {}
        if error:
            for component in existing.values():
                if component.status != ComponentStatus.MAJOR_OUTAGE:
                    changes[component.name] = [component.status, ComponentStatus.MAJOR_OUTAGE]
            ComponentHealth.objects.filter(environment_key=environment_key).update(
                status=ComponentStatus.MAJOR_OUTAGE, checked_at=now
            )
        for position, service in enumerate(services):
            name = service["name"][:200]
            reported = str(service.get("status", ""))
            status = component_status_for(reported)
            figures = {k: v for k, v in service.items() if k not in ("name", "status")}
            component = existing.get(name)
            if component is None:
                ComponentHealth.objects.create(
                    environment_key=environment_key, environment_name=environment_name,
                    name=name, status=status, reported_status=reported[:100], figures=figures,
                    position=position, checked_at=now,
                )  # fmt: skip
                changes[name] = ["", status]
                continue
            if component.status != status:
                changes[name] = [component.status, status]
                component.updated_at = now
            component.status, component.reported_status = status, reported[:100]
            component.figures, component.position, component.checked_at = figures, position, now
            component.environment_name = environment_name
            component.save()
        seen = {s["name"][:200]: component_status_for(str(s.get("status", ""))) for s in services}
        if error:
            seen = dict.fromkeys(existing, ComponentStatus.MAJOR_OUTAGE) | seen
        ComponentSample.objects.bulk_create(
            ComponentSample(environment_key=environment_key, name=name, at=now, status=status)
            for name, status in seen.items()
        )
        if changes or was_ok != (not error):
            event_record(kind="health_changed", subject=env, from_state="ok" if was_ok else "error",
                         to_state="error" if error else "ok",
                         detail={"components": changes, "error": error})  # fmt: skip
    return env


def status_health_refresh(*, environments: list[dict[str, Any]]) -> dict[str, str]:
    """Fetch each environment's status document with httpx and record it.

    environments: [{"key", "name", "status_url", "timeout" (seconds, optional), "public"
    (shown on the status page, optional)}]. Returns
    {key: "ok" | error}. The fetches happen outside any transaction."""
    import httpx

    results: dict[str, str] = {}
    for env in environments:
        key, name, url = str(env["key"]), str(env.get("name") or env["key"]), env.get("status_url")
        document, error = None, ""
        try:
            if not url:
                raise ValueError("No status URL is configured for this environment.")
            response = httpx.get(str(url), timeout=float(env.get("timeout") or 5))
            if response.status_code != 200:
                raise ValueError(f"{url} answered HTTP {response.status_code}")
            try:
                document = response.json()
            except ValueError as exc:
                raise ValueError(f"{url} did not answer JSON") from exc
            if not isinstance(document, dict):
                raise ValueError(f"{url} answered JSON that is not an object")
        except (httpx.HTTPError, ValueError) as exc:
            error = str(exc) or type(exc).__name__
            document = None
        public = env.get("public")
        status_health_record(
            environment_key=key, environment_name=name, document=document, error=error,
            public=None if public is None else bool(public),
        )  # fmt: skip
        results[key] = error or "ok"
    return results
