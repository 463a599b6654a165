"""scripts/pipeline-example.sh against a live server, a real Celery worker and the demo Mycelia:
the curl walk-through in docs/api.md, run for real."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import token_of
from tests.integration.conftest import worker, worker_factory  # noqa: F401 - fixtures
from upgrades.models import CheckRun, RunStatus, Upgrade

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pipeline-example.sh"


def _pipeline(live_server, token: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={
            **os.environ,
            "MYCELIA_URL": live_server.url,
            "MYCELIA_TOKEN": token,
            "ENVIRONMENT": "demo-staging",
            "POLL_SECONDS": "0.2",
            "RUN_TIMEOUT_SECONDS": "120",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_pipeline_script__live_server_and_worker__upgrade_deployed_and_monitored(
    playbook,
    demo_environment,
    demo_mycelia,
    worker,  # noqa: F811 - the fixture imported above
    live_server,
    manager,
):
    # Given the demo Mycelia on 1.4.2, a worker, and a release manager's token
    assert httpx.get(f"{demo_mycelia.url}/health", timeout=5).json()["version"] == "1.4.2"

    # When the pipeline script drives a minor upgrade to 1.5.0
    done = _pipeline(live_server, token_of(manager), VERSION_TO="1.5.0")

    # Then it ends in monitoring after a deploy that passed, and the target runs 1.5.0
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["status"] == "monitoring" and outcome["deploy_state"] == "passed"
    assert outcome["deployed_version"] == "1.5.0"
    upgrade = Upgrade.objects.get(pk=outcome["id"])
    assert (upgrade.status, upgrade.deploy_state, upgrade.owner) == (
        "monitoring",
        "passed",
        manager,
    )
    runs = list(upgrade.runs.all())
    assert runs and all(r.status == RunStatus.PASSED for r in runs), [
        (r.title, r.status, r.reason) for r in runs
    ]
    assert upgrade.runs.filter(kind="deploy").count() == 1
    assert not upgrade.steps.filter(phase__stage="pre", required=True, status="open").exists()
    assert httpx.get(f"{demo_mycelia.url}/health", timeout=5).json()["version"] == "1.5.0"
    assert "pre-upgrade checks queued" in done.stderr and "monitoring; next:" in done.stderr


def test_pipeline_script__stakeholder_token__stops_at_create_with_the_refusal(
    playbook, demo_environment, live_server, stakeholder
):
    done = _pipeline(live_server, token_of(stakeholder))

    assert done.returncode == 1
    assert "answered 403" in done.stderr and "Only release managers" in done.stderr
    assert not Upgrade.objects.exists() and not CheckRun.objects.exists()
