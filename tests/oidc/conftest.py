from __future__ import annotations

import pytest

from tests.oidc.provider import TestProvider


@pytest.fixture
def provider():
    running = TestProvider().start()
    yield running
    running.stop()
