"""The monitoring region's poll: it carries the fingerprint of what the page showed, and when
the upgrade moved meanwhile (the guard rolled a flag back, someone ended the window) the
header, the actions and the timeline come along out of band. The browser walk-through with the
real guard is tests/browser/test_monitoring_day.py."""

from __future__ import annotations

import re
from html import unescape

from tests.conftest import drive
from upgrades import services
from upgrades.models import MonitoringWindow


def _poll_url(html: str) -> str:
    found = re.search(r'id="monitoring"[^>]*hx-get="([^"]+)"', html)
    assert found, "the open window's region polls"
    return unescape(found.group(1))


def test_monitoring_poll__nothing_moved__region_alone_with_the_same_fingerprint(
    make_upgrade, manager, manager_client
):
    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    url = _poll_url(manager_client.get(upgrade.get_absolute_url()).content.decode())
    assert "state=" in url

    poll = manager_client.get(url).content.decode()

    assert "hx-swap-oob" not in poll
    assert _poll_url(poll) == url


def test_monitoring_poll__window_ended_meanwhile__header_actions_timeline_out_of_band(
    make_upgrade, manager, manager_client
):
    # Given the page was drawn while the window was open
    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    url = _poll_url(manager_client.get(upgrade.get_absolute_url()).content.decode())

    # When someone else ends the window before the next poll
    services.upgrade_act(upgrade=upgrade, action="end_monitoring", by=manager, reason="stable")
    assert not MonitoringWindow.objects.get(upgrade=upgrade).is_open
    poll = manager_client.get(url).content.decode()

    # Then the poll stops (the region comes without its trigger) and brings what changed
    assert 'hx-trigger="every 10s"' not in poll
    assert re.search(r'id="lifecycle"[^>]*hx-swap-oob="true"', poll)
    assert re.search(r'id="upgrade-header"[^>]*hx-swap-oob="true"', poll)
    assert "Monitoring window ended early: stable" in poll  # the timeline
    assert 'id="act-end_monitoring"' not in poll  # the actions as they are now


def test_monitoring_poll__stakeholder__same_answer_without_actions(
    make_upgrade, manager, stakeholder_client
):
    upgrade = drive(make_upgrade("minor"), manager, to="monitoring")
    url = _poll_url(stakeholder_client.get(upgrade.get_absolute_url()).content.decode())
    services.upgrade_act(upgrade=upgrade, action="end_monitoring", by=manager, reason="stable")

    poll = stakeholder_client.get(url)

    assert poll.status_code == 200
    assert re.search(r'id="upgrade-header"[^>]*hx-swap-oob="true"', poll.content.decode())
    assert 'id="act-complete"' not in poll.content.decode()
