"""Thin views: read with selectors, write with services, answer HTMX with named partials."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from mycelia_ops.roles import release_manager_required, viewer_required
from upgrades import selectors, services
from upgrades import storage as artifact_storage
from upgrades.models import (
    Artifact,
    CheckRun,
    Environment,
    Upgrade,
    UpgradeStatus,
    UpgradeType,
)
from upgrades.views_setup import not_set_up

logger = logging.getLogger(__name__)


def _get_upgrade_for_user(request: HttpRequest, upgrade_id: int) -> Upgrade:
    # Every signed-in release manager and stakeholder sees every upgrade; the role decorators
    # have already turned everyone else away.
    return get_object_or_404(
        Upgrade.objects.select_related("environment", "owner", "template"), pk=upgrade_id
    )


@require_GET
@viewer_required
def upgrade_list(request: HttpRequest) -> HttpResponse:
    if bare := not_set_up(request):  # a fresh install: the set-up start, or whom to ask
        return bare
    filters = {
        "upgrade_type": request.GET.get("type", ""),
        "status": request.GET.get("status", ""),
        "environment": request.GET.get("environment", ""),
        "query": request.GET.get("q", "").strip(),
    }
    page = Paginator(selectors.upgrade_list(**filters), settings.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    selectors.attach_progress(page.object_list)
    query_without_page = request.GET.copy()
    query_without_page.pop("page", None)
    context = {
        "page": page,
        "filters": filters,
        "types": UpgradeType.choices,
        "statuses": UpgradeStatus.choices,
        "environments": Environment.objects.all(),
        "query_string": query_without_page.urlencode(),
    }
    template = "upgrades/list.html#results" if request.htmx else "upgrades/list.html"
    return render(request, template, context)


@require_GET
@viewer_required
def upgrade_timeline(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    page = Paginator(selectors.upgrade_timeline(upgrade), 50).get_page(request.GET.get("page"))
    return render(request, "upgrades/timeline.html", {"upgrade": upgrade, "page": page})


@require_GET
@viewer_required
def run_detail(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    run = get_object_or_404(CheckRun.objects.select_related("step"), pk=run_id, upgrade=upgrade)
    solutions = selectors.solutions_for(run)
    return render(
        request, "upgrades/run.html", {"upgrade": upgrade, "run": run, "solutions": solutions}
    )


@require_GET
@viewer_required
def run_log(request: HttpRequest, upgrade_id: int, run_id: int) -> HttpResponse:
    """What the run printed since `offset`: the log tails by fetching only what is new."""
    run = get_object_or_404(CheckRun, pk=run_id, upgrade_id=upgrade_id)
    offset = request.GET.get("offset", "0")
    if not offset.isdigit():
        return render(
            request, "error.html",
            {"status": 400, "title": "Bad request", "detail": "offset must be a whole number"},
            status=400,
        )  # fmt: skip
    chunk, size = services.check_run_log(run=run, offset=int(offset))
    run.refresh_from_db(fields=["status", "reason", "finished_at", "duration_ms"])
    return render(
        request, "upgrades/run.html#log", {"run": run, "chunk": chunk, "offset": size,
                                           "upgrade_id": upgrade_id},
    )  # fmt: skip


@require_GET
@release_manager_required
def artifact_download(request: HttpRequest, upgrade_id: int, artifact_id: int) -> HttpResponse:
    """The artifact streamed from the artifacts storage (any web process can serve what any worker
    stored), verified as it streams: the last chunk leaves only after the whole file matched its
    sha256, so a changed file ends the download short of its Content-Length (upgrades.storage)."""
    artifact = get_object_or_404(Artifact, pk=artifact_id, upgrade_id=upgrade_id)
    try:
        reader = artifact_storage.artifact_open(
            storage_name=artifact.storage_name, sha256=artifact.sha256,
            size_bytes=artifact.size_bytes, label=artifact.name, legacy_path=artifact.path,
        )  # fmt: skip
    except FileNotFoundError:
        raise Http404(f"The file of {artifact.name} is no longer kept.") from None
    except Exception:  # noqa: BLE001 - an object store that does not answer is not a 500
        logger.exception("Artifacts storage unreachable for artifact %s", artifact.pk)
        detail = "The artifacts storage did not answer. Try again in a minute; if it goes on, ask an administrator to check ARTIFACTS_STORAGE."
        return render(
            request, "error.html",
            {"status": 503, "title": "Storage unavailable", "detail": detail}, status=503,
        )  # fmt: skip
    response = FileResponse(reader, as_attachment=True, filename=artifact.name)
    response["Content-Length"] = str(artifact.size_bytes)
    return response


# --- lessons and the dashboard (the upgrade page and its forms: views_page.py) -----------------


@require_GET
@viewer_required
def lessons(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    page = Paginator(selectors.lessons_learned(query=query), settings.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "upgrades/lessons.html", {"page": page, "query": query})


@require_GET
@viewer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    if bare := not_set_up(request):
        return bare
    template = "upgrades/dashboard.html#board" if request.htmx else "upgrades/dashboard.html"
    return render(request, template, selectors.dashboard())


# --- the report ------------------------------------------------------------------------------------


@require_GET
@viewer_required
def upgrade_report(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    return render(request, "upgrades/report.html", selectors.upgrade_report(upgrade))


@require_GET
@viewer_required
def upgrade_report_markdown(request: HttpRequest, upgrade_id: int) -> HttpResponse:
    upgrade = _get_upgrade_for_user(request, upgrade_id)
    response = render(
        request,
        "upgrades/report.md",
        selectors.upgrade_report(upgrade),
        content_type="text/markdown; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="upgrade-{upgrade.pk}-report.md"'
    return response
