"""Issue 12, "only what is true, only to whom it concerns": each finding as a test.

Environments are shown on the status page or not (production yes, staging no by default); a
rollback or failure drafts an incident that a release manager publishes, edits or dismisses;
the indicator follows component health and published incidents; labels, figures, phase and
window say what is true in words."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from comms import selectors, services
from comms.models import Delivery, Message, StatusIncident, StatusMaintenance, Subscriber
from tests.comms._status_helpers import health, psync
from tests.conftest import drive
from upgrades import reactions
from upgrades import services as upgrade_services
from upgrades.models import Environment, EnvironmentKind, PhaseStage, StepStatus

pytestmark = pytest.mark.django_db

PUBLIC_URLS = [
    "/status/",
    "/status/api/v2/status.json",
    "/status/api/v2/summary.json",
    "/status/api/v2/components.json",
    "/status/api/v2/incidents.json",
    "/status/api/v2/incidents/unresolved.json",
    "/status/api/v2/scheduled-maintenances.json",
    "/status/api/v2/scheduled-maintenances/upcoming.json",
    "/status/api/v2/scheduled-maintenances/active.json",
    "/status/feed.atom",
    "/status/calendar.ics",
    "/status/history/",
]


@pytest.fixture
def production(db) -> Environment:
    return Environment.objects.create(
        name="Production", slug="production", kind=EnvironmentKind.PRODUCTION,
        base_url="http://127.0.0.1:9",
    )  # fmt: skip


def _everything_public(client) -> str:
    return "\n".join(client.get(url).content.decode() for url in PUBLIC_URLS)


# --- the setting -----------------------------------------------------------------------------


def test_environment_shown_on_status_page__by_kind_unless_set__production_yes_staging_no(db):
    staging = Environment(name="S", slug="s", kind=EnvironmentKind.STAGING)
    production = Environment(name="P", slug="p", kind=EnvironmentKind.PRODUCTION)
    assert (staging.shown_on_status_page, production.shown_on_status_page) == (False, True)
    staging.public_status, production.public_status = True, False
    assert (staging.shown_on_status_page, production.shown_on_status_page) == (True, False)


def test_staging_upgrade__whole_lifecycle__never_public_anywhere(
    client, make_upgrade, manager, staging, seeded
):
    # Given a staging upgrade (not shown by default) scheduled, started and rolled back
    Subscriber.objects.create(email="fan@example.com", confirmed_at=timezone.now())
    health("staging", "Staging", public=False, api="down")
    upgrade = make_upgrade("minor", title="Staging secret 1.5.0",
                           window_start=timezone.now() + timedelta(minutes=30))  # fmt: skip
    upgrade = drive(upgrade, manager, to="scheduled")
    services.status_reminders_send()
    upgrade = drive(upgrade, manager, to="in_progress")
    upgrade_services.status_move(upgrade=upgrade, transition="roll_back", by=manager,
                                 reason="broke checkout")  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)

    # Then nothing about it reaches the page, its JSON, feed, calendar, history or subscribers
    assert StatusMaintenance.objects.get(upgrade_id=upgrade.pk).is_public is False
    assert not StatusIncident.objects.exists()
    public = _everything_public(client)
    assert "Staging secret" not in public and "Staging" not in public
    assert not Delivery.objects.filter(recipient="fan@example.com").exists()
    assert selectors.status_json()["status"]["indicator"] == "none"  # staging's outage is its own


def test_environment_setting_changes__its_upgrades_follow_at_once(client, seeded):
    psync(1, key="eu", name="Europe", public=True, title="Visible upgrade")
    assert "Visible upgrade" in client.get("/status/").content.decode()
    # When the environment is no longer shown (the next health refresh carries the setting)
    health("eu", "Europe", public=False)
    assert "Visible upgrade" not in _everything_public(client)


# --- incidents: drafted, never published by themselves ---------------------------------------


def test_production_rollback__drafts_an_incident__nothing_public_and_indicator_stays(
    client, make_upgrade, manager, production, seeded
):
    # Given healthy production services and a security patch that is rolled back
    health("production", "Production", public=True)
    upgrade = drive(make_upgrade("emergency", environment=production,
                                 title="CVE-2026-1234 patch"), manager, to="in_progress")  # fmt: skip
    upgrade_services.status_move(upgrade=upgrade, transition="roll_back", by=manager,
                                 reason="the patch broke logins")  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)

    # Then a draft waits for a release manager, with a proposed impact and discreet words
    incident = StatusIncident.objects.get(maintenance__upgrade_id=upgrade.pk)
    assert incident.is_draft and incident.impact == "none" and incident.status == "monitoring"
    for text in (incident.name, incident.body):
        assert "CVE" not in text and "patch" not in text and "logins" not in text
    assert "Status:" in incident.body and "Issues:" in incident.body
    assert "Next steps:" in incident.body
    # And the public sees no incident, no "failed", and an operational page
    page = client.get("/status/").content.decode()
    assert "All Systems Operational" in page and incident.name not in page
    assert "Partial System Outage" not in page and "failed" not in page.lower()
    assert selectors.summary_json()["incidents"] == []


def test_failed_upgrade__window_reads_ended__never_completed_failed(
    client, make_upgrade, manager, production, seeded
):
    upgrade = drive(make_upgrade("minor", environment=production, title="Mycelia 1.5.0"), manager,
                    to="in_progress")  # fmt: skip
    upgrade_services.upgrade_act(upgrade=upgrade, action="mark_failed", by=manager,
                                 reason="the deploy hook broke")  # fmt: skip
    reactions.events_react(upgrade_id=upgrade.pk)

    html = client.get("/status/").content.decode()
    card = html[html.index(f'id="upgrade-{upgrade.pk}"') :][:800]
    assert ">Ended<" in card and "Completed" not in card and "failed" not in card.lower()
    assert "The maintenance has ended." in html
    assert StatusIncident.objects.get(maintenance__upgrade_id=upgrade.pk).status == "investigating"


def test_incident_draft__impact_proposed_from_component_health(seeded):
    health("production", "Production", public=True, api="degraded", redemption="down")
    psync(1, status="in_progress")
    psync(1, status="failed")
    incident = services.status_incident_draft(upgrade_id=1, lifecycle="failed")
    assert incident.impact == "critical"  # a major outage among the services
    assert "Some services are affected" in incident.body
    # Drafting again returns the same draft
    assert services.status_incident_draft(upgrade_id=1, lifecycle="failed").pk == incident.pk


def test_incident__published_then_resolved__indicator_follows_it(client, manager, seeded):
    health("production", "Production", public=True)
    psync(1, status="in_progress")
    psync(1, status="rolled_back")
    incident = services.status_incident_draft(upgrade_id=1, lifecycle="rolled_back")

    services.status_incident_publish(incident_id=incident.pk, name="Logins were slow",
                                     body="Status: restored.", impact="major",
                                     status="identified", by=manager)  # fmt: skip
    data = client.get("/status/api/v2/status.json").json()
    assert data["status"] == {"indicator": "major", "description": "Partial System Outage"}
    assert "Logins were slow" in client.get("/status/").content.decode()

    services.status_incident_post(incident_id=incident.pk, status="resolved", body="", by=manager)
    data = client.get("/status/api/v2/status.json").json()
    assert data["status"] == {"indicator": "none", "description": "All Systems Operational"}


def test_incident__dismissed__never_public_and_reason_kept(client, manager, seeded):
    psync(1, status="in_progress")
    psync(1, status="failed")
    incident = services.status_incident_draft(upgrade_id=1, lifecycle="failed")
    with pytest.raises(services.InvalidInput, match="reason"):
        services.status_incident_dismiss(incident_id=incident.pk, reason="  ", by=manager)
    services.status_incident_dismiss(incident_id=incident.pk, reason="No user noticed", by=manager)
    incident.refresh_from_db()
    assert incident.is_dismissed and incident.dismiss_reason == "No user noticed"
    assert incident.name not in _everything_public(client)
    with pytest.raises(services.Conflict):
        services.status_incident_publish(incident_id=incident.pk, name="x", body="y",
                                         impact="minor", status="identified", by=manager)  # fmt: skip


def test_indicator__follows_shown_components_only(seeded):
    health("production", "Production", public=True, api="partial")
    health("staging", "Staging", public=False, api="down", redemption="down")
    assert selectors.status_json()["status"] == {
        "indicator": "major", "description": "Partial System Outage",
    }  # fmt: skip
    assert {c["name"] for c in selectors.components_json()["components"]} == {
        "Production · api", "Production · redemption",
    }  # fmt: skip


# --- the incidents pages: stakeholders read, release managers act ----------------------------


def _draft() -> StatusIncident:
    psync(1, status="in_progress")
    psync(1, status="rolled_back")
    return services.status_incident_draft(upgrade_id=1, lifecycle="rolled_back")


@pytest.mark.parametrize(("who", "read", "act"), [
    ("manager", 200, 302), ("stakeholder", 200, 403), ("outsider", 403, 403), (None, 302, 302),
])  # fmt: skip
def test_incident_pages__each_role__read_and_act_as_allowed(request, login, seeded, who, read, act):
    incident = _draft()
    client = login(request.getfixturevalue(who)) if who else request.getfixturevalue("client")
    assert client.get("/comms/incidents/").status_code == read
    assert client.get(f"/comms/incidents/{incident.pk}/").status_code == read
    response = client.post(f"/comms/incidents/{incident.pk}/publish", {
        "action": "publish", "name": "Short delay", "body": "Status: fine.", "impact": "minor",
        "status": "monitoring",
    })  # fmt: skip
    assert response.status_code == act
    incident.refresh_from_db()
    assert incident.is_published == (who == "manager")


def test_incident_publish_form__bad_impact__400_names_the_field_and_keeps_the_words(
    manager_client, seeded
):
    incident = _draft()
    response = manager_client.post(f"/comms/incidents/{incident.pk}/publish", {
        "action": "publish", "name": "Short delay", "body": "My own words", "impact": "huge",
        "status": "monitoring",
    })  # fmt: skip
    assert response.status_code == 400
    html = response.content.decode()
    assert "impact:" in html and "My own words" in html
    incident.refresh_from_db()
    assert incident.is_draft


# --- words and figures -----------------------------------------------------------------------


def test_status_page__labels_in_words_and_figures_formatted(client, seeded):
    health("production", "Production", public=True, redemption="degraded")
    psync(1, status="in_progress", key="eu", name="Europe")
    health("eu", "Europe", public=True)
    html = client.get("/status/").content.decode()
    assert "Degraded performance" in html and "Under maintenance" in html
    assert "Degradedperformance" not in html and "Undermaintenance" not in html
    assert "8.2%" in html and "99.95%" in html and "120 ms" in html
    assert "0.082" not in html and "0.9995" not in html


def test_started_window__says_when_it_started_not_from_now(client, seeded):
    # Given a window planned to start in two hours, started early
    psync(1, status="scheduled")
    psync(1, status="in_progress", phase_title="Upgrade Process")
    html = client.get("/status/").content.decode()
    card = html[html.index('id="upgrade-1"') :][:1500]
    started = card[card.index('data-role="started"') :].split("</dd>")[0]
    assert "ago" in started or "now" in started
    assert "from now" not in started


def test_status_sync__verifying_with_an_optional_pre_step_open__phase_is_the_current_one(
    make_upgrade, manager, production, seeded
):
    # Given an upgrade being monitored while an optional pre-upgrade step was left open
    upgrade = make_upgrade("minor", environment=production)
    optional = upgrade.steps.filter(phase__stage=PhaseStage.PRE, required=False).first()
    upgrade = drive(upgrade, manager, to="monitoring")
    assert optional is None or upgrade.steps.get(pk=optional.pk).status == StepStatus.OPEN
    m = StatusMaintenance.objects.get(upgrade_id=upgrade.pk)
    post_phases = set(upgrade.phases.filter(stage=PhaseStage.POST).values_list("title", flat=True))
    assert m.status == "verifying" and m.phase_title in post_phases


def test_subscriber_notices__staging_window_moves_starts_ends__none_sent(seeded):
    Subscriber.objects.create(email="fan@example.com", confirmed_at=timezone.now())
    now = timezone.now()
    kw = {"key": "staging", "name": "Staging", "public": False}
    psync(1, **kw)
    psync(1, window_start=now + timedelta(days=1), window_end=now + timedelta(days=1, hours=1),
          **kw)  # fmt: skip
    psync(1, status="in_progress", **kw)
    psync(1, status="completed", **kw)
    past = now - timedelta(minutes=1)
    psync(2, window_start=past - timedelta(hours=1), window_end=past, **kw)
    services.status_windows_check()
    assert not Message.objects.filter(template_key__startswith="window_").exists()
