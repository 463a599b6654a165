"""Finding 6: an upgrade can be edited until its deployment starts, each change on the
timeline; versions, flags, windows and text are checked the same way on the new-upgrade form
and the edit page, the refusal on the field that is wrong (400), what was typed kept. And an
ended upgrade is tried again as a new draft, linked both ways."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from tests.conftest import _flag_exists, drive
from upgrades import services
from upgrades.forms import UpgradeCreateForm
from upgrades.models import EventKind, Upgrade, UpgradeStatus

BAD_INPUT = [
    # (case, upgrade type, what is typed, the field refused, words of the refusal)
    ("minor going down", "minor", {"version_from": "1.5.0", "version_to": "1.4.0"},
     "version_to", "1.5.0 → 1.4.0 does not go up"),
    ("major keeping the major number", "major", {"version_from": "1.4.2", "version_to": "1.4.3"},
     "version_to", "1.4.2 → 1.4.3 keeps the major number"),
    ("minor changing the major number", "minor",
     {"version_from": "1.4.2", "version_to": "2.0.0"}, "version_to", "changes the major number"),
    ("banana as the new version", "minor", {"version_from": "1.4.2", "version_to": "banana"},
     "version_to", "“banana” is not a version"),
    ("banana as the old version", "minor", {"version_from": "banana", "version_to": "1.5.0"},
     "version_from", "“banana” is not a version"),
    ("a flag that does not exist", "feature_flag", {"flag_key": "no-such-flag"},
     "flag_key", "There is no feature flag “no-such-flag”"),
    ("window of 2^63 minutes", "minor", {"window_start": "2026-12-01T10:00",
                                         "window_minutes": str(2**63)},
     "window_minutes", "between 1 minute and 14 days"),
    ("window in the year 9999", "minor", {"window_start": "9999-12-31T23:00"},
     "window_start", "between the years 2000 and 2100"),
    ("a title that did not arrive as UTF-8", "minor", {"title": "Search \ufffd\ufffd"},
     "title", "UTF-8"),
    ("a control character in the title", "minor", {"title": "Search\x1b[31m"},
     "title", "control character"),
]  # fmt: skip
IDS = [case[0] for case in BAD_INPUT]


def _create_post(upgrade_type: str, staging, **typed) -> dict:
    data = {"upgrade_type": upgrade_type, "title": "Search upgrade", "environment": staging.pk}
    if upgrade_type == "feature_flag":
        data["flag_key"] = "new-checkout"
    elif upgrade_type == "major":
        data.update(version_from="1.4.2", version_to="2.0.0")
    else:
        data.update(version_from="1.4.2", version_to="1.5.0")
    data.update(typed)
    return data


def _edit_post(upgrade: Upgrade, **typed) -> dict:
    data = {
        "title": upgrade.title,
        "description": upgrade.description,
        "environment": upgrade.environment_id,
        "owner": upgrade.owner_id,
        "window_start": "",
        "window_minutes": "",
    }
    if upgrade.upgrade_type == "feature_flag":
        data["flag_key"] = upgrade.flag_key
    else:
        data.update(version_from=upgrade.version_from, version_to=upgrade.version_to)
    data.update(typed)
    return data


# --- the new-upgrade form ------------------------------------------------------------------


@pytest.mark.parametrize(("case", "upgrade_type", "typed", "field", "words"), BAD_INPUT, ids=IDS)
def test_create__bad_input_of_finding_6__400_on_the_field_typed_text_kept_nothing_saved(
    manager_client, playbook, staging, manager, case, upgrade_type, typed, field, words
):
    _flag_exists("new-checkout", staging, manager)

    response = manager_client.post(
        reverse("upgrades:create"), _create_post(upgrade_type, staging, **typed)
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert words in " ".join(errors.get(field, [])), errors
    html = response.content.decode()
    for name, value in typed.items():
        if name != "title":
            assert f'value="{value}"' in html, name
    assert not Upgrade.objects.exists()


def test_create__flag_upgrade_form__offers_the_existing_flags(
    manager_client, playbook, staging, manager
):
    _flag_exists("new-checkout", staging, manager)

    html = manager_client.get(reverse("upgrades:create")).content.decode()

    assert 'list="flag-keys"' in html
    assert '<datalist id="flag-keys"><option value="new-checkout">' in html


def test_create__lone_surrogate_in_the_title__refused_on_the_field(staging):
    form = UpgradeCreateForm(_create_post("minor", staging, title="Search \udcff"))

    assert not form.is_valid()
    assert "lone surrogate" in form.errors["title"][0]


def test_create__body_not_utf8__400_naming_the_title_never_500(manager_client, playbook, staging):
    body = (
        f"upgrade_type=minor&title=Search+%ED%A0%80&environment={staging.pk}"
        "&version_from=1.4.2&version_to=1.5.0"
    )

    response = manager_client.post(
        reverse("upgrades:create"), body, content_type="application/x-www-form-urlencoded"
    )

    assert response.status_code == 400
    assert "UTF-8" in response.context["form"].errors["title"][0]
    assert not Upgrade.objects.exists()


def test_create__valid_minor__created(manager_client, playbook, staging):
    response = manager_client.post(
        reverse("upgrades:create"),
        _create_post("minor", staging, window_start="2026-12-01T10:00", window_minutes="90"),
    )

    assert response.status_code == 302
    upgrade = Upgrade.objects.get()
    assert (upgrade.version_from, upgrade.version_to, upgrade.window_minutes) == (
        "1.4.2",
        "1.5.0",
        90,
    )


# --- the edit page -------------------------------------------------------------------------


def test_edit_page__each_role__managers_edit_others_refused(
    make_upgrade, client, manager, stakeholder, outsider
):
    upgrade = make_upgrade("minor", title="Search 1.5")
    url = reverse("upgrades:edit", args=[upgrade.pk])

    assert client.get(url).status_code == 302  # to the sign-in page
    client.force_login(manager)
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="Search 1.5"' in html and 'value="1.4.2"' in html and "Owner" in html
    for user in (stakeholder, outsider):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, _edit_post(upgrade, title="Hacked")).status_code == 403
    upgrade.refresh_from_db()
    assert upgrade.title == "Search 1.5"


def test_edit__draft_without_a_window__window_set_then_schedule_allowed(
    make_upgrade, manager, manager_client
):
    # Given the draft of finding 6: "Set a maintenance window start before scheduling"
    upgrade = make_upgrade("minor", title="Search 1.5")
    assert not services.upgrade_verdicts(upgrade=upgrade, by=manager)["schedule"].allowed

    # When the manager sets the window (and a few more things) on the edit page
    response = manager_client.post(
        reverse("upgrades:edit", args=[upgrade.pk]),
        _edit_post(
            upgrade, title="Search 1.5.1", description="Faster search", version_to="1.5.1",
            window_start="2026-12-01T10:00", window_minutes="45",
        ),
    )  # fmt: skip

    # Then each change is on the timeline, from -> to, and scheduling is allowed
    assert response.status_code == 302
    upgrade.refresh_from_db()
    assert (upgrade.title, upgrade.version_to, upgrade.window_minutes) == (
        "Search 1.5.1",
        "1.5.1",
        45,
    )
    event = upgrade.events.filter(kind=EventKind.UPDATED).get()
    assert event.actor == manager
    for line in (
        "title: Search 1.5 → Search 1.5.1",
        "description: — → Faster search",
        "version to: 1.5.0 → 1.5.1",
        "window start: — → 2026-12-01 10:00",
        "window minutes: — → 45",
    ):
        assert line in event.message, event.message
    assert "owner" not in event.message
    assert services.upgrade_verdicts(upgrade=upgrade, by=manager)["schedule"].allowed


def test_edit__owner_handed_to_another_release_manager__recorded(
    make_upgrade, manager, second_manager, manager_client
):
    upgrade = make_upgrade("minor")

    response = manager_client.post(
        reverse("upgrades:edit", args=[upgrade.pk]), _edit_post(upgrade, owner=second_manager.pk)
    )

    assert response.status_code == 302
    upgrade.refresh_from_db()
    assert upgrade.owner == second_manager
    assert "owner: alice → dave" in upgrade.events.get(kind=EventKind.UPDATED).message


def test_edit__owner_not_a_release_manager__400_on_owner(
    make_upgrade, manager, stakeholder, manager_client
):
    upgrade = make_upgrade("minor")

    response = manager_client.post(
        reverse("upgrades:edit", args=[upgrade.pk]), _edit_post(upgrade, owner=stakeholder.pk)
    )

    assert response.status_code == 400
    assert "owner" in response.context["form"].errors
    upgrade.refresh_from_db()
    assert upgrade.owner == manager


@pytest.mark.parametrize(("case", "upgrade_type", "typed", "field", "words"), BAD_INPUT, ids=IDS)
def test_edit__bad_input_of_finding_6__400_on_the_field_typed_text_kept_nothing_saved(
    make_upgrade, manager_client, case, upgrade_type, typed, field, words
):
    upgrade = make_upgrade(upgrade_type, title="Search upgrade")
    before = {
        name: getattr(upgrade, name)
        for name in ("title", "version_from", "version_to", "flag_key", "window_start")
    }

    response = manager_client.post(
        reverse("upgrades:edit", args=[upgrade.pk]), _edit_post(upgrade, **typed)
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert words in " ".join(errors.get(field, [])), errors
    html = response.content.decode()
    for name, value in typed.items():
        if name != "title":
            assert f'value="{value}"' in html, name
    upgrade.refresh_from_db()
    assert {name: getattr(upgrade, name) for name in before} == before
    assert not upgrade.events.filter(kind=EventKind.UPDATED).exists()


def test_edit__lone_surrogate_in_the_title__refused_on_the_field(make_upgrade):
    from upgrades.forms import UpgradeEditForm

    upgrade = make_upgrade("minor")
    form = UpgradeEditForm(_edit_post(upgrade, title="Search \ud800"), upgrade=upgrade)

    assert not form.is_valid()
    assert "lone surrogate" in form.errors["title"][0]


def test_edit__flag_upgrade__versions_left_out_existing_flags_offered(make_upgrade, manager_client):
    upgrade = make_upgrade("feature_flag")

    html = manager_client.get(reverse("upgrades:edit", args=[upgrade.pk])).content.decode()

    assert 'name="version_to"' not in html and 'name="flag_key"' in html
    assert '<option value="new-checkout">' in html


def test_edit__deployment_started__refused_409_with_the_tables_sentence(
    make_upgrade, manager, manager_client
):
    upgrade = drive(make_upgrade("minor", title="Search 1.5"), manager, to="in_progress")
    url = reverse("upgrades:edit", args=[upgrade.pk])

    page = manager_client.get(url)
    post = manager_client.post(url, _edit_post(upgrade, title="Renamed"))

    for response in (page, post):
        assert response.status_code == 409
        assert "Details can change until the deployment starts." in response.content.decode()
        assert 'name="title"' not in response.content.decode()
    upgrade.refresh_from_db()
    assert upgrade.title == "Search 1.5"
    assert not upgrade.events.filter(kind=EventKind.UPDATED).exists()


def test_edit__scheduled_upgrade__still_editable(make_upgrade, manager, manager_client):
    upgrade = make_upgrade("minor")
    upgrade = drive(upgrade, manager, to="scheduled")

    response = manager_client.post(
        reverse("upgrades:edit", args=[upgrade.pk]),
        _edit_post(upgrade, title="Moved", window_start="2026-12-02T10:00"),
    )

    assert response.status_code == 302
    upgrade.refresh_from_db()
    assert upgrade.title == "Moved" and upgrade.status == UpgradeStatus.SCHEDULED


# --- trying again --------------------------------------------------------------------------


def test_clone__cancelled_upgrade__new_draft_linked_both_ways(
    make_upgrade, manager, manager_client
):
    old = make_upgrade("minor", title="Search 1.5")
    services.upgrade_act(upgrade=old, action="cancel", by=manager, reason="wrong week")

    response = manager_client.post(reverse("upgrades:clone", args=[old.pk]))

    new = Upgrade.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302 and response["Location"] == new.get_absolute_url()
    assert new.status == UpgradeStatus.DRAFT and new.cloned_from == old
    assert (new.title, new.version_from, new.version_to) == ("Search 1.5", "1.4.2", "1.5.0")
    back = render_to_string("upgrades/_clone_links.html", {"upgrade": new})
    assert f'A new try of <a href="/upgrades/{old.pk}/">#{old.pk} “Search 1.5”</a>' in back
    assert "(cancelled)" in back
    tries = render_to_string("upgrades/_clone_links.html", {"upgrade": old})
    assert "Tried again as:" in tries and f"#{new.pk} “Search 1.5”" in tries and "Draft" in tries


def test_clone__draft_upgrade__refused_409_nothing_created(make_upgrade, manager_client):
    draft = make_upgrade("minor")

    response = manager_client.post(reverse("upgrades:clone", args=[draft.pk]))

    assert response.status_code == 409
    assert "Only an ended upgrade is tried again" in response.content.decode()
    assert Upgrade.objects.count() == 1


def test_clone__stakeholder_or_get__refused(make_upgrade, manager, stakeholder_client):
    old = make_upgrade("minor")
    services.upgrade_act(upgrade=old, action="cancel", by=manager, reason="wrong week")
    url = reverse("upgrades:clone", args=[old.pk])

    assert stakeholder_client.post(url).status_code == 403
    assert Upgrade.objects.count() == 1


def test_clone_links__ended_upgrade_with_clone_allowed__try_again_button(make_upgrade):
    upgrade = make_upgrade("minor")

    html = render_to_string(
        "upgrades/_clone_links.html", {"upgrade": upgrade, "clone_allowed": True}
    )

    assert f'action="/upgrades/{upgrade.pk}/clone/"' in html
    assert "Try again as a new draft" in html
    assert "Try again" not in render_to_string("upgrades/_clone_links.html", {"upgrade": upgrade})
