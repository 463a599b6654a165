"""The product's URLs plus `bench/baseline`, for the benchmark server only."""

from __future__ import annotations

from django.urls import path

from mycelia_ops.bench_views import bench_baseline
from mycelia_ops.urls import handler400, handler403, handler404  # noqa: F401
from mycelia_ops.urls import urlpatterns as product_urlpatterns

# First, so the baseline pays the least URL resolution it can: the stricter comparison.
urlpatterns = [path("bench/baseline", bench_baseline), *product_urlpatterns]
