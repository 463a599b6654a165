"""Every action in every state, through the API: what GET /api/upgrades/{id} lists in
`allowed_actions` is carried out (200, 202 with a run, 201 for a clone), and everything else is
refused with 409, the table's sentence and the same `allowed_actions`.

The upgrades are built through the services; where the point is only the table (a deploy or a
rollback whose outcome a worker would record), `deploy_state`/`rollback_state` are set on the
row, as a worker's finished run would leave them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from django.db import transaction

from upgrades import services
from upgrades.models import (
    Action,
    Artifact,
    ArtifactKind,
    DeployState,
    RollbackState,
    StepStatus,
    Upgrade,
    UpgradeStatus,
)

pytestmark = pytest.mark.django_db

WINDOW = datetime(2026, 5, 1, 14, 30, tzinfo=UTC)
RUN_ACTIONS = {"deploy", "retry", "roll_back", "restore_database", "back_up"}
REASON = "Table test: every action in every state"


class Build:
    """Upgrades in a given state, made by the owner (a release manager) through the services."""

    def __init__(self, make_upgrade: Callable[..., Upgrade], owner) -> None:
        self.make_upgrade, self.owner = make_upgrade, owner

    def act(self, upgrade: Upgrade, action: str, **kwargs) -> Upgrade:
        services.upgrade_act(upgrade=upgrade, action=action, by=self.owner, **kwargs)
        return Upgrade.objects.get(pk=upgrade.pk)

    def row(self, upgrade: Upgrade, **fields) -> Upgrade:
        Upgrade.objects.filter(pk=upgrade.pk).update(**fields)
        return Upgrade.objects.get(pk=upgrade.pk)

    # --- the states ---------------------------------------------------------------------------

    def draft(self, kind: str = "minor") -> Upgrade:
        return self.make_upgrade(kind, window_start=WINDOW, window_minutes=30)

    def draft_major(self) -> Upgrade:  # a go/no-go is pending
        return self.draft("major")

    def scheduled(self) -> Upgrade:
        return self.act(self.draft(), "schedule")

    def in_progress(self, kind: str = "minor") -> Upgrade:
        return self.act(self.draft(kind), "start", override_reason=REASON)

    def in_progress_deployed(self) -> Upgrade:
        return self.row(self.in_progress(), deploy_state=DeployState.PASSED)

    def in_progress_deploy_failed(self) -> Upgrade:
        return self.row(self.in_progress(), deploy_state=DeployState.FAILED)

    def in_progress_deploy_failed_with_backup(self) -> Upgrade:
        upgrade = self.in_progress_deploy_failed()
        Artifact.objects.create(
            upgrade=upgrade, kind=ArtifactKind.DATABASE_BACKUP, name="db.dump",
            path="/tmp/db.dump", sha256="0" * 64, size_bytes=1,
        )  # fmt: skip
        return upgrade

    def in_progress_rollback_failed(self) -> Upgrade:
        return self.row(self.in_progress_deploy_failed(), rollback_state=RollbackState.FAILED)

    def monitoring(self) -> Upgrade:
        return self.act(self.in_progress_deployed(), "begin_monitoring")

    def monitoring_window_ended(self) -> Upgrade:
        upgrade = self.act(self.monitoring(), "end_monitoring", reason=REASON)
        for phase in upgrade.phases.all():
            if phase.steps.filter(status=StepStatus.OPEN, required=True).exists():
                services.phase_skip(phase=phase, by=self.owner, reason=REASON)
        return upgrade

    def completed(self) -> Upgrade:
        return self.act(self.monitoring_window_ended(), "complete")

    def rolled_back(self) -> Upgrade:
        return self.act(self.in_progress_rollback_failed(), "resolved_by_hand", reason=REASON)

    def failed(self) -> Upgrade:
        return self.act(self.in_progress(), "mark_failed", reason=REASON)

    def emergency_failed(self) -> Upgrade:  # its go/no-go is still owed afterwards
        return self.act(self.in_progress("emergency"), "mark_failed", reason=REASON)

    def cancelled(self) -> Upgrade:
        return self.act(self.draft(), "cancel", reason=REASON)


VARIANTS = {
    "draft": UpgradeStatus.DRAFT,
    "draft_major": UpgradeStatus.DRAFT,
    "scheduled": UpgradeStatus.SCHEDULED,
    "in_progress": UpgradeStatus.IN_PROGRESS,
    "in_progress_deployed": UpgradeStatus.IN_PROGRESS,
    "in_progress_deploy_failed": UpgradeStatus.IN_PROGRESS,
    "in_progress_deploy_failed_with_backup": UpgradeStatus.IN_PROGRESS,
    "in_progress_rollback_failed": UpgradeStatus.IN_PROGRESS,
    "monitoring": UpgradeStatus.MONITORING,
    "monitoring_window_ended": UpgradeStatus.MONITORING,
    "completed": UpgradeStatus.COMPLETED,
    "rolled_back": UpgradeStatus.ROLLED_BACK,
    "failed": UpgradeStatus.FAILED,
    "emergency_failed": UpgradeStatus.FAILED,
    "cancelled": UpgradeStatus.CANCELLED,
}


@pytest.fixture
def build(make_upgrade, manager) -> Build:
    return Build(make_upgrade, manager)


def _body(upgrade: Upgrade) -> dict:
    backup = upgrade.artifacts.filter(kind=ArtifactKind.DATABASE_BACKUP).first()
    return {
        "reason": REASON,
        "override_reason": REASON,
        "decision": "go",
        "hours": 1,
        "backup_id": backup.pk if backup else None,
    }


def _try(api, upgrade: Upgrade, action: str) -> str:
    """Take `action` through the API; "" when the answer matches `allowed_actions`, else what
    went wrong."""
    path = f"/api/upgrades/{upgrade.pk}"
    listed = api.get(path).json()["allowed_actions"]
    if action == Action.EDIT:
        response = api.patch(path, {"title": "Edited by the table test"})
    else:
        response = api.post(f"{path}/actions/{action}", _body(upgrade))
    body = response.json()
    if action in listed:
        expected = 201 if action == Action.CLONE else 202 if action in RUN_ACTIONS else 200
        if response.status_code != expected:
            return f"listed, but answered {response.status_code}: {body}"
        if action != Action.EDIT and (body["run"] is not None) != (action in RUN_ACTIONS):
            return f"listed, answered {expected}, but run is {body['run']}"
        return ""
    if response.status_code != 409:
        return f"not listed ({listed}), but answered {response.status_code}: {body}"
    if not body["error"] or body["allowed_actions"] != listed:
        return f"409 without the sentence or with other allowed_actions: {body}"
    if Upgrade.objects.get(pk=upgrade.pk).status != upgrade.status:
        return "refused, yet the status moved"
    return ""


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_action_in_state__allowed_is_done_refused_is_409(variant, build, second_manager_api):
    # Given an upgrade in this state, owned by another release manager (so the go/no-go is
    # someone else's to give)
    upgrade = getattr(build, variant)()
    problems = {}
    for action in Action.values:
        # When the caller takes each action on the upgrade as it is (undone after each try)
        with transaction.atomic():
            problem = _try(second_manager_api, upgrade, action)
            transaction.set_rollback(True)
        if problem:
            problems[action] = problem
    # Then each is done exactly when GET listed it, and refused with the table's words otherwise
    assert problems == {}


def test_variants__all_eight_states_each_action_listed_in_one_and_missing_in_another(
    build, second_manager_api
):
    # The table test above means something only if the variants reach every state, and every
    # action is allowed in some of them and refused in others.
    assert set(VARIANTS.values()) == set(UpgradeStatus.values)
    allowed_somewhere: set[str] = set()
    refused_somewhere: set[str] = set()
    for variant, status in VARIANTS.items():
        upgrade = getattr(build, variant)()
        assert upgrade.status == status, variant
        body = second_manager_api.get(f"/api/upgrades/{upgrade.pk}").json()
        assert body["status"] == status
        allowed_somewhere |= set(body["allowed_actions"])
        refused_somewhere |= set(Action.values) - set(body["allowed_actions"])
    assert allowed_somewhere == set(Action.values)
    assert refused_somewhere == set(Action.values)
