"""The upgrade pages, tried by a release manager, a stakeholder and an outsider."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.conftest import _flag_exists
from upgrades.models import EventKind, PhaseStage, StepStatus, UpgradeStatus


@pytest.fixture
def upgrade(make_upgrade):
    return make_upgrade("minor")


def _read_urls(upgrade):
    return [
        reverse("upgrades:list"),
        reverse("upgrades:detail", args=[upgrade.pk]),
        reverse("upgrades:timeline", args=[upgrade.pk]),
    ]


def _write_requests(upgrade):
    step = upgrade.steps.first()
    return [
        (reverse("upgrades:create"), {"title": "x"}),
        (
            reverse("upgrades:transition", args=[upgrade.pk]),
            {"transition": "cancel", "reason": "r"},
        ),
        (reverse("upgrades:decide", args=[upgrade.pk]), {"decision": "go", "reason": "r"}),
        (reverse("upgrades:risk", args=[upgrade.pk]), {"risk": "critical", "reason": "r"}),
        (reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "complete"]), {}),
        (reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "skip"]), {"reason": "r"}),
    ]


def test_pages__anonymous__redirect_to_sign_in(client, upgrade):
    for url in _read_urls(upgrade):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_pages__outsider__is_refused_everywhere(outsider_client, upgrade):
    for url in _read_urls(upgrade):
        assert outsider_client.get(url).status_code == 403
    for url, data in _write_requests(upgrade):
        assert outsider_client.post(url, data).status_code == 403


def test_pages__stakeholder__reads_everything_and_changes_nothing(stakeholder_client, upgrade):
    for url in _read_urls(upgrade):
        assert stakeholder_client.get(url).status_code == 200
    for url, data in _write_requests(upgrade):
        response = stakeholder_client.post(url, data)
        assert response.status_code == 403, url
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.DRAFT
    assert not upgrade.steps.exclude(status=StepStatus.OPEN).exists()
    assert list(upgrade.events.values_list("kind", flat=True)) == [EventKind.CREATED]


def test_detail__stakeholder__sees_no_write_control(stakeholder_client, upgrade):
    html = stakeholder_client.get(reverse("upgrades:detail", args=[upgrade.pk])).content.decode()
    assert "Run diagnostics" in html
    post_targets = re.findall(r'<form method="post" action="([^"]*)"', html)
    assert post_targets == ["/accounts/logout/"]
    assert "Start deployment</button>" not in html


def test_detail__manager__sees_checklist_grouped_by_phase_with_actions(manager_client, upgrade):
    response = manager_client.get(reverse("upgrades:detail", args=[upgrade.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    for phase in upgrade.phases.all():
        assert phase.title in html
    assert "Start deployment" in html and "Override the gate" in html


def test_step_complete__htmx__answers_the_refreshed_body_with_progress(manager_client, upgrade):
    step = upgrade.steps.first()
    response = manager_client.post(
        reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "complete"]),
        {"note": "diagnose clean"},
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    # Only what changed: the step, and out of band its phase header and the overall progress
    assert html.lstrip().startswith(f'<li class="step done" id="step-{step.pk}"')
    assert "hx-swap-oob" in html and "diagnose clean" in html
    assert html.count('class="step ') == 1


def test_step_complete__without_javascript__redirects_back_to_the_page(manager_client, upgrade):
    step = upgrade.steps.first()
    url = reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "complete"])
    response = manager_client.post(url, {})
    assert response.status_code == 302
    assert response["Location"] == f"{upgrade.get_absolute_url()}#step-{step.pk}"
    step.refresh_from_db()
    assert step.status == StepStatus.DONE


def test_step_skip__no_reason__answers_400_with_message_and_keeps_step(manager_client, upgrade):
    step = upgrade.steps.first()
    url = reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "skip"])
    response = manager_client.post(url, {"reason": ""}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "needs a reason" in response.content.decode()
    step.refresh_from_db()
    assert step.status == StepStatus.OPEN


def test_step_action__unknown_action_or_step__answers_400_or_404(manager_client, upgrade):
    step = upgrade.steps.first()
    bad_action = reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "explode"])
    assert manager_client.post(bad_action).status_code == 400
    missing = reverse("upgrades:step_action", args=[upgrade.pk, 999999, "complete"])
    assert manager_client.post(missing).status_code == 404


def test_step_update__bad_evidence_link__answers_400_naming_the_field(manager_client, upgrade):
    step = upgrade.steps.first()
    url = reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "update"])
    response = manager_client.post(url, {"evidence_url": "not a link"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "evidence url" in response.content.decode()


def test_start__gate_closed__answers_409_with_the_open_steps(manager_client, upgrade):
    url = reverse("upgrades:transition", args=[upgrade.pk])
    response = manager_client.post(url, {"transition": "start"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "required pre-upgrade step(s) are still open" in html
    assert "Run diagnostics" in html


def test_start__override_with_reason__moves_to_in_progress(manager_client, upgrade):
    url = reverse("upgrades:transition", args=[upgrade.pk])
    response = manager_client.post(
        url, {"transition": "start", "override_reason": "hotfix window"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.IN_PROGRESS
    assert "hotfix window" in response.content.decode()


def test_transition__unknown_name__answers_400(manager_client, upgrade):
    url = reverse("upgrades:transition", args=[upgrade.pk])
    assert manager_client.post(url, {"transition": "teleport"}).status_code == 400


def test_detail__unknown_upgrade__answers_404_page(manager_client):
    response = manager_client.get(reverse("upgrades:detail", args=[424242]))
    assert response.status_code == 404


def test_create__valid_form__creates_upgrade_and_redirects(
    manager_client, playbook, staging, manager
):
    _flag_exists("new-checkout", staging, manager)
    response = manager_client.post(
        reverse("upgrades:create"),
        {
            "upgrade_type": "feature_flag",
            "title": "Enable new checkout",
            "environment": staging.pk,
            "flag_key": "new-checkout",
        },
    )
    assert response.status_code == 302
    detail = manager_client.get(response["Location"])
    assert "Enable new checkout" in detail.content.decode()
    assert "Step 1: Preparation" in detail.content.decode()


def test_create__missing_flag__answers_400_on_the_form(manager_client, playbook, staging):
    response = manager_client.post(
        reverse("upgrades:create"),
        {"upgrade_type": "feature_flag", "title": "x", "environment": staging.pk},
    )
    assert response.status_code == 400
    assert "names its feature flag" in response.content.decode()


def test_list__filters_and_paginates(manager_client, make_upgrade, settings):
    settings.PAGE_SIZE = 2
    for n in range(3):
        make_upgrade("minor", title=f"Minor {n}")
    make_upgrade("feature_flag", title="Flag one")
    response = manager_client.get(reverse("upgrades:list"), {"type": "minor"})
    html = response.content.decode()
    assert "Flag one" not in html and "Page 1 of 2" in html
    page_two = manager_client.get(reverse("upgrades:list"), {"type": "minor", "page": 2})
    assert "Minor 0" in page_two.content.decode()


def test_list__many_upgrades__keeps_a_fixed_number_of_queries(
    manager_client, make_upgrade, django_assert_max_num_queries
):
    for n in range(8):
        make_upgrade("minor", title=f"Minor {n}")
    with django_assert_max_num_queries(8):
        assert manager_client.get(reverse("upgrades:list")).status_code == 200


def test_detail__big_checklist__keeps_a_fixed_number_of_queries(
    manager_client, make_upgrade, django_assert_max_num_queries
):
    upgrade = make_upgrade("major", version_to="2.0.0")
    for step in upgrade.steps.filter(phase__stage=PhaseStage.PRE)[:10]:
        manager_client.post(reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "complete"]))
    with django_assert_max_num_queries(24):
        assert manager_client.get(reverse("upgrades:detail", args=[upgrade.pk])).status_code == 200
