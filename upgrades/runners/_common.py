"""What every runner shares: outcomes, caps and how times read."""

from __future__ import annotations

from typing import Literal

Outcome = Literal["passed", "failed", "inconclusive", "error", "timed_out", "cancelled"]
OUTCOMES: tuple[Outcome, ...] = (
    "passed", "failed", "inconclusive", "error", "timed_out", "cancelled",
)  # fmt: skip
BODY_CAP_BYTES = 64 * 1024
KILL_GRACE_S = 2.0
_READ_CHUNK = 16 * 1024


def _seconds(value: float) -> str:
    return f"{value:g} s"
