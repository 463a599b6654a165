"""The upgrades app's services: the checklist and lifecycle, and the runs the workers carry out.

Views, commands and tasks import `from upgrades import services` and call `services.<name>`.
"""

from __future__ import annotations

from upgrades.services.checklist import (
    Conflict,
    InvalidInput,
    NotAllowed,
    UpgradeError,
    open_required_steps,
    phase_skip,
    status_move,
    step_complete,
    step_reopen,
    step_skip,
    step_update,
    upgrade_create,
    upgrade_decide,
    upgrade_set_risk,
)
from upgrades.services.environments import environment_flags_sync
from upgrades.services.freezes import freeze_create, freeze_end
from upgrades.services.lifecycle import (
    Acted,
    Refused,
    upgrade_act,
    upgrade_clone,
    upgrade_edit,
    upgrade_transition,
    upgrade_verdicts,
)
from upgrades.services.monitoring import (
    monitoring_baseline_take,
    monitoring_due,
    monitoring_sample_take,
    monitoring_window_end,
    monitoring_window_extend,
    monitoring_window_open,
    monitoring_windows_close_expired,
)
from upgrades.services.playbook import playbook_seed
from upgrades.services.reviews import (
    follow_up_add,
    review_complete,
    review_update,
    reviews_remind,
    reviews_schedule,
)
from upgrades.services.runs import (
    action_request,
    check_run_cancel,
    check_run_execute,
    check_run_log,
    check_run_request,
    check_run_resolve,
    check_run_target_read,
    check_runs_sweep,
    phase_checks_request,
)

__all__ = [
    "Conflict",
    "InvalidInput",
    "NotAllowed",
    "UpgradeError",
    "action_request",
    "check_run_cancel",
    "check_run_execute",
    "check_run_log",
    "check_run_request",
    "check_run_resolve",
    "check_run_target_read",
    "check_runs_sweep",
    "environment_flags_sync",
    "follow_up_add",
    "review_complete",
    "review_update",
    "reviews_remind",
    "reviews_schedule",
    "monitoring_baseline_take",
    "monitoring_due",
    "monitoring_sample_take",
    "monitoring_window_end",
    "monitoring_window_extend",
    "monitoring_window_open",
    "monitoring_windows_close_expired",
    "open_required_steps",
    "phase_checks_request",
    "playbook_seed",
    "step_complete",
    "step_reopen",
    "step_skip",
    "step_update",
    "upgrade_create",
    "upgrade_decide",
    "upgrade_set_risk",
    "upgrade_transition",
    "Acted",
    "Refused",
    "freeze_create",
    "freeze_end",
    "phase_skip",
    "status_move",
    "upgrade_act",
    "upgrade_clone",
    "upgrade_edit",
    "upgrade_verdicts",
]
