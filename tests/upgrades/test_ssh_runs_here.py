"""The upgrade page's "what runs here" for hooks that run on a host over SSH: their {output_path}
and {backup_path} are paths on the host (a folder of the run's own under /var/tmp), never a
folder of the worker's that the host does not have."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from upgrades.models import EnvironmentHost, EnvironmentOperation, HookMode, Operation, Upgrade

pytestmark = pytest.mark.django_db


def _runs_here(client, upgrade: Upgrade) -> list[str]:
    response = client.get(reverse("upgrades:detail", args=[upgrade.pk]))
    assert response.status_code == 200
    found = re.findall(r'<pre class="runs-here">(.*?)</pre>', response.content.decode(), re.S)
    return [html.unescape(text) for text in found]


@pytest.fixture
def host(staging) -> EnvironmentHost:
    return EnvironmentHost.objects.create(
        environment=staging, address="app1.example", port=2222, user="deploy",
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnlyShownNeverUsedHere",
        private_key_file="/run/secrets/mycelia_ssh_key",
    )  # fmt: skip


def test_page__ssh_database_backup_hook__output_path_shown_on_the_host(
    manager_client, make_upgrade, staging, host, settings
):
    # Given a database backup hook that runs pg_dump on a host
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DB_BACKUP, mode=HookMode.SSH, host=host,
        argv=["pg_dump", "-Fc", "-f", "{output_path}", "mycelia"],
    )  # fmt: skip

    # When a release manager opens an upgrade of staging
    here = _runs_here(manager_client, make_upgrade("minor"))

    # Then the backup step names the path the dump gets on that host, and the host
    assert (
        "pg_dump -Fc -f '/var/tmp/mycelia-run-…/db-backup-<time>.dump' mycelia "
        "on deploy@app1.example:2222, saved among the backups"
    ) in here
    # And no folder of the worker's, which the host does not have
    shown = "\n".join(here)
    assert str(settings.MEDIA_ROOT) not in shown and str(settings.DATA_DIR) not in shown


def test_page__ssh_hook_given_a_backup__backup_path_shown_on_the_host(
    manager_client, make_upgrade, staging, host
):
    # Given a diagnostics hook on the host that reads the backup it is given
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DIAGNOSE, mode=HookMode.SSH, host=host,
        argv=["pg_restore", "--list", "{backup_path}"],
    )  # fmt: skip

    here = _runs_here(manager_client, make_upgrade("minor"))

    # Then it names where the backup will be put on the host before it runs
    assert (
        "pg_restore --list '/var/tmp/mycelia-run-…/<the backup you choose>' "
        "on deploy@app1.example:2222"
    ) in here


def test_page__local_database_backup_hook__output_path_in_the_workers_scratch_folder(
    manager_client, make_upgrade, staging, settings
):
    # Given a database backup hook that runs on the worker
    EnvironmentOperation.objects.create(
        environment=staging, operation=Operation.DB_BACKUP,
        argv=["pg_dump", "-Fc", "-f", "{output_path}", "mycelia"],
    )  # fmt: skip
    upgrade = make_upgrade("minor")

    here = _runs_here(manager_client, upgrade)

    # Then the path is the worker's scratch folder the hook really writes to, not a host's
    folder = f"{settings.DATA_DIR}/scratch/upgrade-{upgrade.pk}-run-…"
    assert any(f"{folder}/db-backup-<time>.dump" in text for text in here), here
    assert not any("/var/tmp/mycelia-run-" in text for text in here)
