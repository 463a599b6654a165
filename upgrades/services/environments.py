"""Environments: the flags app keeps its own list of them, fed from here by plain values."""

from __future__ import annotations

from flags import services as flag_services
from upgrades.models import Environment


def environment_flags_sync(*, environment: Environment) -> None:
    """Every environment upgrades run against is one that feature flags can be set in."""
    flag_services.flag_environment_ensure(key=environment.slug, name=environment.name)
