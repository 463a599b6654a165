"""Deployment freezes: a release manager declares and lifts them, every change on their
history; inside one, a non-emergency upgrade is refused with the freeze named and an
emergency goes ahead with a written reason; the dashboard and the new-upgrade form say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from upgrades import services
from upgrades.forms import FreezeForm
from upgrades.models import (
    DeploymentFreeze,
    EventKind,
    FreezeEvent,
    Upgrade,
    UpgradeStatus,
)

# A Friday afternoon; the clock of every test here stands still at it.
FRIDAY_3PM = datetime(2026, 5, 15, 15, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """The time the product reads (django.utils.timezone.now), set by the test."""
    now = [FRIDAY_3PM]
    monkeypatch.setattr(timezone, "now", lambda: now[0])
    return now


@pytest.fixture
def friday_freeze(clock, staging, manager) -> DeploymentFreeze:
    # Every week from Friday 12:00 to Monday 06:00, since the first of May
    return services.freeze_create(
        name="Friday afternoons",
        reason="Nobody wants to debug a release over the weekend.",
        environments=[staging],
        starts_at=datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        ends_at=datetime(2026, 5, 4, 6, 0, tzinfo=UTC),
        weekly=True,
        by=manager,
    )


def _freeze_post(staging, **overrides) -> dict:
    data = {
        "name": "Black Friday",
        "reason": "The biggest sales day of the year.",
        "environments": [staging.pk],
        "starts_at": "2026-11-27T00:00",
        "ends_at": "2026-11-30T06:00",
    }
    data.update(overrides)
    return data


# --- the lifecycle inside a freeze ---------------------------------------------------------


def test_start__minor_upgrade_in_a_friday_weekly_freeze__refused_naming_the_freeze(
    friday_freeze, make_upgrade, manager
):
    upgrade = make_upgrade("minor")

    with pytest.raises(services.Refused) as refused:
        services.upgrade_act(upgrade=upgrade, action="start", by=manager, reason="go")

    assert refused.value.status == 409
    assert "“Friday afternoons”" in refused.value.message
    assert "only an emergency upgrade may go ahead" in refused.value.message
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.DRAFT


def test_start__same_upgrade_on_a_tuesday__not_refused_by_the_weekly_freeze(
    friday_freeze, make_upgrade, manager, clock
):
    # Given the same weekly freeze, on a Tuesday, when nothing is frozen
    clock[0] = FRIDAY_3PM + timedelta(days=4)
    upgrade = make_upgrade("minor")

    verdict = services.upgrade_verdicts(upgrade=upgrade, by=manager)["start"]

    assert "freeze" not in verdict.why


def test_start__emergency_in_a_freeze_without_a_reason__refused_400(
    friday_freeze, make_upgrade, manager
):
    upgrade = make_upgrade("emergency")

    with pytest.raises(services.InvalidInput) as refused:
        services.upgrade_act(upgrade=upgrade, action="start", by=manager, reason="  ")

    assert refused.value.status == 400 and refused.value.field == "reason"
    upgrade.refresh_from_db()
    assert upgrade.status == UpgradeStatus.DRAFT


def test_start__emergency_in_a_freeze_with_a_written_reason__proceeds_and_records_why(
    friday_freeze, make_upgrade, manager
):
    upgrade = make_upgrade("emergency")

    acted = services.upgrade_act(
        upgrade=upgrade, action="start", by=manager, reason="CVE-2026-1234 is being exploited"
    )

    assert acted.upgrade.status == UpgradeStatus.IN_PROGRESS
    override = upgrade.events.get(kind=EventKind.GATE_OVERRIDDEN, from_value="freeze")
    assert "Friday afternoons" in override.message and "CVE-2026-1234" in override.message


def test_lift__freeze_lifted_on_the_page__the_start_goes_through(
    friday_freeze, make_upgrade, manager, manager_client
):
    upgrade = make_upgrade("minor")

    # When a release manager lifts the freeze with the button inside "Lift now"
    response = manager_client.post(
        reverse("upgrades:freeze_lift", args=[friday_freeze.pk]), {"confirm": "yes"}
    )

    # Then the start is no longer refused by it
    assert response.status_code == 302
    friday_freeze.refresh_from_db()
    assert friday_freeze.ended_at == FRIDAY_3PM
    verdict = services.upgrade_verdicts(upgrade=upgrade, by=manager)["start"]
    assert "freeze" not in verdict.why
    acted = services.upgrade_act(
        upgrade=upgrade, action="start", by=manager, override_reason="checks done by hand"
    )
    assert acted.upgrade.status == UpgradeStatus.IN_PROGRESS


# --- the freezes page ---------------------------------------------------------------------


def test_freezes_page__each_role__managers_declare_stakeholders_read_outsiders_refused(
    friday_freeze, client, manager, stakeholder, outsider
):
    url = reverse("upgrades:freezes")
    assert client.get(url).status_code == 302  # to the sign-in page

    client.force_login(manager)
    as_manager = client.get(url).content.decode()
    assert "Friday afternoons" in as_manager and "In effect" in as_manager
    assert "Declare a freeze" in as_manager and "Lift now" in as_manager

    client.force_login(stakeholder)
    as_stakeholder = client.get(url)
    assert as_stakeholder.status_code == 200
    html = as_stakeholder.content.decode()
    assert "Friday afternoons" in html
    assert "Declare a freeze" not in html and "Lift now" not in html
    assert client.post(reverse("upgrades:freeze_create"), {}).status_code == 403
    lift = reverse("upgrades:freeze_lift", args=[friday_freeze.pk])
    assert client.post(lift, {"confirm": "yes"}).status_code == 403

    client.force_login(outsider)
    assert client.get(url).status_code == 403
    assert client.post(lift, {"confirm": "yes"}).status_code == 403
    friday_freeze.refresh_from_db()
    assert friday_freeze.ended_at is None


def test_freeze_create__valid_form__declared_with_who_when_and_span_on_its_history(
    clock, staging, manager, manager_client
):
    response = manager_client.post(reverse("upgrades:freeze_create"), _freeze_post(staging))

    assert response.status_code == 302
    freeze = DeploymentFreeze.objects.get(name="Black Friday")
    assert list(freeze.environments.all()) == [staging] and not freeze.weekly
    event = freeze.events.get()
    assert (event.kind, event.actor, event.at) == ("created", manager, FRIDAY_3PM)
    assert (event.from_value, event.to_value) == ("", "2026-11-27 00:00 to 2026-11-30 06:00")
    page = manager_client.get(reverse("upgrades:freezes")).content.decode()
    assert (
        "Coming up" in page
        and "Black Friday" in page
        and "— → 2026-11-27 00:00 to 2026-11-30 06:00" in page
    )


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"environments": []}, "environments", "Choose the environments"),
        ({"name": "   "}, "name", "required"),
        ({"reason": ""}, "reason", "required"),
        ({"ends_at": "2026-11-26T00:00"}, "ends_at", "must end after it starts"),
        ({"starts_at": "9999-12-31T23:00"}, "starts_at", "between the years 2000 and 2100"),
        ({"ends_at": "not a date"}, "ends_at", "valid date"),
        (
            {"starts_at": "2026-05-01T12:00", "ends_at": "2026-05-09T12:00", "weekly": "on"},
            "ends_at",
            "less than a week",
        ),
        (
            {"starts_at": "2026-05-01T12:00", "ends_at": "2026-05-04T06:00"},
            "ends_at",
            "over already",
        ),
        ({"name": "x\x07y"}, "name", "control character"),
        ({"name": "Black \ufffd Friday"}, "name", "UTF-8"),
    ],
)
def test_freeze_create__bad_input__400_naming_the_field_and_nothing_saved(
    clock, staging, manager_client, overrides, field, words
):
    response = manager_client.post(
        reverse("upgrades:freeze_create"), _freeze_post(staging, **overrides)
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert words in " ".join(errors[field]), errors
    assert not DeploymentFreeze.objects.exists() and not FreezeEvent.objects.exists()


def test_freeze_form__lone_surrogate_in_the_reason__refused_on_the_field(staging):
    form = FreezeForm(_freeze_post(staging, reason="Sales \ud800 day"))

    assert not form.is_valid()
    assert "lone surrogate" in form.errors["reason"][0]


def test_freeze_create__body_not_utf8__400_naming_the_field_never_500(
    clock, staging, manager_client
):
    # A lone surrogate as a browser cannot send it: CESU-8 bytes in the urlencoded body
    body = (
        "name=Black+%ED%A0%80+Friday&reason=sales&starts_at=2026-11-27T00:00"
        f"&ends_at=2026-11-30T06:00&environments={staging.pk}"
    )
    response = manager_client.post(
        reverse("upgrades:freeze_create"), body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert "UTF-8" in response.context["form"].errors["name"][0]


def test_freeze_lift__without_the_confirmation__400_and_still_in_effect(
    friday_freeze, manager_client
):
    response = manager_client.post(reverse("upgrades:freeze_lift", args=[friday_freeze.pk]))

    assert response.status_code == 400
    assert "was not lifted" in response.content.decode()
    friday_freeze.refresh_from_db()
    assert friday_freeze.ended_at is None and friday_freeze.events.count() == 1


def test_freeze_lift__lifted_then_lifted_again__second_refused_409_history_from_to(
    friday_freeze, manager, manager_client
):
    url = reverse("upgrades:freeze_lift", args=[friday_freeze.pk])
    assert manager_client.post(url, {"confirm": "yes"}).status_code == 302

    again = manager_client.post(url, {"confirm": "yes"})

    assert again.status_code == 409
    assert "already lifted" in again.content.decode()
    lifted = friday_freeze.events.get(kind="lifted")
    assert lifted.actor == manager and lifted.at == FRIDAY_3PM
    assert lifted.from_value == "2026-05-01 12:00 to 2026-05-04 06:00, every week"
    assert lifted.to_value == "lifted 2026-05-15 15:00"
    page = manager_client.get(reverse("upgrades:freezes")).content.decode()
    assert "Lifted early by alice" in page and "Past freezes" in page


def test_freezes_page__many_past_freezes__paginated_with_fixed_queries(
    clock, staging, manager, manager_client, settings, django_assert_max_num_queries
):
    settings.PAGE_SIZE = 2
    for n in range(3):
        freeze = services.freeze_create(
            name=f"Old freeze {n}", reason="r", environments=[staging],
            starts_at=FRIDAY_3PM + timedelta(hours=n), ends_at=FRIDAY_3PM + timedelta(days=1),
            weekly=False, by=manager,
        )  # fmt: skip
        services.freeze_end(freeze=freeze, by=manager)

    with django_assert_max_num_queries(12):
        first = manager_client.get(reverse("upgrades:freezes")).content.decode()
    second = manager_client.get(reverse("upgrades:freezes"), {"page": 2}).content.decode()

    assert "Page 1 of 2" in first and "Old freeze 2" in first and "Old freeze 0" not in first
    assert "Old freeze 0" in second


# --- where freezes are shown ---------------------------------------------------------------


def test_dashboard__freeze_in_effect_and_next__shown_per_environment_with_fixed_queries(
    friday_freeze, clock, staging, manager, stakeholder_client, django_assert_max_num_queries
):
    services.freeze_create(
        name="Black Friday", reason="Sales", environments=[staging],
        starts_at=datetime(2026, 5, 18, 9, 0, tzinfo=UTC),
        ends_at=datetime(2026, 5, 18, 17, 0, tzinfo=UTC), weekly=False, by=manager,
    )  # fmt: skip

    with django_assert_max_num_queries(10):
        html = stakeholder_client.get(reverse("upgrades:dashboard")).content.decode()

    assert "Frozen now" in html and "“Friday afternoons” until" in html
    assert "Mon 18 May 06:00" in html  # the weekly span's end
    # The next freeze to begin is Black Friday on Monday 09:00, before next week's Friday
    assert "Next: “Black Friday” from" in html and "Mon 18 May 09:00" in html


def test_dashboard__no_freezes__says_so(stakeholder_client, staging):
    html = stakeholder_client.get(reverse("upgrades:dashboard")).content.decode()

    assert "No freeze in effect or planned." in html


def test_new_upgrade_form__freeze_in_effect__notice_on_the_form(
    friday_freeze, playbook, manager_client
):
    html = manager_client.get(reverse("upgrades:create")).content.decode()

    assert "Deployment freeze “Friday afternoons”" in html and "in effect until" in html
    assert "only an emergency upgrade may go ahead" in html


def test_new_upgrade_form__window_in_a_coming_freeze__notice_then_created_with_a_warning(
    clock, playbook, staging, manager, manager_client
):
    services.freeze_create(
        name="Black Friday", reason="Sales", environments=[staging],
        starts_at=datetime(2026, 11, 27, tzinfo=UTC), ends_at=datetime(2026, 11, 30, tzinfo=UTC),
        weekly=False, by=manager,
    )  # fmt: skip
    data = {
        "upgrade_type": "minor", "title": "Search 1.5", "environment": staging.pk,
        "version_from": "1.4.2", "version_to": "1.5.0", "window_start": "2026-11-28T10:00",
        "window_minutes": "60",
    }  # fmt: skip

    # When the form asks about the window as it is typed (HTMX, on change)
    notices = manager_client.get(reverse("upgrades:freeze_notices"), data, HTTP_HX_REQUEST="true")
    # and then creates it
    created = manager_client.post(reverse("upgrades:create"), data)
    next_page = manager_client.get(reverse("upgrades:dashboard")).content.decode()

    assert "The window falls in deployment freeze “Black Friday” on Staging" in (
        notices.content.decode()
    )
    assert "<html" not in notices.content.decode()
    assert created.status_code == 302
    assert Upgrade.objects.filter(title="Search 1.5").exists()
    assert "Its window falls in deployment freeze “Black Friday”" in next_page


def test_new_upgrade_form__window_outside_freezes__no_window_notice(
    clock, playbook, staging, manager, manager_client
):
    services.freeze_create(
        name="Black Friday", reason="Sales", environments=[staging],
        starts_at=datetime(2026, 11, 27, tzinfo=UTC), ends_at=datetime(2026, 11, 30, tzinfo=UTC),
        weekly=False, by=manager,
    )  # fmt: skip

    notices = manager_client.get(
        reverse("upgrades:freeze_notices"),
        {"environment": staging.pk, "window_start": "2026-11-30T10:00", "window_minutes": "60"},
    )

    assert "falls in deployment freeze" not in notices.content.decode()


def test_freeze_notice_partial__given_a_freeze__names_it_its_environments_and_reason(
    friday_freeze,
):
    from django.template.loader import render_to_string

    html = render_to_string("upgrades/_freeze_notice.html", {"freeze": friday_freeze})

    assert "Deployment freeze “Friday afternoons”" in html
    assert "every week from Friday 12:00 to Monday 06:00" in html and "Staging" in html
    assert "Nobody wants to debug" in html
    assert render_to_string("upgrades/_freeze_notice.html", {"freeze": None}).strip() == ""


@pytest.mark.parametrize(
    "query",
    [
        {"environment": "abc", "window_start": "9999-12-31T23:00", "window_minutes": str(2**63)},
        {"environment": "999999", "window_start": "2026-13-45T99:99"},
        {"window_start": "x" * 5000, "window_minutes": "-1"},
        {},
    ],
)
def test_freeze_notices__hostile_query__answers_200_with_the_general_notices(
    friday_freeze, manager_client, query
):
    response = manager_client.get(reverse("upgrades:freeze_notices"), query)

    assert response.status_code == 200
    html = response.content.decode()
    assert "Friday afternoons" in html and "falls in deployment freeze" not in html


def test_upgrade_freeze__in_effect_or_over_the_window__the_span_the_page_warns_of(
    friday_freeze, clock, make_upgrade, staging, manager
):
    from upgrades import selectors

    upgrade = make_upgrade("minor")
    # Friday 15:00: the weekly freeze is in effect, until Monday 06:00
    span = selectors.upgrade_freeze(upgrade)
    assert span.freeze == friday_freeze and span.active
    assert span.ends_at == datetime(2026, 5, 18, 6, 0, tzinfo=UTC)

    # On Tuesday, with the window on Friday afternoon: the coming span
    clock[0] = FRIDAY_3PM + timedelta(days=4)
    upgrade.window_start = datetime(2026, 5, 22, 13, 0, tzinfo=UTC)
    upgrade.save()
    span = selectors.upgrade_freeze(upgrade)
    assert span.freeze == friday_freeze and not span.active
    assert span.starts_at == datetime(2026, 5, 22, 12, 0, tzinfo=UTC)

    # On Tuesday, with the window on Wednesday: nothing to warn of
    upgrade.window_start = datetime(2026, 5, 20, 10, 0, tzinfo=UTC)
    upgrade.save()
    assert selectors.upgrade_freeze(upgrade) is None


def test_edit_page__freeze_in_effect__notice_shown(friday_freeze, make_upgrade, manager_client):
    upgrade = make_upgrade("minor")

    html = manager_client.get(reverse("upgrades:edit", args=[upgrade.pk])).content.decode()

    assert "Deployment freeze “Friday afternoons”" in html and "in effect until" in html
