"""A real Celery worker killed while an SSH command hook runs on a host (a real OpenSSH server on a
loopback port, tests/upgrades/ssh_server.py): nothing the hook started lives on on the host, and
the run, a deploy that changes the target, ends "interrupted — outcome unknown", never run again.

The hook ignores SIGHUP and SIGTERM and starts two writers that ignore them too, each adding a
line to a ledger every 0.1 s: a grandchild in its process group, and one that leaves the group
with setsid. The host is this machine, so its processes are read from /proc.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import close_steps
from tests.integration.conftest import wait_for
from tests.upgrades.ssh_server import sshd_running
from tests.upgrades.test_ssh import STUBBORN_COMMAND, marked_processes
from upgrades import services
from upgrades.models import (
    CheckRun,
    DeployState,
    EnvironmentHost,
    EnvironmentOperation,
    HookMode,
    Operation,
    RunStatus,
    Upgrade,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    with sshd_running(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def test_ssh_hook__worker_killed_mid_deploy__nothing_left_on_the_host_and_outcome_unknown(
    worker_factory, sshd, staging, make_upgrade, manager, tmp_path
):
    # Given staging's deploy hook runs on a host: it notes its start, then its writers run on
    ledger = tmp_path / "ledger"
    marker = f"mycelia-ssh-fault-{tmp_path.name}"
    host = EnvironmentHost.objects.create(
        environment=staging, address="127.0.0.1", port=sshd.port, user=sshd.user,
        host_key=sshd.host_key_line, private_key_file=str(sshd.client_key),
    )  # fmt: skip
    EnvironmentOperation.objects.update_or_create(
        environment=staging, operation=Operation.DEPLOY,
        defaults={"mode": HookMode.SSH, "host": host, "timeout_seconds": 120, "argv": [
            "sh", "-c", f'echo "start $MYCELIA_RUN_KEY" >> "$1"; {STUBBORN_COMMAND}', marker,
            str(ledger),
        ]},
    )  # fmt: skip
    worker = worker_factory().start()
    upgrade = make_upgrade("minor")
    close_steps(upgrade, manager, stages=("pre",))
    upgrade = services.upgrade_act(upgrade=upgrade, action="start", by=manager).upgrade
    run = services.upgrade_act(upgrade=upgrade, action="deploy", by=manager).run

    # And the deploy is under way on the host, both writers writing
    wait_for(lambda: ledger.exists() and {"grandchild", "escapee"} <= set(
        ledger.read_text().split()), timeout=60, every=0.05)  # fmt: skip
    run = CheckRun.objects.get(pk=run.pk)
    assert run.status == RunStatus.RUNNING
    assert len(marked_processes(marker, run.process_mark)) >= 3

    # When the worker's whole process group is killed, as a crash would
    worker.kill()

    # Then every process of the run on the host is gone soon (the connection dropped), and the
    # ledger stops growing
    wait_for(lambda: not marked_processes(marker, run.process_mark), timeout=20, every=0.05)
    size = ledger.stat().st_size

    # And the sweep, once the heartbeat is stale, settles the deploy as outcome unknown
    services.check_runs_sweep(now=timezone.now() + timedelta(minutes=10))
    run.refresh_from_db()
    assert run.status == RunStatus.INTERRUPTED, run.reason
    assert "Outcome unknown" in run.reason
    assert Upgrade.objects.get(pk=run.upgrade_id).deploy_state == DeployState.UNKNOWN

    # And it is never run again by itself: a message delivered again finds nothing to claim
    assert "not claimed" in services.check_run_execute(run_id=run.pk)
    assert ledger.read_text().split().count("start") == 1
    assert ledger.stat().st_size == size
    assert not marked_processes(marker, run.process_mark)
