"""`seed --demo`, which `make run` runs on every start: it creates what is missing and leaves
what exists as people set it (hooks, base URL, working directory, SLO thresholds, accounts)."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from upgrades.models import Environment, EnvironmentOperation, Operation, SloMetric, SloThreshold

DEMO_URL = "http://127.0.0.1:8100"


@pytest.fixture
def data_dir(db, tmp_path, settings):
    settings.DATA_DIR = tmp_path
    return tmp_path


def _seed(demo_url: str = DEMO_URL) -> str:
    out = io.StringIO()
    call_command("seed", "--demo", f"--demo-url={demo_url}", stdout=out)
    return out.getvalue()


def test_seed_demo__first_run__creates_both_environments_with_hooks_slo_and_logins(data_dir):
    output = _seed()

    for slug in ("staging", "production"):
        environment = Environment.objects.get(slug=slug)
        assert environment.base_url == DEMO_URL
        assert environment.working_directory
        assert environment.command_env == {"MYCELIA_DEMO_STATE_DIR": str(data_dir / "demo_target")}
        assert environment.operations.filter(operation=Operation.DEPLOY).exists()
        assert environment.slo_thresholds.count() == 3
    assert (data_dir / "demo_target" / "config" / "mycelia.toml").exists()
    logins = json.loads((data_dir / "demo_logins.json").read_text())
    assert f"login manager / {logins['manager']}" in output
    assert get_user_model().objects.get(username="manager").check_password(logins["manager"])


def test_seed_demo__run_again_after_edits__every_edit_survives(data_dir):
    # Given a seeded demo that a manager then edited: a hook, its timeout, a threshold, the
    # base URL, the working directory, the commands' variables, an account's password
    _seed()
    staging = Environment.objects.get(slug="staging")
    staging.base_url = "http://mycelia.internal:9000"
    staging.working_directory = "/srv/mycelia"
    staging.command_env = {"EXTRA": "1"}
    staging.config_directory = "/srv/mycelia/config"
    staging.save()
    deploy = EnvironmentOperation.objects.get(environment=staging, operation=Operation.DEPLOY)
    deploy.argv = ["pnpm", "run", "deploy", "{version}"]
    deploy.timeout_seconds = 900
    deploy.save()
    threshold = SloThreshold.objects.get(environment=staging, metric=SloMetric.ERROR_RATE)
    threshold.operator, threshold.limit = "<", 0.05
    threshold.save()
    manager = get_user_model().objects.get(username="manager")
    manager.set_password("a-password-chosen-by-a-person")
    manager.is_staff = False
    manager.save()

    # When the product restarts (make run seeds again)
    output = _seed()

    # Then nothing was put back
    staging.refresh_from_db()
    assert staging.base_url == "http://mycelia.internal:9000"
    assert staging.working_directory == "/srv/mycelia"
    assert staging.command_env == {"EXTRA": "1"}
    assert staging.config_directory == "/srv/mycelia/config"
    deploy.refresh_from_db()
    assert deploy.argv == ["pnpm", "run", "deploy", "{version}"]
    assert deploy.timeout_seconds == 900
    threshold.refresh_from_db()
    assert (threshold.operator, threshold.limit) == ("<", 0.05)
    manager.refresh_from_db()
    assert manager.check_password("a-password-chosen-by-a-person")
    assert not manager.is_staff
    # and the start-up banner does not show a password that no longer works
    assert "login manager (password changed since the demo made it)" in output


def test_seed_demo__a_hook_or_threshold_deleted__is_created_again(data_dir):
    _seed()
    production = Environment.objects.get(slug="production")
    production.operations.filter(operation=Operation.ROLLBACK).delete()
    production.slo_thresholds.filter(metric=SloMetric.AVAILABILITY).delete()

    _seed()

    assert production.operations.filter(operation=Operation.ROLLBACK).exists()
    assert production.slo_thresholds.filter(metric=SloMetric.AVAILABILITY).exists()


def test_seed_demo__demo_port_changed__only_environments_still_on_the_old_demo_url_follow(
    data_dir,
):
    # Given a demo seeded for port 8100, and production then pointed somewhere else by hand
    _seed("http://127.0.0.1:8100")
    Environment.objects.filter(slug="production").update(base_url="http://mycelia.internal:9000")

    # When make run starts the demo target on another port
    _seed("http://127.0.0.1:8101")

    # Then staging, still on the previous demo URL, follows; production is left alone
    assert Environment.objects.get(slug="staging").base_url == "http://127.0.0.1:8101"
    assert Environment.objects.get(slug="production").base_url == "http://mycelia.internal:9000"
