"""Flag fixtures: two environments synced the way the upgrades app does it, a flag, and API
tokens for the release manager, the stakeholder and the outsider."""

from __future__ import annotations

import pytest

from flags import runtime, services
from flags.models import ApiTokenScope, Via


@pytest.fixture(autouse=True)
def _fresh_runtime():
    # The definition cache and the count buffer live in the process: start each test clean.
    runtime.definitions.clear()
    runtime.counter.discard()
    yield
    runtime.definitions.clear()
    runtime.counter.discard()


@pytest.fixture
def production(db):
    return services.flag_environment_ensure(key="production", name="Production")


@pytest.fixture
def staging_env(db):
    return services.flag_environment_ensure(key="staging", name="Staging")


@pytest.fixture
def environments(production, staging_env):
    return [production, staging_env]


@pytest.fixture
def flag(environments, manager):
    return services.flag_create(
        key="new-checkout", description="The new checkout", by=manager, via=Via.UI, tags="checkout"
    )


def _token(user, scope=ApiTokenScope.USER, environment=None) -> str:
    return services.api_token_create(user=user, name="test", scope=scope, environment=environment)[
        1
    ]


@pytest.fixture
def manager_token(manager) -> str:
    return _token(manager)


@pytest.fixture
def stakeholder_token(stakeholder) -> str:
    return _token(stakeholder)


@pytest.fixture
def outsider_token(outsider) -> str:
    return _token(outsider)


@pytest.fixture
def evaluation_token(manager, staging_env) -> str:
    return _token(manager, ApiTokenScope.EVALUATION, staging_env)


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
