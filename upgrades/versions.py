"""Version numbers as the playbook's upgrade types use them: MAJOR.MINOR.PATCH."""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d{1,6})\.(\d{1,6})\.(\d{1,6})(?:[-+][0-9A-Za-z.-]{1,40})?$")


def parse(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(text.strip())
    return tuple(int(part) for part in match.groups()) if match else None  # type: ignore[return-value]


def problem(*, upgrade_type: str, version_from: str, version_to: str) -> tuple[str, str]:
    """Why the pair of versions does not fit the upgrade type, and the field to fix; ("", "")
    when it fits. Minor keeps the major number and goes up; major raises it; an emergency (a
    security patch or hotfix) goes up."""
    if upgrade_type == "feature_flag":
        return "", ""
    to = parse(version_to) if version_to else None
    if version_to and to is None:
        return (
            f"“{version_to}” is not a version: write it as MAJOR.MINOR.PATCH, e.g. 1.5.0.",
            "version_to",
        )
    if not version_to:
        return "Name the version this upgrade goes to.", "version_to"
    if not version_from:
        if upgrade_type in ("minor", "major"):
            return "Name the version running now (the one to roll back to).", "version_from"
        return "", ""
    start = parse(version_from)
    if start is None:
        return (
            f"“{version_from}” is not a version: write it as MAJOR.MINOR.PATCH, e.g. 1.4.2.",
            "version_from",
        )
    pair = f"{version_from} → {version_to}"
    if to <= start:
        return f"{pair} does not go up: an upgrade moves to a newer version.", "version_to"
    if upgrade_type == "minor" and to[0] != start[0]:
        return (
            f"{pair} changes the major number: that is a major upgrade, not a minor one.",
            "version_to",
        )
    if upgrade_type == "major" and to[0] <= start[0]:
        return (
            f"{pair} keeps the major number: that is a minor upgrade; a major upgrade raises it.",
            "version_to",
        )
    return "", ""
