"""The runs' doors: who may start, read and download what, and how bad input is answered."""

from __future__ import annotations

import httpx
import pytest
from django.urls import reverse

from tests.conftest import mark_deployed, set_fault
from upgrades import services
from upgrades.models import Artifact, CheckRun, EnvironmentOperation, HookMode, RunStatus


@pytest.fixture
def minor(make_upgrade, demo_environment):
    return make_upgrade("minor", environment=demo_environment, version_to="1.5.0")


def _deployed(upgrade):
    """After a deploy that passed, the post-deployment checks ("Verify deployment") may run."""
    upgrade.status = "in_progress"
    upgrade.save()
    mark_deployed(upgrade)


def test_step_run__stakeholder_and_outsider__refused_and_nothing_queued(
    minor, stakeholder_client, outsider, client
):
    step = minor.steps.get(title="Verify deployment")
    url = reverse("upgrades:step_run", args=[minor.pk, step.pk])
    assert stakeholder_client.post(url).status_code == 403
    client.force_login(outsider)
    assert client.post(url).status_code == 403
    assert not CheckRun.objects.exists()


def test_step_run__manager_htmx__queues_and_shows_the_live_runs_panel(minor, manager_client):
    _deployed(minor)
    step = minor.steps.get(title="Verify deployment")
    response = manager_client.post(
        reverse("upgrades:step_run", args=[minor.pk, step.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "every 2s" in html and "Queued" in html
    assert CheckRun.objects.get(step=step).status == "queued"


def test_action__backup__one_post_queues_it_with_no_extra_checkbox(minor, manager_client):
    response = manager_client.post(reverse("upgrades:action", args=[minor.pk, "backup"]))
    assert response.status_code == 302
    assert CheckRun.objects.get(upgrade=minor).action == "backup"


def test_action__unknown__answers_400(minor, manager_client):
    url = reverse("upgrades:action", args=[minor.pk, "self_destruct"])
    assert manager_client.post(url, {"confirm": "yes"}).status_code == 400


def test_run_log__tails_by_offset_and_rejects_a_bad_offset(minor, manager, stakeholder_client):
    step = minor.steps.get(title="Run diagnostics", phase__order=1)
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    url = reverse("upgrades:run_log", args=[minor.pk, run.pk])
    assert stakeholder_client.get(url, {"offset": "abc"}).status_code == 400
    tail = stakeholder_client.get(url, {"offset": 5}).content.decode()
    assert run.output[5:20].strip()[:10] in tail
    finished = stakeholder_client.get(url, {"offset": len(run.output)}).content.decode()
    assert "hx-swap-oob" not in finished and "every 1s" not in finished


def test_run_page__failed_health_check__offers_common_issues_and_rollback(
    minor, manager, manager_client, demo_mycelia
):
    _deployed(minor)
    set_fault(demo_mycelia, "health_failing")
    step = minor.steps.get(title="Verify deployment")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    html = manager_client.get(reverse("upgrades:run", args=[minor.pk, run.pk])).content.decode()
    assert "System not starting after upgrade" in html
    assert "Roll back to the previous version" in html


def test_artifact_download__manager_gets_file_stakeholder_refused(
    minor, manager, manager_client, stakeholder
):
    run = services.action_request(upgrade=minor, action="backup", by=manager, confirmed=True)
    services.check_run_execute(run_id=run.pk)
    archive = Artifact.objects.get(upgrade=minor, kind="config_archive")
    url = reverse("upgrades:artifact_download", args=[minor.pk, archive.pk])
    response = manager_client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content)[:2] == b"\x1f\x8b"  # gzip
    manager_client.force_login(stakeholder)
    assert manager_client.get(url).status_code == 403


def test_deploy_hook__as_webhook__posts_json_with_secret(minor, manager, demo_mycelia):
    # Given the environment's deploy hook is the demo's HTTP /deploy, guarded by a secret
    demo_mycelia.secret = "s3cret"
    EnvironmentOperation.objects.filter(operation="deploy").update(
        mode=HookMode.WEBHOOK,
        webhook_url=f"{demo_mycelia.url}/deploy",
        webhook_secret_header="X-Mycelia-Secret",
        webhook_secret="s3cret",
    )
    upgrade = services.upgrade_transition(
        upgrade=minor, transition="start", by=manager, override_reason="test"
    )
    run = services.action_request(upgrade=upgrade, action="deploy", by=manager, confirmed=True)
    services.check_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.PASSED, run.reason
    assert run.measured["status_code"] == 200
    assert httpx.get(f"{demo_mycelia.url}/health").json()["version"] == "1.5.0"
    assert "s3cret" not in run.reason + run.output


def test_common_issues__are_records_staff_edit_and_the_run_page_offers_them(
    minor, manager, manager_client, demo_mycelia
):
    _deployed(minor)
    from upgrades.models import CommonIssue

    assert CommonIssue.objects.count() == 3
    CommonIssue.objects.filter(title="Version Upgrade Issues").update(
        symptoms="Edited by staff: /health answers 503"
    )
    set_fault(demo_mycelia, "health_failing")
    step = minor.steps.get(title="Verify deployment")
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    services.check_run_execute(run_id=run.pk)
    page = manager_client.get(reverse("upgrades:detail", args=[minor.pk])).content.decode()
    assert "Common issues and fixes" in page
    html = manager_client.get(reverse("upgrades:run", args=[minor.pk, run.pk])).content.decode()
    assert "Edited by staff: /health answers 503" in html
    assert "Tail the logs" in html
    tail = services.action_request(upgrade=minor, action="log_tail", by=manager, confirmed=True)
    services.check_run_execute(run_id=tail.pk)
    tail.refresh_from_db()
    assert tail.status == RunStatus.PASSED and "fault health_failing on" in tail.output


def test_run_log__offset_of_thirty_nines__answers_empty_not_500(minor, manager, stakeholder_client):
    step = minor.steps.filter(phase__order=1, kind="command").first()
    run = services.check_run_request(upgrade=minor, step=step, by=manager)
    url = reverse("upgrades:run_log", args=[minor.pk, run.pk])
    response = stakeholder_client.get(url, {"offset": "9" * 30})
    assert response.status_code == 200
