"""An environment's hosts and its SSH command hooks on the set-up pages, against a real OpenSSH
server on a loopback port: added through the forms, tested with the hook's "test" button (the
worker's task body run here), run by the executors as a deploy would, and named on the upgrade
page's "what runs here"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.upgrades.ssh_server import SshServer, process_gone, sshd_running
from upgrades.models import EnvironmentHost, EnvironmentOperation, HookTest, SetupEvent
from upgrades.services import hook_tests, hooks, hosts, setup
from upgrades.services.hooks import RunControl

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    with sshd_running(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _host_form(server: SshServer, **changes: str) -> dict[str, str]:
    return {
        "new-host-address": "127.0.0.1",
        "new-host-port": str(server.port),
        "new-host-user": server.user,
        "new-host-host_key": f"[127.0.0.1]:{server.port} {server.host_key_line}",
        "new-host-private_key_file": str(server.client_key),
        "new-host-working_directory": "",
        **changes,
    }


def _host(environment, server: SshServer, by) -> EnvironmentHost:
    return hosts.host_save(environment=environment, host=None, by=by, data={
        "address": "127.0.0.1", "port": server.port, "user": server.user,
        "host_key": server.host_key_line, "private_key_file": str(server.client_key),
    })  # fmt: skip


def test_setup__host_and_ssh_hook_added__test_button_runs_it_on_the_host(
    admin_client, staging, sshd, tmp_path
):
    # Given an administrator adds a host (its key pasted as a known_hosts line)
    response = admin_client.post(reverse("setup:host_create", args=[staging.pk]), _host_form(sshd))
    assert response.status_code == 302, response.content.decode()[:2000]
    host = EnvironmentHost.objects.get(environment=staging)
    assert host.host_key == " ".join(sshd.host_key_line.split()[:2])  # kept as "type base64"

    # And an SSH hook that runs on it
    response = admin_client.post(reverse("setup:hook_create", args=[staging.pk]), {
        "operation": "diagnose", "mode": "ssh", "host": str(host.pk), "timeout_seconds": "30",
        "argv": 'sh\n-c\necho "dry run: $MYCELIA_DRY_RUN, version $0, in $(pwd)"\n{version}',
    })  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    hook = EnvironmentOperation.objects.get(environment=staging)
    assert hook.mode == "ssh" and hook.host == host

    # Then the environment page lists the host, its key's fingerprint, where the key is read
    page = admin_client.get(reverse("setup:environment", args=[staging.pk])).content.decode()
    assert host.login in page
    assert hosts.host_fingerprint(host) in page
    assert f'on <strong data-role="hook-host">{host.login}</strong>' in page
    assert "PRIVATE KEY" not in page

    # When the administrator presses "test" and a worker carries it out
    response = admin_client.post(reverse("setup:hook_test", args=[hook.pk]),
                                 HTTP_HX_REQUEST="true")  # fmt: skip
    assert response.status_code == 200
    test = HookTest.objects.get(hook=hook)
    assert hook_tests.hook_test_execute(test_id=test.pk) == "passed"

    # Then the result shows the command's output from the host, with the dry-run signal
    shown = admin_client.get(reverse("setup:hook_test_detail", args=[test.pk])).content.decode()
    assert "dry run: 1, version 0.0.0-dry-run, in /" in shown
    assert f"on {host.login}" in shown
    assert set(SetupEvent.objects.filter(environment=staging).values_list("label", "verb")) >= {
        (f"{staging.name} · host {host.login}", "created"),
    }


def test_setup__host_with_a_changed_key__hook_test_fails_naming_the_change(
    staging, administrator, sshd
):
    host = _host(staging, sshd, administrator)
    host.host_key = sshd.other_host_key_line()
    host.save()
    hook = setup.hook_save(environment=staging, hook=None, by=administrator, data={
        "operation": "diagnose", "mode": "ssh", "host": host, "argv": ["true"],
    })  # fmt: skip
    test = HookTest.objects.create(hook=hook)

    assert hook_tests.hook_test_execute(test_id=test.pk) == "error"
    test.refresh_from_db()
    assert "has changed" in test.reason


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"new-host-host_key": "hello"}, "host_key", "ssh-ed25519"),
    ({"new-host-private_key_file": "-----BEGIN OPENSSH PRIVATE KEY-----"}, "private_key_file",
     "never stored"),
    ({"new-host-private_key_file": "relative/key"}, "private_key_file", "_FILE"),
    ({"new-host-port": "70000"}, "port", "65535"),
    ({"new-host-address": "bad host; rm"}, "address", "host name or IP"),
    ({"new-host-working_directory": "srv"}, "working_directory", "absolute path"),
])  # fmt: skip
def test_host_create__bad_input__400_naming_the_problem(
    admin_client, staging, sshd, changes, field, words
):
    response = admin_client.post(
        reverse("setup:host_create", args=[staging.pk]), _host_form(sshd, **changes)
    )

    assert response.status_code == 400
    assert words in response.content.decode()
    assert not EnvironmentHost.objects.exists()


def test_hook_save__ssh_without_a_host__400_naming_the_field(staging, administrator):
    with pytest.raises(setup.BadInput) as refusal:
        setup.hook_save(environment=staging, hook=None, by=administrator, data={
            "operation": "diagnose", "mode": "ssh", "argv": ["true"],
        })  # fmt: skip
    assert refusal.value.field == "host" and refusal.value.status == 400


def test_host_delete__used_by_a_hook__refused__then_removed(admin_client, staging, sshd,
                                                            administrator):  # fmt: skip
    host = _host(staging, sshd, administrator)
    hook = setup.hook_save(environment=staging, hook=None, by=administrator, data={
        "operation": "diagnose", "mode": "ssh", "host": host.pk, "argv": ["true"],
    })  # fmt: skip
    url = reverse("setup:host_delete", args=[host.pk])

    admin_client.post(url)
    assert EnvironmentHost.objects.filter(pk=host.pk).exists()

    setup.hook_delete(hook=hook, by=administrator)
    assert admin_client.post(url).status_code == 302
    assert not EnvironmentHost.objects.filter(pk=host.pk).exists()


def test_host_edit__key_changed__saved_with_history_and_no_key_contents(
    admin_client, staging, sshd, administrator
):
    host = _host(staging, sshd, administrator)
    new_key = sshd.other_host_key_line()
    data = {f"host-{host.pk}-{name}": value for name, value in {
        "address": "127.0.0.1", "port": str(sshd.port), "user": sshd.user,
        "host_key": new_key, "private_key_file": "MYCELIA_SSH_KEY_FILE",
        "working_directory": "/srv",
    }.items()}  # fmt: skip

    response = admin_client.post(reverse("setup:host", args=[host.pk]), data)

    assert response.status_code == 302
    host.refresh_from_db()
    assert host.private_key_file == "MYCELIA_SSH_KEY_FILE" and host.working_directory == "/srv"
    assert SetupEvent.objects.filter(verb="changed", label__contains="host").count() == 3


def test_run_hook__ssh_hook__runs_on_the_host_and_stops_on_request(staging, administrator, sshd):
    # Given a deploy hook on the host that says its version and waits
    host = _host(staging, sshd, administrator)
    setup.hook_save(environment=staging, hook=None, by=administrator, data={
        "operation": "deploy", "mode": "ssh", "host": host, "timeout_seconds": 60,
        "argv": ["sh", "-c", 'echo "deploying $0 key=$MYCELIA_RUN_KEY pid=$$"; sleep 1000',
                 "{version}"],
    })  # fmt: skip
    control = RunControl(key="run-1-attempt-1")
    seen: list[str] = []

    def on_output(text: str) -> None:
        seen.append(text)
        control.stop.set()  # cancel as soon as it speaks

    # When a deploy runs it and is cancelled
    outcome, _ = hooks._run_hook(
        staging, "deploy", on_output=on_output, values={"version": "2.0.0"}, control=control
    )

    # Then the output came from the host and the run is cancelled
    assert outcome.status == "cancelled", outcome.reason
    assert outcome.output.startswith("deploying 2.0.0 key=run-1-attempt-1 pid=")
    assert f"on {host.login}" in outcome.reason
    # And the command is gone on the host (cancelled before its group was named, even)
    assert process_gone(int(outcome.output.split("pid=")[1]))


def test_step_runs_here__ssh_hook__names_user_host_and_port(
    staging, administrator, sshd, make_upgrade
):
    from upgrades.models import StepKind
    from upgrades.selectors import step_runs_here

    host = _host(staging, sshd, administrator)
    setup.hook_save(environment=staging, hook=None, by=administrator, data={
        "operation": "diagnose", "mode": "ssh", "host": host, "argv": ["pnpm", "run", "diagnose"],
    })  # fmt: skip
    upgrade = make_upgrade()
    step = upgrade.steps.filter(kind=StepKind.COMMAND, operation="diagnose").first()
    assert step is not None

    assert step_runs_here(step, staging, upgrade) == f"pnpm run diagnose on {host.login}"
