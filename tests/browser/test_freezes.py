"""On a phone (390 px wide, real Chromium): a release manager declares a freeze and lifts it,
creates an upgrade and edits it, and no page scrolls sideways."""

from __future__ import annotations

import pytest

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD
from upgrades.models import DeploymentFreeze, Upgrade

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


# The text that sticks out past the right edge, to say what is too wide when something is.
OVERFLOWING_TEXT = """() => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const range = document.createRange();
        range.selectNodeContents(node);
        if (range.getBoundingClientRect().right > innerWidth + 1) {
            out.push(node.parentElement.tagName + ": " + node.textContent.trim().slice(0, 40));
        }
    }
    return out;
}"""


def assert_fits_the_phone(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], (page.url, width, page.evaluate(OVERFLOWING_TEXT))


def _phone(new_page, manager):
    page = new_page()
    page.set_viewport_size(PHONE)
    sign_in(page, manager.username, PASSWORD)
    return page


def test_freezes_page__phone__declare_then_lift_without_sideways_scrolling(
    new_page, manager, staging
):
    page = _phone(new_page, manager)

    # Given the freezes page with nothing frozen
    page.goto("/upgrades/freezes/")
    assert "No freeze is in effect" in page.inner_text("#in-effect")
    assert_fits_the_phone(page)

    # When a freeze is declared through the form, starting in the past hour
    page.fill("input[name=name]", "Releasetrainstopforthequarterlyauditofeverythingandmore")
    page.fill("textarea[name=reason]", "Auditors are reading the production logs.")
    page.check(f"input[name=environments][value='{staging.pk}']")
    page.evaluate(
        """() => {
        const pad = (n) => String(n).padStart(2, "0");
        const local = (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-` +
            `${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
        const now = Date.now();
        document.querySelector("input[name=starts_at]").value = local(new Date(now - 3600e3));
        document.querySelector("input[name=ends_at]").value = local(new Date(now + 3 * 3600e3));
    }"""
    )
    page.get_by_role("button", name="Declare freeze").click()

    # Then it is in effect, named on the page, and the page still fits the phone
    page.wait_for_selector("#in-effect .freeze-row")
    freeze = DeploymentFreeze.objects.get()
    assert "Releasetrainstop" in page.inner_text("#in-effect")
    assert_fits_the_phone(page)

    # When it is lifted: open "Lift now…", then the button that says what it does
    row = page.locator(f"#freeze-{freeze.pk}")
    row.locator("summary", has_text="Lift now").click()
    row.get_by_role("button", name="Lift").click()

    # Then it is among the past freezes, with who lifted it in its history
    page.wait_for_selector(f"#past #freeze-{freeze.pk}")
    assert "No freeze is in effect" in page.inner_text("#in-effect")
    freeze.refresh_from_db()
    assert freeze.ended_at is not None
    assert freeze.events.filter(kind="lifted", actor=manager).exists()
    assert_fits_the_phone(page)


def test_create_and_edit__phone__form_errors_on_the_field_and_no_sideways_scrolling(
    new_page, manager, staging, playbook
):
    page = _phone(new_page, manager)

    # Given the new-upgrade form on a phone
    page.goto("/upgrades/new/")
    assert_fits_the_phone(page)

    # When a minor upgrade going down is submitted
    page.select_option("select[name=upgrade_type]", "minor")
    page.fill("input[name=title]", "Searchupgradewithaverylongunbrokentitle" * 3)
    page.fill("input[name=version_from]", "1.5.0")
    page.fill("input[name=version_to]", "1.4.0")
    page.get_by_role("button", name="Create upgrade from the playbook").click()

    # Then the refusal sits on the version field, what was typed is kept, nothing is created
    error = page.locator("label[for=id_version_to] .error")
    error.wait_for()
    assert "1.5.0 → 1.4.0 does not go up" in error.inner_text()
    assert page.input_value("input[name=version_from]") == "1.5.0"
    assert not Upgrade.objects.exists()
    assert_fits_the_phone(page)

    # When it is fixed and created, then edited
    page.fill("input[name=version_to]", "1.6.0")
    page.get_by_role("button", name="Create upgrade from the playbook").click()
    page.wait_for_url("**/upgrades/*/")
    upgrade = Upgrade.objects.get()
    page.goto(f"/upgrades/{upgrade.pk}/edit/")
    assert_fits_the_phone(page)
    page.fill("input[name=window_minutes]", "45")
    page.fill("input[name=window_start]", "2026-12-01T10:00")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"**/upgrades/{upgrade.pk}/")

    # Then the change is saved
    upgrade.refresh_from_db()
    assert upgrade.window_minutes == 45


def test_create__phone__window_typed_into_a_coming_freeze__notice_appears_before_submitting(
    new_page, manager, staging, playbook
):
    from datetime import timedelta

    from django.utils import timezone

    from upgrades.services import freeze_create

    starts = timezone.now().replace(second=0, microsecond=0) + timedelta(days=10)
    freeze_create(
        name="Year-end", reason="Books are closing.", environments=[staging], starts_at=starts,
        ends_at=starts + timedelta(days=2), weekly=False, by=manager,
    )  # fmt: skip
    page = _phone(new_page, manager)
    page.goto("/upgrades/new/")
    assert "falls in deployment freeze" not in page.inner_text("#freeze-notices")

    # When a window inside the freeze is typed (no submit)
    page.fill("input[name=window_start]", (starts + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))

    # Then the form says so, and still fits the phone
    page.wait_for_selector("#freeze-notices >> text=falls in deployment freeze “Year-end”")
    assert not Upgrade.objects.exists()
    assert_fits_the_phone(page)
