"""The control panel's own health: /health for probes, /ops/status.json for people and
monitors (anonymous callers get only "ok" or "degraded"; staff and API tokens the details),
and the same checks for `manage.py diagnose`.

Other apps add components with register_component(name, check): check() returns a dict with
"status" ("ok" | "warning" | "failing") and any figures; an exception reads as failing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from flags.api.auth import bearer_from_header, token_check

OK, WARNING, FAILING = "ok", "warning", "failing"
_RANK = {OK: 0, WARNING: 1, FAILING: 2}

_registry: dict[str, Callable[[], dict[str, Any]]] = {}


def register_component(name: str, check: Callable[[], dict[str, Any]]) -> None:
    """Add (or replace) a component of /ops/status.json and `diagnose`."""
    _registry[name] = check


def unregister_component(name: str) -> None:
    _registry.pop(name, None)


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": FAILING, "error": f"{type(exc).__name__}: {exc}"[:500]}
    return {"status": OK, "vendor": connection.vendor}


def _broker_label(url: str) -> str:
    # Never show a password from the URL.
    scheme, _, rest = url.partition("://")
    host = rest.rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


def check_broker() -> dict[str, Any]:
    from kombu import Connection

    url = settings.CELERY_BROKER_URL
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    try:
        with Connection(url, transport_options=options, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return {"status": FAILING, "broker": _broker_label(url),
                "error": f"{type(exc).__name__}: {exc}"[:500]}  # fmt: skip
    return {"status": OK, "broker": _broker_label(url)}


def _stale_after() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "OPS_HEARTBEAT_STALE_SECONDS", 180)))


def check_workers() -> dict[str, Any]:
    from comms.models import WorkerHeartbeat

    now, stale = timezone.now(), _stale_after()
    workers = [
        {"name": h.worker, "last_heartbeat": h.seen_at.isoformat(),
         "age_seconds": int((now - h.seen_at).total_seconds()),
         "alive": now - h.seen_at <= stale}
        for h in WorkerHeartbeat.objects.order_by("-seen_at")[:20]
    ]  # fmt: skip
    alive = sum(w["alive"] for w in workers)
    if not alive:
        error = ("No worker has ever reported: start one with `celery -A mycelia_ops worker`."
                 if not workers else
                 f"No worker heartbeat in the last {int(stale.total_seconds())} s.")  # fmt: skip
        return {"status": FAILING, "alive": 0, "workers": workers, "error": error}
    return {"status": OK, "alive": alive, "workers": workers}


def check_scheduler() -> dict[str, Any]:
    from django.db.models import Max

    from comms.models import WorkerHeartbeat

    last = WorkerHeartbeat.objects.aggregate(at=Max("beat_at"))["at"]
    if last is None:
        return {"status": FAILING, "last_run": None,
                "error": "The scheduled heartbeat has never run: start `celery -A mycelia_ops beat`."}  # fmt: skip
    age = timezone.now() - last
    status = OK if age <= _stale_after() else FAILING
    result = {
        "status": status,
        "last_run": last.isoformat(),
        "age_seconds": int(age.total_seconds()),
    }
    if status != OK:
        result["error"] = f"The scheduled heartbeat last ran {int(age.total_seconds())} s ago."
    return result


def check_web() -> dict[str, Any]:
    return {"status": OK, "host": socket.gethostname(), "pid": os.getpid()}


def _run(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        result = dict(check())
    except Exception as exc:
        return {"status": FAILING, "error": f"{type(exc).__name__}: {exc}"[:500]}
    if result.get("status") not in _RANK:
        result["status"] = FAILING
        result.setdefault("error", "The check gave no status.")
    return result


def ops_status_collect(*, include_web: bool = True) -> dict[str, Any]:
    """Every component's state, and the worst of them as the overall status."""
    checks: dict[str, Callable[[], dict[str, Any]]] = {}
    if include_web:
        checks["web"] = check_web
    checks |= {"database": check_database, "broker": check_broker}
    components: dict[str, dict[str, Any]] = {}
    for name, check in checks.items():
        components[name] = _run(check)
    database_ok = components["database"]["status"] == OK
    rest = {"workers": check_workers, "scheduler": check_scheduler, **_registry}
    for name, check in rest.items():
        if database_ok:
            components[name] = _run(check)
        else:
            components[name] = {
                "status": FAILING,
                "error": "Unknown: the database does not answer.",
            }
    worst = max((_RANK[c["status"]] for c in components.values()), default=0)
    return {
        "status": [OK, WARNING, FAILING][worst],
        "checked_at": timezone.now().isoformat(),
        "components": components,
    }


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming what does not."""
    checks = {"database": _run(check_database), "broker": _run(check_broker)}
    failing = {name: c.get("error", "failing") for name, c in checks.items() if c["status"] != OK}
    if failing:
        return JsonResponse({"status": FAILING, "errors": failing}, status=503)
    return JsonResponse({"status": OK, "checks": {name: OK for name in checks}})


def _details_allowed(request: HttpRequest) -> tuple[bool, JsonResponse | None]:
    """Whether the caller may read the components (host names, process ids, the broker's
    host, the workers' names): staff signed in, or a live API token that is not an evaluation
    token (those ship inside applications). A token that does not pass is answered, not
    ignored, so a monitor with a wrong token finds out."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        token, status, problem = token_check(bearer_from_header(header), evaluation_allowed=False)
        if token is None:
            refusal = JsonResponse({"error": problem}, status=status)
            if status == 401:
                refusal["WWW-Authenticate"] = 'Bearer realm="mycelia-ops"'
            return False, refusal
        return True, None
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated and user.is_staff), None


@never_cache
@require_GET
def ops_status(request: HttpRequest) -> JsonResponse:
    """Everyone: "ok" or "degraded" and when. Staff and API tokens: every component."""
    allowed, refusal = _details_allowed(request)
    if refusal is not None:
        return refusal
    document = ops_status_collect()
    if allowed:
        return JsonResponse(document)
    overall = OK if document["status"] == OK else "degraded"
    return JsonResponse({"status": overall, "checked_at": document["checked_at"]})
