from __future__ import annotations

import pytest

from upgrades.models import Environment, EnvironmentKind
from upgrades.services import playbook_seed


@pytest.fixture
def playbook(db) -> None:
    playbook_seed()


@pytest.fixture
def staging(db) -> Environment:
    return Environment.objects.create(
        name="Staging", slug="staging", kind=EnvironmentKind.STAGING, base_url="http://127.0.0.1:9"
    )


@pytest.fixture
def make_upgrade(playbook, staging, manager):
    from upgrades.services import upgrade_create

    def make(upgrade_type: str = "minor", **kwargs):
        defaults = {
            "title": f"Test {upgrade_type} upgrade",
            "environment": staging,
            "owner": manager,
            "by": manager,
            "version_from": "1.4.2",
            "version_to": "1.5.0",
        }
        if upgrade_type == "feature_flag":
            defaults["flag_key"] = "new-checkout"
        if upgrade_type == "emergency":
            defaults["emergency_kind"] = "security_patch"
        defaults.update(kwargs)
        return upgrade_create(upgrade_type=upgrade_type, **defaults)

    return make
