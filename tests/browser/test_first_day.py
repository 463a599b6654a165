"""Issue 13, done when: the first day with a real Mycelia, in real Chromium, on a bare install.

An administrator (`createsuperuser`, nothing else) signs in, lands on the set-up start, loads the
playbook, creates an environment pointed at a running Mycelia (the demo's HTTP service), adds the
target's host (a real OpenSSH server, its host key pasted), two hooks on that host over SSH
(diagnostics, the database backup) and a webhook hook, tests the diagnostics and the webhook and
watches a real worker's results arrive on the page, and sets the SLO thresholds. They invite a
release manager, who signs up through the emailed link in a browser of her own, creates an
upgrade and runs its database backup step: the worker runs the dump on the host and brings it
back into S3 (moto's server). The dump then downloads, byte for byte as its recorded sha256,
through another web process (the production server, another data folder) that shares only the
database and the S3 settings."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
from django.conf import global_settings
from django.contrib.auth.models import Group
from django.core.management import call_command
from playwright.sync_api import expect

from flags.models import FlagEnvironment
from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS
from tests.browser.first_day_support import OtherWebProcess, s3_environment
from tests.integration.conftest import ROOT, worker_factory  # noqa: F401 - fixture
from tests.setup.conftest import receiver  # noqa: F401 - fixture
from tests.upgrades.ssh_server import SshServer, sshd_running
from tests.upgrades.test_artifact_storage import bucket, moto, s3_artifacts  # noqa: F401
from upgrades.models import Artifact, EnvironmentOperation, SloThreshold, Upgrade

pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

LIVE = 30_000  # ms: a run goes from queued to finished on the worker well within this
ROOT_PASSWORD = "a-long-fresh-password-9"
RITA_PASSWORD = "a-long-new-pass-42"


@pytest.fixture
def sshd(tmp_path) -> SshServer:
    with sshd_running(tmp_path / "sshd") as server:
        yield server


def _bare_install(monkeypatch) -> None:
    """The migrations and `createsuperuser --noinput`, nothing else. A transactional test starts
    from flushed tables when another ran before it, so what the migrations make is put back
    (tests/setup/test_bare_install_api.py checks the migrations make it)."""
    for name in (ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS):
        Group.objects.get_or_create(name=name)
    FlagEnvironment.objects.get_or_create(key="production", defaults={"name": "Production"})
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", ROOT_PASSWORD)
    call_command("createsuperuser", "--noinput", username="root", email="root@example.com")


def _sign_in(page, base: str, username: str, password: str, lands_on: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{lands_on}")


@pytest.fixture
def other_web(transactional_db, moto, bucket, tmp_path) -> OtherWebProcess:  # noqa: F811
    """Another web process on the S3 settings, with another data folder: it starts while the
    browser works, and the test waits for it where it needs it."""
    server = OtherWebProcess(tmp_path, tmp_path / "data-b", **s3_environment(moto, bucket))
    yield server
    server.stop()


def test_first_day__bare_install__set_up_invite_back_up_download_elsewhere(
    new_page,
    live_server,
    mailoutbox,
    monkeypatch,
    settings,
    tmp_path,
    demo_mycelia,
    sshd,
    moto,  # noqa: F811
    bucket,  # noqa: F811
    s3_artifacts,  # noqa: F811 - this process (the live server) keeps artifacts in S3 too
    other_web,
    receiver,  # noqa: F811
    worker_factory,  # noqa: F811
):
    # Given: a bare install whose processes all keep artifacts in one S3 bucket: the live server
    # (this process), a real worker with a media folder of its own, and another web process
    # with another data folder. Passwords are hashed as in production (the suite's fast hasher
    # is unknown to the other process).
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    _bare_install(monkeypatch)
    s3 = s3_environment(moto, bucket)
    worker_factory(MEDIA_ROOT=str(tmp_path / "media-worker"), **s3).start()
    base = live_server.url
    admin = new_page()

    # When: the administrator signs in: a bare install sends them to the set-up start
    _sign_in(admin, base, "root", ROOT_PASSWORD, lands_on="/setup/")
    expect(admin.locator("#first-steps")).to_be_visible()

    # And: loads the playbook's templates (a release manager makes upgrades from them)
    admin.click("#load-playbook button[type=submit]")
    admin.goto(f"{base}/setup/")
    expect(admin.locator("#load-playbook")).to_have_count(0)

    # And: creates an environment pointed at the running Mycelia, its commands given the demo's
    # state folder
    admin.click("text=Add the first environment")
    env_form = admin.locator("#environment-form")
    env_form.locator("[name=name]").fill("Staging")
    env_form.locator("[name=slug]").fill("staging")
    env_form.locator("[name=kind]").select_option("staging")
    env_form.locator("[name=base_url]").fill(demo_mycelia.url)
    env_form.locator("[name=command_env]").fill(f"MYCELIA_DEMO_STATE_DIR={tmp_path / 'demo-state'}")
    env_form.locator("button[type=submit]").click()
    admin.wait_for_url(re.compile(r".*/setup/environments/\d+/#hooks$"))

    # And: adds the target's host, with the host key it must show; commands run in the folder
    # where the demo Mycelia's command line is
    admin.locator("#new-host > summary").click()
    host_form = admin.locator("#new-host-form")
    host_form.locator("[name=new-host-address]").fill("127.0.0.1")
    host_form.locator("[name=new-host-port]").fill(str(sshd.port))
    host_form.locator("[name=new-host-user]").fill(sshd.user)
    host_form.locator("[name=new-host-host_key]").fill(sshd.host_key_line)
    host_form.locator("[name=new-host-private_key_file]").fill(str(sshd.client_key))
    host_form.locator("[name=new-host-working_directory]").fill(str(ROOT))
    host_form.locator("button[type=submit]").click()
    login = f"{sshd.user}@127.0.0.1:{sshd.port}"
    expect(admin.locator("[data-role=host-login]")).to_have_text(login)

    # And: three hooks: diagnostics and the database backup on that host over SSH (the dump is
    # brought back to the artifacts storage), and deploy as a webhook with its secret
    hook_form = admin.locator("#new-hook-form")

    def add_hook(operation: str, mode: str, **fields: str) -> EnvironmentOperation:
        if not admin.locator("#new-hook").evaluate("d => d.open"):
            admin.locator("#new-hook > summary").click()
        hook_form.locator("[name=operation]").select_option(operation)
        hook_form.locator(f"[name=mode][value={mode}]").check()
        for name, value in fields.items():
            field = hook_form.locator(f"[name={name}]")
            if name == "host":
                field.select_option(label=value)
            else:
                field.fill(value)
        hook_form.locator("button[type=submit]").click()
        admin.wait_for_url(re.compile(r".*#hook-\d+$"))
        return EnvironmentOperation.objects.get(operation=operation)

    ssh_hook = add_hook("diagnose", "ssh", host=login,
                        argv='sh\n-c\necho "dry run $MYCELIA_DRY_RUN on $(hostname)"')  # fmt: skip
    webhook = add_hook("deploy", "webhook", webhook_url=f"{receiver.url}/deploy",
                       webhook_secret_header="X-Deploy-Token", webhook_secret="s3cret-value")  # fmt: skip
    add_hook("db_backup", "ssh", host=login,
             argv=f"{sys.executable}\n-m\nupgrades.demo_target\ndb-backup\n{{output_path}}")  # fmt: skip
    expect(admin.locator(f"#hook-{ssh_hook.pk} [data-role=hook-host]")).to_have_text(login)

    # When: both hooks are tested (the webhook deploys, so only once its honouring the dry run
    # is confirmed)
    admin.evaluate("window.__noReload = 'still here'")
    admin.locator(f"#hook-{ssh_hook.pk} [data-role=test-hook]").click()
    admin.locator(f"#confirm-{webhook.pk}").check()
    admin.locator(f"#hook-{webhook.pk} [data-role=test-hook]").click()

    # Then: the worker's results arrive in place: the command ran on the host with the dry-run
    # signal, the webhook answered 200 with the secret and the dry-run header
    ssh_result = admin.locator(f"#hook-{ssh_hook.pk}-test")
    expect(ssh_result.locator("[data-role=test-status]")).to_have_text("Passed", timeout=LIVE)
    expect(ssh_result.locator("[data-role=test-output]")).to_contain_text("dry run 1 on ")
    expect(ssh_result).to_contain_text(login)
    web_result = admin.locator(f"#hook-{webhook.pk}-test")
    expect(web_result.locator("[data-role=test-status]")).to_have_text("Passed", timeout=LIVE)
    expect(web_result.locator("[data-role=test-reason]")).to_contain_text("answered 200")
    assert admin.evaluate("window.__noReload") == "still here"
    sent = receiver.requests[-1]
    assert sent["json"]["dry_run"] is True and sent["headers"]["X-Mycelia-Dry-Run"] == "1"
    assert sent["headers"]["X-Deploy-Token"] == "s3cret-value"

    # And: the SLO thresholds monitoring will hold upgrades to
    slo_form = admin.locator("#slo-form")
    slo_form.locator("[name=error_rate]").fill("0.01")
    slo_form.locator("[name=availability]").fill("0.999")
    slo_form.locator("button[type=submit]").click()
    admin.wait_for_url(re.compile(r".*#slo$"))
    expect(admin.locator("#slo-form [name=error_rate]")).to_have_value("0.01")
    assert SloThreshold.objects.filter(environment__slug="staging").count() == 2

    # When: the administrator invites a release manager
    admin.goto(f"{base}/setup/people/")
    admin.fill("#invite-form [name=email]", "rita@example.com")
    admin.select_option("#invite-form [name=role]", "release_manager")
    admin.click("#invite-form button[type=submit]")
    expect(admin.locator("#invitations")).to_contain_text("rita@example.com")

    # Then: she signs up through the emailed link, in a browser of her own, and signs in
    link = re.search(r"https?://\S+/setup/join/\S+/", mailoutbox[-1].body).group(0)
    assert link.startswith(base)
    rita = new_page()
    rita.goto(link)
    rita.fill("#join-form [name=username]", "rita")
    rita.fill("#join-form [name=password]", RITA_PASSWORD)
    rita.fill("#join-form [name=password_again]", RITA_PASSWORD)
    rita.click("#join-form button[type=submit]")
    rita.wait_for_url("**/accounts/login/")
    _sign_in(rita, base, "rita", RITA_PASSWORD, lands_on="/upgrades/")
    expect(rita.locator(".who")).to_contain_text("release manager")

    # When: she creates an upgrade from the playbook and runs its database backup step
    rita.goto(f"{base}/upgrades/new/")
    rita.select_option("#id_upgrade_type", "minor")
    rita.fill("#id_title", "First real upgrade")
    rita.fill("#id_version_from", "1.4.2")
    rita.fill("#id_version_to", "1.5.0")
    rita.click("button:has-text('Create upgrade from the playbook')")
    rita.wait_for_url(re.compile(r".*/upgrades/\d+/$"))
    upgrade = Upgrade.objects.get(title="First real upgrade")
    step = upgrade.steps.get(title="Backup database")
    rita.locator(f"#run-check-{step.pk}").click()

    # Then: the worker backs up on the host; the step is done and the dump is listed on her page
    expect(rita.locator(f"#step-{step.pk} .step-status")).to_have_text("Done", timeout=LIVE)
    expect(rita.locator(f"#step-{step.pk} .step-run")).to_contain_text(
        "Database backed up on the host and brought back"
    )
    dump = Artifact.objects.get(upgrade=upgrade, kind="db_backup")
    assert dump.path.startswith("s3://") and dump.path.endswith(dump.storage_name)
    expect(rita.locator("#artifacts")).to_contain_text(dump.name)

    # When: she opens the upgrade on the other web process and downloads the dump there
    other_web.ready()
    elsewhere = new_page()
    _sign_in(elsewhere, other_web.url, "rita", RITA_PASSWORD, lands_on="/upgrades/")
    elsewhere.goto(f"{other_web.url}/upgrades/{upgrade.pk}/")
    link = elsewhere.locator("#artifacts a", has_text=dump.name)
    with elsewhere.expect_download() as download:
        link.click()

    # Then: the bytes are the ones the worker stored, as their recorded sha256 says
    body = Path(download.value.path()).read_bytes()
    assert download.value.suggested_filename == dump.name
    assert len(body) == dump.size_bytes
    assert hashlib.sha256(body).hexdigest() == dump.sha256

    # And: the dump lives in the bucket only, on no process's disk
    stored = moto.client().get_object(Bucket=bucket, Key=dump.storage_name)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == dump.sha256
    for folder in (tmp_path / "media-worker", tmp_path / "data-b", Path(settings.MEDIA_ROOT)):
        assert not list(folder.rglob("db-backup-*"))
