"""The messages and channels pages on a phone (390 px wide) in real Chromium, under the
Content-Security-Policy: no sideways scrolling, no inline script or style refused; a manager
discards a draft with a reason and it stays, struck through."""

from __future__ import annotations

import pytest

from comms import services
from comms.models import Audience, AudienceKey, Channel, ChannelKind, Message, MessageStatus
from tests.browser.conftest import sign_in
from tests.comms.conftest import upgrade_context
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def _phone_page(new_page):
    page = new_page()
    page.set_viewport_size(PHONE)
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.add_init_script(WATCH)
    return page, refused


def _fits(page) -> int:
    return page.evaluate("document.scrollingElement.scrollWidth")


def test_messages_pages__phone_width__no_sideways_scrolling_and_no_policy_violation(
    new_page, make_upgrade, manager
):
    # Given a draft with a long unbroken subject going to a Slack channel with a long URL, a
    # message that reached no one, and a discarded draft
    services.comms_seed()
    internal = Audience.objects.get(key=AudienceKey.INTERNAL)
    Channel.objects.create(
        audience=internal, name="Release chat", kind=ChannelKind.SLACK,
        url="https://hooks.slack.com/services/T00000000/B00000000/" + "X" * 120,
    )  # fmt: skip
    upgrade = make_upgrade()
    context = upgrade_context(upgrade) | {"version_or_feature": "mycelia-" + "9" * 80}
    draft = services.message_draft_create(
        upgrade_id=upgrade.pk, template_key="progress", context=context, by=manager,
        environment_key="staging",
    )  # fmt: skip
    other = make_upgrade()
    unsent = services.message_draft_create(
        upgrade_id=other.pk, template_key="post_upgrade", context=upgrade_context(other),
        by=manager, environment_key="staging",
    )  # fmt: skip
    unsent.audiences.set(Audience.objects.filter(key=AudienceKey.USERS))
    services.message_send(message=unsent, by=manager)
    page, refused = _phone_page(new_page)
    sign_in(page, manager.username, PASSWORD)

    # When each page is opened at 390 px, then none is wider than the screen
    for path in (
        "/comms/messages/",
        draft.get_absolute_url(),
        unsent.get_absolute_url(),
        "/comms/channels/",
        "/comms/channels/new",
    ):
        page.goto(path)
        assert _fits(page) <= 390, f"{path} is {_fits(page)} px wide"
    assert page.evaluate("window.__csp") == [] and refused == []

    # When the manager discards the draft with a reason, on the phone
    page.goto(draft.get_absolute_url())
    page.get_by_text("Discard this draft…").click()
    page.fill("textarea[name=reason]", "Said on the release call instead")
    page.get_by_role("button", name="Discard draft").click()

    # Then the page says so, the subject is struck through, and nothing is sent
    page.wait_for_selector("#discarded")
    assert page.locator("h1 del").count() == 1
    assert "Said on the release call instead" in page.locator("#discarded").inner_text()
    assert _fits(page) <= 390
    draft.refresh_from_db()
    assert draft.status == MessageStatus.DISCARDED and not draft.deliveries.exists()
    page.goto("/comms/messages/")
    assert page.locator(f"#message-{draft.pk} del").count() == 1
    not_sent = page.locator(f"#message-{unsent.pk} [data-role=not-sent]").inner_text()
    assert not_sent.startswith("Not sent: No channel for this audience")
    assert _fits(page) <= 390
    assert page.evaluate("window.__csp") == [] and refused == []
    assert Message.objects.filter(status=MessageStatus.SENT).count() == 0
