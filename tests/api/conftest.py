"""API clients holding the Bearer token of a release manager, a second manager, a stakeholder,
an outsider, or none, for the REST API at /api/."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flags.services import api_token_create


class ApiClient:
    """Django's test client with `Authorization: Bearer <token>` and JSON bodies."""

    def __init__(self, client: Any, token: str | None) -> None:
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}

    def get(self, path: str, **params: Any):
        return self.client.get(path, params, **self.headers)

    def post(self, path: str, body: Any = None):
        data = "" if body is None else json.dumps(body)
        return self.client.post(path, data, content_type="application/json", **self.headers)

    def patch(self, path: str, body: Any):
        return self.client.patch(
            path, json.dumps(body), content_type="application/json", **self.headers
        )


def token_of(user) -> str:
    _, plaintext = api_token_create(user=user, name=f"{user.username} pipeline", scope="user")
    return plaintext


@pytest.fixture
def manager_api(client, manager) -> ApiClient:
    return ApiClient(client, token_of(manager))


@pytest.fixture
def second_manager_api(client, second_manager) -> ApiClient:
    return ApiClient(client, token_of(second_manager))


@pytest.fixture
def stakeholder_api(client, stakeholder) -> ApiClient:
    return ApiClient(client, token_of(stakeholder))


@pytest.fixture
def outsider_api(client, outsider) -> ApiClient:
    return ApiClient(client, token_of(outsider))


@pytest.fixture
def anonymous_api(client) -> ApiClient:
    return ApiClient(client, None)
