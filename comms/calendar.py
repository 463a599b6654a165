"""Maintenance windows as an iCalendar feed (RFC 5545), for people to subscribe to in their
calendar app. Written by hand: a VCALENDAR of VEVENTs needs escaping and line folding, not a
library."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

from comms.models import StatusMaintenance, UpgradeLifecycle
from comms.services._outgoing import site_url


def _text(value: str) -> str:
    """TEXT value escaping (RFC 5545 3.3.11)."""
    return (
        value.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (RFC 5545 3.1),
    never splitting a UTF-8 character."""
    out: list[str] = []
    current, size = "", 0
    for char in line:
        width = len(char.encode())
        if size + width > (75 if not out else 74):
            out.append(current)
            current, size = "", 0
        current += char
        size += width
    out.append(current)
    return "\r\n ".join(out)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_ics(maintenances: list[StatusMaintenance], *, name: str, public: bool) -> str:
    host = urlparse(site_url("/")).hostname or "mycelia"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Mycelia Ops//Status page//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{_text(name)}",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    for m in maintenances:
        if m.window_start is None:
            continue
        end = m.window_end or m.window_start + timedelta(hours=1)
        cancelled = m.lifecycle == UpgradeLifecycle.CANCELLED
        state = "Cancelled" if cancelled else m.public_label
        link = site_url("/status/") + f"#upgrade-{m.upgrade_id}" if public else m.url
        description = f"{state}. {m.environment_name}." + (f" {link}" if link else "")
        lines += [
            "BEGIN:VEVENT",
            f"UID:maintenance-{m.public_id}@{host}",
            f"DTSTAMP:{_stamp(m.updated_at)}",
            f"LAST-MODIFIED:{_stamp(m.updated_at)}",
            f"SEQUENCE:{int(m.updated_at.timestamp()) % 2_000_000_000}",
            f"DTSTART:{_stamp(m.window_start)}",
            f"DTEND:{_stamp(end)}",
            f"SUMMARY:{_text(f'Maintenance: {m.title} ({m.environment_name})')}",
            f"DESCRIPTION:{_text(description)}",
            f"STATUS:{'CANCELLED' if cancelled else 'CONFIRMED'}",
            "TRANSP:TRANSPARENT",
        ]
        if link:
            lines.append(f"URL:{link}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"
