"""The foundation: settings from the environment, security checks, accounts and sign-in."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from mycelia_ops.env import env_bool, env_list, env_str
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    full_env = {
        "PATH": os.environ["PATH"],
        "MYCELIA_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_env_bool__not_true_or_false__refuses_to_start(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG must be true or false"):
        env_bool("SOME_FLAG", False)


def test_env_str__file_variant__reads_the_secret_from_the_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t\n")
    monkeypatch.setenv("DB_PASSWORD_FILE", str(secret))
    assert env_str("DB_PASSWORD") == "s3cr3t"
    monkeypatch.setenv("HOSTS", "a.example.com, b.example.com")
    assert env_list("HOSTS", []) == ["a.example.com", "b.example.com"]


def test_check_deploy__production_settings__is_clean(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "SECRET_KEY": "x" * 20 + "production-secret-from-the-environment-0123456789",
            "MYCELIA_REQUIRE_SECRET_KEY": "true",
            "DEBUG": "false",
            "SECURE_SSL": "true",
            "ALLOWED_HOSTS": "ops.example.com",
        },
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production__no_secret_key__refuses_to_start(tmp_path):
    result = _manage(
        "check", env={"MYCELIA_REQUIRE_SECRET_KEY": "true", "DEBUG": "false"}, tmp_path=tmp_path
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set in production" in result.stderr


def test_createsuperuser__noinput_with_standard_variables__creates_the_account(tmp_path):
    env = {
        "DJANGO_SUPERUSER_USERNAME": "root",
        "DJANGO_SUPERUSER_EMAIL": "root@example.com",
        "DJANGO_SUPERUSER_PASSWORD": "a-long-password-for-root",
    }
    assert _manage("migrate", "-v", "0", env={}, tmp_path=tmp_path).returncode == 0
    result = _manage("createsuperuser", "--noinput", env=env, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Superuser created successfully" in result.stdout


def test_sign_in__right_password__lands_on_the_upgrades(client, manager):
    response = client.post(
        reverse("login"), {"username": manager.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("upgrades:list")


def test_sign_in__repeated_failures__are_throttled_even_with_the_right_password(client, manager):
    codes = [
        client.post(reverse("login"), {"username": manager.username, "password": "no"}).status_code
        for _ in range(5)
    ]
    assert codes == [200, 200, 200, 200, 429]
    locked = client.post(reverse("login"), {"username": manager.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_writes__without_csrf_token__are_refused(manager, make_upgrade):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    upgrade = make_upgrade("minor")
    step = upgrade.steps.first()
    url = reverse("upgrades:step_action", args=[upgrade.pk, step.pk, "complete"])
    assert strict.post(url, HTTP_HX_REQUEST="true").status_code == 403


def test_seed_demo__makes_its_own_passwords_and_keeps_them(tmp_path):
    assert _manage("migrate", "-v", "0", env={}, tmp_path=tmp_path).returncode == 0
    first = _manage("seed", "--demo", env={}, tmp_path=tmp_path)
    second = _manage("seed", "--demo", env={}, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    login_lines = [line for line in first.stdout.splitlines() if "login " in line]
    assert len(login_lines) == 3  # admin, release manager, stakeholder
    assert login_lines == [line for line in second.stdout.splitlines() if "login " in line]
    assert "Playbook: 5 template(s) loaded." in first.stdout


def test_admin__staff_user__sees_upgrades_read_only(client, db):
    admin = get_user_model().objects.create_superuser("root", "r@example.com", PASSWORD)
    client.force_login(admin)
    assert client.get("/admin/upgrades/upgradeevent/").status_code == 200
    assert client.get("/admin/upgrades/upgradeevent/add/").status_code == 403


def test_seed_demo__flags_in_the_demo_environments__created_once_and_left_as_people_set_them(
    db, tmp_path, settings
):
    from django.core.management import call_command

    from flags import services as flag_services
    from flags.models import Flag, FlagEvent, FlagState, Via

    settings.DATA_DIR = tmp_path
    call_command("seed", "--demo", stdout=io.StringIO())
    states = {
        (s.flag.key, s.environment.key): (s.enabled, s.rollout_percentage)
        for s in FlagState.objects.select_related("flag", "environment")
    }
    assert states[("new-checkout", "staging")] == (True, 100)
    assert states[("new-checkout", "production")] == (False, 100)
    assert states[("search-v2", "production")] == (True, 25)
    # Every demo change is on the flag's history like any other
    assert FlagEvent.objects.filter(flag__key="new-checkout", reason="Demo data").exists()

    # When someone switches a demo flag off and the seed runs again, it stays off
    production = FlagState.objects.get(flag__key="dark-mode", environment__key="production")
    flag_services.flag_set_state(
        flag=production.flag, environment=production.environment, on=False, by=None, via=Via.UI
    )
    out = io.StringIO()
    call_command("seed", "--demo", stdout=out)
    production.refresh_from_db()
    assert not production.enabled
    assert Flag.objects.filter(key="dark-mode").count() == 1
    assert "Demo flags:" not in out.getvalue()
