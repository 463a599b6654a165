"""Issue 12, "calendar": an iCalendar feed of scheduled windows (shown environments publicly,
every environment for signed-in people at a separate URL), and the reminder to subscribers an
hour before a window, sent once per window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from comms import services
from comms.models import Delivery, Message, StatusMaintenance, Subscriber
from comms.views.status import calendar_personal_url
from tests.comms._status_helpers import psync

pytestmark = pytest.mark.django_db


def _events(ics: str) -> list[str]:
    unfolded = ics.replace("\r\n ", "")
    return [line for line in unfolded.split("\r\n") if line.startswith("SUMMARY:")]


def _two_environments() -> None:
    psync(1, title="Public window, with a comma")
    psync(2, key="staging", name="Staging", public=False, title="Staging window")
    psync(3, status="draft", title="Draft window")


def test_public_calendar__shown_environments_only__valid_icalendar(client, seeded):
    _two_environments()
    response = client.get("/status/calendar.ics")
    ics = response.content.decode()
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert ics.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and ics.endswith(
        "END:VCALENDAR\r\n"
    )
    assert _events(ics) == ["SUMMARY:Maintenance: Public window\\, with a comma (Production)"]
    assert all(len(line.encode()) <= 75 for line in ics.split("\r\n"))
    assert "DTSTART:" in ics and "UID:maintenance-" in ics


@pytest.mark.parametrize(("who", "expected"), [
    ("manager", 200), ("stakeholder", 200), ("outsider", 403), (None, 302),
])  # fmt: skip
def test_all_environments_calendar__signed_in_viewers_only(request, login, seeded, who, expected):
    _two_environments()
    client = login(request.getfixturevalue(who)) if who else request.getfixturevalue("client")
    response = client.get("/comms/calendar.ics")
    assert response.status_code == expected
    if expected == 200:
        assert len(_events(response.content.decode())) == 2  # drafts aside, staging included
        assert response["Cache-Control"] == "private, no-cache"


def test_personal_calendar_link__works_without_a_session__wrong_or_stale_token_404(
    client, seeded, stakeholder, outsider
):
    _two_environments()
    url = calendar_personal_url(stakeholder)
    assert len(_events(client.get(url).content.decode())) == 2
    assert client.get(url.replace(url.split("/")[-1], "0" * 32 + ".ics")).status_code == 404
    assert client.get(calendar_personal_url(outsider)).status_code == 403
    stakeholder.set_password("a new one")
    stakeholder.save()
    assert client.get(url).status_code == 404  # a password change revokes old links


def test_reminder__an_hour_before__sent_once_per_window_and_again_after_a_move(seeded):
    Subscriber.objects.create(email="fan@example.com", confirmed_at=timezone.now())
    now = timezone.now()
    psync(1, window_start=now + timedelta(minutes=50), window_end=now + timedelta(minutes=90))
    psync(2, window_start=now + timedelta(hours=3), window_end=now + timedelta(hours=4))
    psync(3, key="staging", name="Staging", public=False,
          window_start=now + timedelta(minutes=30), window_end=now + timedelta(hours=1))  # fmt: skip

    assert services.status_reminders_send() == 1
    assert services.status_reminders_send() == 0  # claimed: never twice
    reminder = Message.objects.get(template_key="window_reminder")
    assert reminder.upgrade_id == 1 and "about an hour" in reminder.subject
    assert Delivery.objects.filter(message=reminder, recipient="fan@example.com").exists()

    # When the window moves, the new time gets its own reminder
    psync(1, window_start=now + timedelta(minutes=55), window_end=now + timedelta(minutes=95))
    assert services.status_reminders_send() == 1
    assert Message.objects.filter(template_key="window_reminder").count() == 2


def test_reminder__claimed_by_another_scheduler_first__not_sent_again(seeded):
    now = timezone.now()
    m = psync(1, window_start=now + timedelta(minutes=30), window_end=now + timedelta(hours=1))
    # Another scheduler's conditional update got there first
    StatusMaintenance.objects.filter(pk=m.pk).update(reminder_sent_at=now)
    assert services.status_reminders_send() == 0
    assert not Message.objects.filter(template_key="window_reminder").exists()
