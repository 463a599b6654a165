"""A minimal JSON view: the benchmark's baseline for what this Django setup can serve at best.

It goes through the same middleware as every other view and does nothing else, so the ratio of
an endpoint's throughput to this one's is the share its own work leaves. POST, like OFREP.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods


@csrf_exempt
@require_http_methods(["GET", "POST"])
def bench_baseline(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
