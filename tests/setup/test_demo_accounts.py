"""The demo's accounts: an administrator for the set-up pages, a release manager and a
stakeholder; none of them staff, and `make run` prints the admin's login too."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from mycelia_ops.roles import is_administrator, is_release_manager

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_dir(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    return tmp_path


def _seed() -> str:
    out = io.StringIO()
    call_command("seed", "--demo", "--demo-url=http://127.0.0.1:8100", stdout=out)
    return out.getvalue()


def test_seed_demo__accounts__admin_administers_manager_manages_nobody_is_staff(data_dir, client):
    output = _seed()
    logins = json.loads((data_dir / "demo_logins.json").read_text())
    User = get_user_model()
    admin, manager = User.objects.get(username="admin"), User.objects.get(username="manager")

    assert f"login admin / {logins['admin']}" in output
    assert is_administrator(admin) and not is_release_manager(admin)
    assert is_release_manager(manager) and not is_administrator(manager)
    assert not User.objects.filter(is_staff=True).exists()

    # the manager is never sent to the Django admin, and it would refuse them
    client.force_login(manager)
    assert reverse("admin:index") not in client.get(reverse("upgrades:list")).content.decode()
    assert client.get(reverse("admin:index")).status_code == 302


def test_seed_demo__manager_made_staff_by_an_older_demo__no_longer_staff(data_dir):
    _seed()
    User = get_user_model()
    User.objects.filter(username="manager").update(is_staff=True)
    _seed()
    assert not User.objects.get(username="manager").is_staff
