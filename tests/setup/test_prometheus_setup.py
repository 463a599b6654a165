"""The metrics source on the set-up pages (issue 14): an environment's Prometheus URL, timeout
and credentials as secret files (never the secret), and SLO thresholds with a PromQL query."""

from __future__ import annotations

import pytest
from django.urls import reverse

from upgrades.models import Environment, SetupEvent, SloThreshold

pytestmark = pytest.mark.django_db

ENVIRONMENT = {
    "name": "Staging two", "slug": "staging-two", "kind": "staging",
    "base_url": "http://127.0.0.1:9", "health_path": "/health",
    "status_path": "/ops/status.json", "request_timeout_seconds": "5", "public_status": "",
}  # fmt: skip
SLO = {"error_rate_operator": "<", "error_rate": "0.01",
       "latency_p95_ms_operator": "<=", "latency_p95_ms": "",
       "availability_operator": ">=", "availability": ""}  # fmt: skip
QUERY = 'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'


def test_environment__prometheus_with_token_file__saved_and_shown_without_secret(admin_client):
    response = admin_client.post(reverse("setup:environment_create"), {
        **ENVIRONMENT, "prometheus_url": "http://prometheus:9090",
        "prometheus_timeout_seconds": "3", "prometheus_bearer_token_file": "/run/secrets/prom",
    })  # fmt: skip
    assert response.status_code == 302
    environment = Environment.objects.get(slug="staging-two")
    assert environment.prometheus_url == "http://prometheus:9090"
    assert environment.prometheus_timeout_seconds == 3.0
    assert environment.prometheus_bearer_token_file == "/run/secrets/prom"
    page = admin_client.get(reverse("setup:environment", args=[environment.pk])).content.decode()
    assert "Prometheus at http://prometheus:9090" in page and "bearer token from a file" in page


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"prometheus_url": "prometheus:9090"}, "prometheus_url", "http(s) address"),
        ({"prometheus_bearer_token_file": "s3cr3t-token"}, "bearer", "never the secret"),
        ({"prometheus_username": "ops"}, "password", "needs both"),
    ],
    ids=["url", "token-pasted", "user-without-password"],
)
def test_environment__bad_prometheus_settings__400_naming_the_problem(
    admin_client, extra, field, words
):
    response = admin_client.post(reverse("setup:environment_create"), {**ENVIRONMENT, **extra})
    assert response.status_code == 400
    assert words in response.content.decode()
    assert not Environment.objects.filter(slug="staging-two").exists()


def test_slo__query_without_prometheus_url__400_names_it(admin_client, staging):
    response = admin_client.post(
        reverse("setup:slo", args=[staging.pk]), {**SLO, "error_rate_query": QUERY}
    )
    assert response.status_code == 400
    assert "has no Prometheus URL" in response.content.decode()
    assert not SloThreshold.objects.exists()


def test_slo__query_with_prometheus__saved_with_history(admin_client, staging):
    staging.prometheus_url = "http://prometheus:9090"
    staging.save()
    url = reverse("setup:slo", args=[staging.pk])
    assert admin_client.post(url, {**SLO, "error_rate_query": QUERY}).status_code == 302
    row = SloThreshold.objects.get(environment=staging, metric="error_rate")
    assert (row.operator, row.limit, row.query) == ("<", 0.01, QUERY)
    assert SetupEvent.objects.filter(subject="slo", to_value=f"< 0.01 from {QUERY}").exists()
    # The form shows the query back; clearing it reads the status document again
    assert QUERY in admin_client.get(
        reverse("setup:environment", args=[staging.pk])
    ).content.decode().replace("&quot;", '"').replace("&#x27;", "'")
    admin_client.post(url, SLO)
    assert SloThreshold.objects.get(environment=staging, metric="error_rate").query == ""
