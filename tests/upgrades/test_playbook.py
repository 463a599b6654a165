"""The seeded playbook: every procedure that applies to a type, in the playbook's order."""

from __future__ import annotations

import pytest

from upgrades.models import PlaybookTemplate, StepKind
from upgrades.services import playbook_seed


def _phase_titles(upgrade_type: str, emergency_kind: str = "") -> list[str]:
    template = PlaybookTemplate.objects.get(
        upgrade_type=upgrade_type, emergency_kind=emergency_kind
    )
    return list(template.phases.values_list("title", flat=True))


def test_playbook_seed__fresh_database__loads_one_template_per_type_and_emergency_kind(db):
    assert playbook_seed() == 5
    assert PlaybookTemplate.objects.count() == 5


def test_playbook_seed__run_twice__keeps_admin_edits(db):
    playbook_seed()
    PlaybookTemplate.objects.filter(upgrade_type="minor").update(name="Edited by staff")
    assert playbook_seed() == 0
    assert PlaybookTemplate.objects.get(upgrade_type="minor").name == "Edited by staff"
    assert playbook_seed(reset=True) == 5
    assert PlaybookTemplate.objects.get(upgrade_type="minor").name == "Minor Version Upgrade"


def test_feature_flag_template__phases__follow_the_four_step_process(playbook):
    assert _phase_titles("feature_flag") == [
        "Pre-Upgrade Checklist",
        "Step 1: Preparation",
        "Step 2: Deployment",
        "Step 3: Monitoring",
        "Step 4: Completion",
        "Documentation Updates",
        "Post-Upgrade Review",
    ]


def test_minor_and_major_templates__phases__carry_their_pre_upgrade_upgrade_and_post_steps(
    playbook,
):
    minor = _phase_titles("minor")
    assert minor[:5] == [
        "Pre-Upgrade Checklist",
        "Pre-Upgrade",
        "Pre-Upgrade Testing",
        "Upgrade Process",
        "Post-Upgrade",
    ]
    major = _phase_titles("major")
    assert major[:5] == [
        "Pre-Upgrade Checklist",
        "Pre-Upgrade Planning",
        "Pre-Upgrade Testing",
        "Upgrade Process",
        "Post-Upgrade Verification",
    ]
    for titles in (minor, major):
        assert titles[-2:] == ["Documentation Updates", "Post-Upgrade Review"]


@pytest.mark.parametrize(
    ("kind", "phases"),
    [
        ("security_patch", ["Immediate Response", "Emergency Deployment", "Post-Emergency"]),
        ("critical_bug_fix", ["Assessment", "Emergency Fix"]),
    ],
)
def test_emergency_templates__phases__follow_response_deployment_post_emergency(
    playbook, kind, phases
):
    titles = _phase_titles("emergency", kind)
    assert titles[1 : 1 + len(phases)] == phases


def test_pre_upgrade_checklist__steps__keep_the_playbook_wording_commands_and_kinds(playbook):
    phase = PlaybookTemplate.objects.get(upgrade_type="minor").phases.get(order=1)
    steps = list(phase.steps.values_list("section", "title", "commands", "kind"))
    assert steps[0] == (
        "1. System Health Check",
        "Run diagnostics",
        "pnpm run diagnose",
        StepKind.COMMAND,
    )
    assert steps[1] == (
        "1. System Health Check",
        "Check SLO status",
        "pnpm run ops:lint",
        StepKind.SLO,
    )
    assert steps[2][1:] == (
        "Verify system status",
        "curl -f http://localhost:3000/ops/status.json",
        StepKind.STATUS_JSON,
    )
    sections = [s[0] for s in steps]
    assert sections.index("2. Backup Procedures") < sections.index("3. Stakeholder Notification")
    assert sections.index("3. Stakeholder Notification") < sections.index("4. Testing Environment")


def test_feature_flag_template__enable_step__carries_cli_and_api_commands(playbook):
    template = PlaybookTemplate.objects.get(upgrade_type="feature_flag")
    step = template.phases.get(title="Step 2: Deployment").steps.get(title="Enable feature flag")
    assert "--enable feature-name" in step.commands
    assert "POST http://localhost:3000/api/feature-flags/enable" in step.commands
    assert "--disable feature-name" in template.rollback_procedure


def test_backups__feature_flag_upgrade__are_optional_but_required_for_minor(playbook):
    def backup_required(upgrade_type: str) -> set[bool]:
        template = PlaybookTemplate.objects.get(upgrade_type=upgrade_type)
        return set(
            template.phases.get(order=1)
            .steps.filter(section="2. Backup Procedures")
            .values_list("required", flat=True)
        )

    assert backup_required("feature_flag") == {False}
    assert backup_required("minor") == {True}
