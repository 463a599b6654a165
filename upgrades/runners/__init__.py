"""The checks and actions that workers carry out against an environment, free of Django.

Each function does one outside thing, never raises for an outside failure, and returns a
small frozen result: an ``outcome`` (one of OUTCOMES), the measured values, and a one-line
``reason`` a release manager can read. Tasks turn these into rows; nothing here touches one.
"""

from __future__ import annotations

from upgrades.runners._common import BODY_CAP_BYTES, KILL_GRACE_S, OUTCOMES, Outcome
from upgrades.runners.archive import ArchiveResult, config_archive
from upgrades.runners.commands import (
    RUN_KEY_VARIABLE,
    RUN_MARK_VARIABLE,
    CommandResult,
    command_run,
    run_processes_kill,
)
from upgrades.runners.evaluate import (
    METRICS,
    ConditionError,
    SloEvaluation,
    StatusEvaluation,
    condition_holds,
    describe_condition,
    json_path_get,
    slo_evaluate,
    status_json_evaluate,
)
from upgrades.runners.http import HttpProbeResult, WebhookResult, http_probe, webhook_post
from upgrades.runners.ssh import ssh_command_run
from upgrades.runners.ssh_connect import SshSetupProblem, SshTarget
from upgrades.runners.ssh_files import RemoteFetch, RemoteUpload, remote_scratch_path

__all__ = [
    "BODY_CAP_BYTES",
    "KILL_GRACE_S",
    "METRICS",
    "OUTCOMES",
    "RUN_KEY_VARIABLE",
    "RUN_MARK_VARIABLE",
    "ArchiveResult",
    "CommandResult",
    "ConditionError",
    "HttpProbeResult",
    "Outcome",
    "RemoteFetch",
    "RemoteUpload",
    "SloEvaluation",
    "SshSetupProblem",
    "SshTarget",
    "StatusEvaluation",
    "WebhookResult",
    "command_run",
    "condition_holds",
    "config_archive",
    "describe_condition",
    "http_probe",
    "json_path_get",
    "remote_scratch_path",
    "run_processes_kill",
    "slo_evaluate",
    "ssh_command_run",
    "status_json_evaluate",
    "webhook_post",
]
