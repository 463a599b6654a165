"""Shared fixtures: a release manager, a second manager, a stakeholder, an outsider, and
upgrades made from the seeded playbook."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from mycelia_ops.roles import RELEASE_MANAGERS, STAKEHOLDERS
from upgrades.models import Environment, EnvironmentKind
from upgrades.services import playbook_seed

PASSWORD = "correct-horse-battery-staple"


def _user(username: str, group: str | None) -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.com"
    )
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def manager(db) -> User:
    return _user("alice", RELEASE_MANAGERS)


@pytest.fixture
def second_manager(db) -> User:
    return _user("dave", RELEASE_MANAGERS)


@pytest.fixture
def stakeholder(db) -> User:
    return _user("bob", STAKEHOLDERS)


@pytest.fixture
def outsider(db) -> User:
    return _user("charlie", None)


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture
def stakeholder_client(client, stakeholder):
    client.force_login(stakeholder)
    return client


@pytest.fixture
def outsider_client(client, outsider):
    client.force_login(outsider)
    return client


@pytest.fixture(autouse=True)
def _default_urlconf_after_each_test():
    """A test that calls the WSGI app without closing the response leaves the lean OFREP
    URLconf set for this thread (Django resets it on request_finished): put the default back."""
    yield
    from django.urls import set_urlconf

    set_urlconf(None)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Hashing strength is Django's business, not ours: keep the suite quick.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests flip a flag and evaluate at once; the half-second revision check is tested alone.
    settings.FLAGS_REVISION_CHECK_SECONDS = 0


@pytest.fixture
def playbook(db) -> None:
    from comms.services import comms_seed

    playbook_seed()
    comms_seed()


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
        if upgrade_type == "major":
            defaults["version_to"] = "2.0.0"
        if upgrade_type == "feature_flag":
            defaults["flag_key"] = "new-checkout"
        if upgrade_type == "emergency":
            defaults["emergency_kind"] = "security_patch"
            defaults["version_to"] = "1.4.3"
        defaults.update(kwargs)
        if upgrade_type == "feature_flag":
            _flag_exists(defaults["flag_key"], defaults["environment"], manager)
        return upgrade_create(upgrade_type=upgrade_type, **defaults)

    return make


def mark_deployed(upgrade, *, version: str = "") -> None:
    """What a passed deploy run records on its upgrade, for tests of the rules that follow a
    deploy (the deploy itself runs on a real worker in tests/integration and tests/upgrades/
    test_runs.py)."""
    from django.utils import timezone

    from upgrades.models import DeployState, Upgrade

    Upgrade.objects.filter(pk=upgrade.pk).update(
        deploy_state=DeployState.PASSED,
        deployed_at=timezone.now(),
        deployed_version=version or upgrade.version_to,
    )
    upgrade.refresh_from_db()


def close_steps(upgrade, by, *, stages=("pre",)) -> None:
    """Tick every required open step of the given stages, as a release manager would."""
    from upgrades.services import step_complete

    for step in upgrade.steps.filter(phase__stage__in=stages, required=True, status="open"):
        step_complete(step=step, by=by, note="done")


def drive(upgrade, by, *, to: str):
    """Walk an upgrade through the lifecycle to `to` the way a release manager does: tick the
    steps of each stage, start, deploy (recorded as by a passed run), monitor, end the window
    early with a reason, complete."""
    from upgrades.services import upgrade_act

    order = ["in_progress", "monitoring", "completed"]
    if to == "scheduled":
        if upgrade.window_start is None:
            from django.utils import timezone

            upgrade.window_start = timezone.now()
            upgrade.save(update_fields=["window_start"])
        return upgrade_act(upgrade=upgrade, action="schedule", by=by).upgrade
    close_steps(upgrade, by, stages=("pre",))
    upgrade = upgrade_act(upgrade=upgrade, action="start", by=by).upgrade
    if to == "in_progress":
        return upgrade
    close_steps(upgrade, by, stages=("deploy",))
    mark_deployed(upgrade)
    upgrade = upgrade_act(upgrade=upgrade, action="begin_monitoring", by=by).upgrade
    if to == "monitoring" or order.index(to) < order.index("completed"):
        return upgrade
    close_steps(upgrade, by, stages=("post",))
    upgrade_act(upgrade=upgrade, action="end_monitoring", by=by, reason="stable")
    return upgrade_act(upgrade=upgrade, action="complete", by=by).upgrade


def _flag_exists(key: str, environment: Environment, by) -> None:
    """A flag upgrade names a flag that exists in its environment: make it so."""
    if not key:
        return
    from flags import services as flag_services
    from flags.models import Flag
    from upgrades.services import environment_flags_sync

    environment_flags_sync(environment=environment)
    if not Flag.objects.filter(key=key).exists():
        flag_services.flag_create(key=key, description=key, by=by, via="ui")


@pytest.fixture
def demo_mycelia(tmp_path):
    """The demo Mycelia's HTTP service on a free port, with a state folder of its own."""
    import threading

    from upgrades.demo_target.server import make_server

    server = make_server(port=0, state_dir=tmp_path / "demo-state", secret="", quiet=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def demo_environment(db, demo_mycelia, tmp_path, settings):
    """A staging environment pointed at the demo Mycelia, with its commands and SLO."""
    from upgrades.demo import demo_environment_configure

    settings.MEDIA_ROOT = tmp_path / "media"
    environment = Environment.objects.create(
        name="Demo staging",
        slug="demo-staging",
        kind=EnvironmentKind.STAGING,
        base_url=demo_mycelia.url,
        request_timeout_seconds=1.0,
    )
    return demo_environment_configure(
        environment=environment, state_dir=tmp_path / "demo-state", timeout_scale=0.2
    )


def set_fault(demo_mycelia, name: str, on: bool = True, **extra) -> None:
    import httpx

    response = httpx.post(f"{demo_mycelia.url}/faults", json={name: on, **extra}, timeout=5)
    response.raise_for_status()


@pytest.fixture
def flag_upgrade(make_upgrade, demo_environment, manager):
    """A feature-flag upgrade of flag new-checkout (off) on the demo environment."""
    from flags import services as flag_services
    from flags.models import Flag
    from upgrades.services import environment_flags_sync

    environment_flags_sync(environment=demo_environment)
    if not Flag.objects.filter(key="new-checkout").exists():
        flag_services.flag_create(
            key="new-checkout", description="New checkout", by=manager, via="ui"
        )
    return make_upgrade("feature_flag", environment=demo_environment, flag_key="new-checkout")


def flag_is_on(key: str, environment_key: str) -> bool:
    from flags.models import FlagState

    state = FlagState.objects.filter(flag__key=key, environment__key=environment_key).first()
    return bool(state and state.enabled)
