"""The upgrade playbook (shared/upgrade-playbook.md) as data, in its own order and wording.

`playbook_seed` in services.py loads this into PlaybookTemplate rows, which administrators can then
edit on the set-up pages. Each step is (section, title, commands, kind, required); a phase is
(title, stage, steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from upgrades.models import EmergencyKind, Operation, PhaseStage, StepKind, UpgradeType

PRE, DEPLOY, POST = PhaseStage.PRE, PhaseStage.DEPLOY, PhaseStage.POST
MANUAL, HTTP, STATUS, CMD, SLO, BACKUP, DEPLOY = (
    StepKind.MANUAL,
    StepKind.HTTP_HEALTH,
    StepKind.STATUS_JSON,
    StepKind.COMMAND,
    StepKind.SLO,
    StepKind.BACKUP,
    StepKind.DEPLOY,
)

# The playbook's commands, and the environment operation each one stands for.
OPERATION_BY_COMMAND = {
    "pnpm run diagnose": Operation.DIAGNOSE,
    "pnpm run ops:lint": Operation.SLO_CHECK,
    "pnpm run ops:tail": Operation.LOG_TAIL,
    "pnpm test": Operation.UNIT_TESTS,
    "pnpm test:integration": Operation.INTEGRATION_TESTS,
    "# Run integration tests": Operation.INTEGRATION_TESTS,
    "pnpm run sec:scan": Operation.SECURITY_SCAN,
    "pnpm --filter @mycelia/redemption start -- --test-flow": Operation.TEST_FLOW,
}


@dataclass(frozen=True)
class Step:
    section: str
    title: str
    commands: str = ""
    kind: str = MANUAL
    required: bool = True
    description: str = ""
    operation: str = ""
    check: dict = field(default_factory=dict)

    @property
    def resolved_operation(self) -> str:
        if self.operation or self.kind not in (CMD, BACKUP, DEPLOY):
            return self.operation
        return OPERATION_BY_COMMAND.get(self.commands, "")


@dataclass(frozen=True)
class Phase:
    title: str
    stage: str
    steps: list[Step] = field(default_factory=list)


def _pre_upgrade_checklist(*, backups_required: bool, all_required: bool = True) -> Phase:
    req = all_required
    return Phase(
        "Pre-Upgrade Checklist",
        PRE,
        [
            Step("1. System Health Check", "Run diagnostics", "pnpm run diagnose", CMD, req),
            Step("1. System Health Check", "Check SLO status", "pnpm run ops:lint", SLO, req),
            Step(
                "1. System Health Check",
                "Verify system status",
                "curl -f http://localhost:3000/ops/status.json",
                STATUS,
                req,
            ),
            Step(
                "2. Backup Procedures",
                "Backup database",
                "# (Implementation depends on database system)",
                BACKUP,
                backups_required,
                operation=Operation.DB_BACKUP,
            ),
            Step(
                "2. Backup Procedures",
                "Backup configuration",
                "cp -r config/ config-backup-$(date +%Y%m%d-%H%M%S)/",
                BACKUP,
                backups_required,
                operation="config_archive",
            ),
            Step(
                "2. Backup Procedures",
                "Backup logs",
                "pnpm run ops:tail > logs-backup-$(date +%Y%m%d-%H%M%S).json",
                BACKUP,
                backups_required,
                operation=Operation.LOG_TAIL,
            ),
            Step("3. Stakeholder Notification", "Internal: Notify team members", required=req),
            Step("3. Stakeholder Notification", "External: Update status page", required=req),
            Step("3. Stakeholder Notification", "Users: Send upgrade notifications", required=req),
            Step(
                "4. Testing Environment", "Deploy to staging", "# Deploy to staging", required=req
            ),
            Step(
                "4. Testing Environment",
                "Run integration tests",
                "# Run integration tests",
                CMD,
                req,
            ),
            Step(
                "4. Testing Environment",
                "Verify feature functionality",
                "# Verify feature functionality",
                required=req,
            ),
        ],
    )


def _pre_upgrade_testing() -> Phase:
    section = "Testing Procedures · 1. Pre-Upgrade Testing"
    return Phase(
        "Pre-Upgrade Testing",
        PRE,
        [
            Step(section, "Run unit tests", "pnpm test", CMD),
            Step(section, "Run integration tests", "pnpm test:integration", CMD),
            Step(section, "Run security tests", "pnpm run sec:scan", CMD),
        ],
    )


def _upgrade_monitoring() -> Phase:
    rt, hc, ui = (
        "1. Real-time Monitoring",
        "2. Health Checks",
        "3. User Impact Monitoring",
    )
    return Phase(
        "Upgrade Monitoring",
        POST,
        [
            Step(rt, "Monitor system metrics", "pnpm run ops:tail", CMD),
            Step(rt, "Check SLO compliance", "pnpm run ops:lint", SLO),
            Step(rt, "Monitor error rates", "# (Implementation depends on monitoring system)"),
            Step(hc, "System health", "curl -f http://localhost:3000/health", HTTP),
            Step(hc, "Service status", "curl -f http://localhost:3000/ops/status.json", STATUS),
            Step(hc, "Diagnostics", "pnpm run diagnose", CMD),
            Step(ui, "Error rates: Monitor application errors"),
            Step(ui, "Performance: Check response times"),
            Step(ui, "User feedback: Monitor user reports"),
            Step(ui, "SLO compliance: Verify service level objectives"),
        ],
    )


def _post_upgrade_testing() -> Phase:
    post, uat = "2. Post-Upgrade Testing", "3. User Acceptance Testing"
    return Phase(
        "Post-Upgrade Testing",
        POST,
        [
            Step(post, "Verify system functionality", "pnpm run diagnose", CMD),
            Step(
                post,
                "Test critical paths",
                "pnpm --filter @mycelia/redemption start -- --test-flow",
                CMD,
            ),
            Step(post, "Check SLO compliance", "pnpm run ops:lint", SLO),
            Step(uat, "Functionality: Verify all features work"),
            Step(uat, "Performance: Check response times"),
            Step(uat, "Security: Verify security measures"),
            Step(uat, "Usability: Test user experience"),
        ],
    )


def _documentation_updates() -> Phase:
    tech, user, internal = (
        "1. Technical Documentation",
        "2. User Documentation",
        "3. Internal Documentation",
    )
    return Phase(
        "Documentation Updates",
        POST,
        [
            Step(tech, "API Changes: Update API documentation"),
            Step(tech, "Configuration: Update configuration guides"),
            Step(tech, "Deployment: Update deployment procedures"),
            Step(tech, "Monitoring: Update monitoring procedures"),
            Step(user, "User Guides: Update user guides"),
            Step(user, "FAQ: Update frequently asked questions"),
            Step(user, "Tutorials: Update tutorials"),
            Step(user, "Release Notes: Publish release notes"),
            Step(internal, "Runbooks: Update operational runbooks"),
            Step(internal, "Procedures: Update upgrade procedures"),
            Step(internal, "Contacts: Update contact information"),
            Step(internal, "Escalation: Update escalation procedures"),
        ],
    )


def _post_upgrade_review() -> Phase:
    # The reviews fall due after completion: they never block completing the upgrade.
    return Phase(
        "Post-Upgrade Review",
        POST,
        [
            Step(
                "1. Immediate Review (0-24 hours)",
                "Immediate review",
                description="System Health: Verify system stability. User Impact: Assess user "
                "impact. Issues: Document any issues. Lessons Learned: Note lessons learned.",
                required=False,
            ),
            Step(
                "2. Short-term Review (1-7 days)",
                "Short-term review",
                description="Performance: Analyze performance metrics. User Feedback: Review "
                "user feedback. Issues: Resolve any issues. Documentation: Update documentation.",
                required=False,
            ),
            Step(
                "3. Long-term Review (1-4 weeks)",
                "Long-term review",
                description="Success Metrics: Measure success metrics. Process Improvement: "
                "Identify improvements. Training: Update training materials. Procedures: Refine "
                "procedures.",
                required=False,
            ),
        ],
    )


FLAG_CLI_ENABLE = "pnpm --filter @mycelia/feature-flags start -- --enable feature-name"
FLAG_CLI_DISABLE = "pnpm --filter @mycelia/feature-flags start -- --disable feature-name"
FLAG_API_ENABLE = (
    "curl -X POST http://localhost:3000/api/feature-flags/enable \\\n"
    '  -H "Content-Type: application/json" \\\n'
    '  -d \'{"name": "feature-name"}\''
)

FEATURE_FLAG_ROLLBACK = (
    "Feature Flag Rollback\n"
    f"1. Disable problematic feature: {FLAG_CLI_DISABLE}\n"
    "2. Monitor system recovery: pnpm run ops:tail\n"
    "3. Verify system health: pnpm run diagnose"
)
VERSION_ROLLBACK = (
    "Version Rollback\n"
    "Immediate rollback: stop current services, restore previous version, start services.\n"
    "Verification: curl -f http://localhost:3000/health; pnpm run diagnose; pnpm run ops:lint\n\n"
    "Database Rollback\n"
    "Restore database from backup; verify data integrity "
    "(pnpm --filter @mycelia/shared-kernel start -- --verify-data); test critical functionality "
    "(pnpm --filter @mycelia/redemption start -- --test-flow)"
)


@dataclass(frozen=True)
class Template:
    upgrade_type: str
    emergency_kind: str
    name: str
    description: str
    rollback_procedure: str
    phases: list[Phase]


def _feature_flag() -> Template:
    return Template(
        UpgradeType.FEATURE_FLAG,
        "",
        "Feature Flag Upgrade",
        "Enable/disable features without code changes. Risk: Low. "
        "Rollback: Immediate via feature flags.",
        FEATURE_FLAG_ROLLBACK,
        [
            _pre_upgrade_checklist(backups_required=False),
            Phase(
                "Step 1: Preparation",
                PRE,
                [
                    Step("Preparation", "Review feature documentation"),
                    Step("Preparation", "Test in staging environment"),
                    Step("Preparation", "Prepare rollback plan", FLAG_CLI_DISABLE),
                    Step("Preparation", "Notify stakeholders"),
                ],
            ),
            Phase(
                "Step 2: Deployment",
                DEPLOY,
                [
                    # The deploy of a flag upgrade turns the flag on and ticks this step.
                    Step(
                        "1. Enable Feature Flag",
                        "Enable feature flag",
                        f"# Enable feature via CLI\n{FLAG_CLI_ENABLE}\n\n# Or via API\n"
                        f"{FLAG_API_ENABLE}",
                        DEPLOY,
                    ),
                    # "Monitor system health" is judged by /health, not by a command that
                    # passes while the service answers 503.
                    Step("Deployment", "Monitor system health", "pnpm run diagnose", HTTP),
                    Step("2. Monitor Feature", "Check error rates", "pnpm run ops:lint", SLO),
                    Step("Deployment", "Verify functionality"),
                ],
            ),
            Phase(
                "Step 3: Monitoring",
                POST,
                [
                    Step(
                        "2. Monitor Feature",
                        "Monitor for 24 hours",
                        'pnpm run ops:tail | grep "feature-name"',
                    ),
                    Step("Monitoring", "Check SLO compliance", "pnpm run ops:lint", SLO),
                    Step("Monitoring", "Review user feedback"),
                    Step("Monitoring", "Document any issues"),
                ],
            ),
            Phase(
                "Step 4: Completion",
                POST,
                [
                    Step("Completion", "Confirm feature stability"),
                    Step("Completion", "Update documentation"),
                    Step("Completion", "Notify stakeholders"),
                    Step("Completion", "Schedule follow-up review"),
                ],
            ),
            _documentation_updates(),
            _post_upgrade_review(),
        ],
    )


def _minor() -> Template:
    return Template(
        UpgradeType.MINOR,
        "",
        "Minor Version Upgrade",
        "Bug fixes, minor features. Risk: Low-Medium. Rollback: Previous version deployment.",
        VERSION_ROLLBACK,
        [
            _pre_upgrade_checklist(backups_required=True),
            Phase(
                "Pre-Upgrade",
                PRE,
                [
                    Step("Pre-Upgrade", "Check current version", "pnpm list --depth=0"),
                    Step("Pre-Upgrade", "Review changelog", "cat CHANGELOG.md"),
                    Step("Pre-Upgrade", "Run diagnostics", "pnpm run diagnose", CMD),
                ],
            ),
            _pre_upgrade_testing(),
            Phase(
                "Upgrade Process",
                DEPLOY,
                [
                    Step("Upgrade Process", "Update dependencies", "pnpm update"),
                    Step("Upgrade Process", "Build new version", "pnpm run build"),
                    Step("Upgrade Process", "Run tests", "pnpm test", CMD),
                    Step(
                        "Upgrade Process",
                        "Deploy to staging",
                        "# (Implementation depends on deployment system)",
                        DEPLOY,
                        operation=Operation.DEPLOY,
                    ),
                ],
            ),
            Phase(
                "Post-Upgrade",
                POST,
                [
                    Step(
                        "Post-Upgrade",
                        "Verify deployment",
                        "curl -f http://localhost:3000/health",
                        HTTP,
                    ),
                    Step("Post-Upgrade", "Run diagnostics", "pnpm run diagnose", CMD),
                    Step("Post-Upgrade", "Monitor system health", "pnpm run ops:tail", HTTP),
                ],
            ),
            _upgrade_monitoring(),
            _post_upgrade_testing(),
            _documentation_updates(),
            _post_upgrade_review(),
        ],
    )


def _major() -> Template:
    return Template(
        UpgradeType.MAJOR,
        "",
        "Major Version Upgrade",
        "Significant features, breaking changes. Risk: High. "
        "Rollback: Previous version deployment.",
        VERSION_ROLLBACK,
        [
            _pre_upgrade_checklist(backups_required=True),
            Phase(
                "Pre-Upgrade Planning",
                PRE,
                [
                    Step("Pre-Upgrade Planning", "Review breaking changes"),
                    Step("Pre-Upgrade Planning", "Plan migration strategy"),
                    Step("Pre-Upgrade Planning", "Prepare rollback plan"),
                    Step("Pre-Upgrade Planning", "Schedule maintenance window"),
                ],
            ),
            _pre_upgrade_testing(),
            Phase(
                "Upgrade Process",
                DEPLOY,
                [
                    Step(
                        "Upgrade Process",
                        "Stop services",
                        "# (Implementation depends on deployment system)",
                    ),
                    Step(
                        "Upgrade Process",
                        "Backup current version",
                        "cp -r dist/ dist-backup-$(date +%Y%m%d-%H%M%S)/",
                    ),
                    Step(
                        "Upgrade Process",
                        "Deploy new version",
                        "# (Implementation depends on deployment system)",
                        DEPLOY,
                        operation=Operation.DEPLOY,
                    ),
                    Step(
                        "Upgrade Process",
                        "Start services",
                        "# (Implementation depends on deployment system)",
                    ),
                ],
            ),
            Phase(
                "Post-Upgrade Verification",
                POST,
                [
                    Step(
                        "Post-Upgrade Verification",
                        "Verify system health",
                        "curl -f http://localhost:3000/health",
                        HTTP,
                    ),
                    Step("Post-Upgrade Verification", "Run diagnostics", "pnpm run diagnose", CMD),
                    Step(
                        "Post-Upgrade Verification",
                        "Check SLO compliance",
                        "pnpm run ops:lint",
                        SLO,
                    ),
                    Step(
                        "Post-Upgrade Verification",
                        "Test critical paths",
                        "pnpm --filter @mycelia/redemption start -- --test-flow",
                        CMD,
                    ),
                ],
            ),
            _upgrade_monitoring(),
            _post_upgrade_testing(),
            _documentation_updates(),
            _post_upgrade_review(),
        ],
    )


def _security_patch() -> Template:
    return Template(
        UpgradeType.EMERGENCY,
        EmergencyKind.SECURITY_PATCH,
        "Emergency Upgrade · Security Patch",
        "Critical security fixes. Risk: High. Rollback: Previous version deployment. "
        "May proceed at once; the go/no-go approval is asked afterwards.",
        VERSION_ROLLBACK,
        [
            _pre_upgrade_checklist(backups_required=False, all_required=False),
            Phase(
                "Immediate Response",
                PRE,
                [
                    Step("Immediate Response", "Assess security impact"),
                    Step("Immediate Response", "Review security advisory"),
                    Step("Immediate Response", "Determine urgency level"),
                ],
            ),
            Phase(
                "Emergency Deployment",
                DEPLOY,
                [
                    Step(
                        "Emergency Deployment",
                        "Deploy security patch",
                        "# (Implementation depends on deployment system)",
                        DEPLOY,
                        operation=Operation.DEPLOY,
                    ),
                    Step("Emergency Deployment", "Verify patch application"),
                    Step("Emergency Deployment", "Test security fix"),
                    Step("Emergency Deployment", "Monitor for issues"),
                ],
            ),
            Phase(
                "Post-Emergency",
                POST,
                [
                    Step("Post-Emergency", "Document incident"),
                    Step("Post-Emergency", "Update security procedures"),
                    Step("Post-Emergency", "Conduct post-incident review"),
                ],
            ),
            _upgrade_monitoring(),
            _documentation_updates(),
            _post_upgrade_review(),
        ],
    )


def _critical_bug_fix() -> Template:
    return Template(
        UpgradeType.EMERGENCY,
        EmergencyKind.CRITICAL_BUG_FIX,
        "Emergency Upgrade · Critical Bug Fix",
        "Critical bug fixes. Risk: High. Rollback: Previous version deployment. "
        "May proceed at once; the go/no-go approval is asked afterwards.",
        VERSION_ROLLBACK,
        [
            _pre_upgrade_checklist(backups_required=False, all_required=False),
            Phase(
                "Assessment",
                PRE,
                [
                    Step("Assessment", "Identify affected systems"),
                    Step("Assessment", "Assess user impact"),
                    Step("Assessment", "Determine fix priority"),
                ],
            ),
            Phase(
                "Emergency Fix",
                DEPLOY,
                [
                    Step(
                        "Emergency Fix",
                        "Deploy hotfix",
                        "# (Implementation depends on deployment system)",
                        DEPLOY,
                        operation=Operation.DEPLOY,
                    ),
                    Step("Emergency Fix", "Verify fix"),
                    Step("Emergency Fix", "Monitor system stability"),
                    Step("Emergency Fix", "Notify stakeholders"),
                ],
            ),
            _upgrade_monitoring(),
            _documentation_updates(),
            _post_upgrade_review(),
        ],
    )


def playbook_templates() -> list[Template]:
    return [_feature_flag(), _minor(), _major(), _security_patch(), _critical_bug_fix()]


# The playbook's "Common Issues and Solutions", offered next to a run that did not pass.
COMMON_ISSUES: list[dict] = [
    {
        "title": "Feature Flag Issues",
        "issue": "Feature not working as expected",
        "solution": [
            f"Disable feature: {FLAG_CLI_DISABLE}",
            'Check logs: pnpm run ops:tail | grep "feature-name"',
            f"Re-enable after fix: {FLAG_CLI_ENABLE}",
        ],
        "symptoms": "The flag is on and the feature misbehaves: errors or SLO breaches.",
        "applies_to": ["deploy", "rollback_flag", StepKind.SLO, StepKind.COMMAND],
        "actions": ["rollback_flag", "log_tail"],
    },
    {
        "title": "Version Upgrade Issues",
        "issue": "System not starting after upgrade",
        "solution": [
            "Check logs: pnpm run ops:tail",
            "Rollback to previous version",
            "Investigate issue; fix and redeploy",
        ],
        "symptoms": "Health checks fail or time out after a deploy.",
        "applies_to": [StepKind.HTTP_HEALTH, StepKind.STATUS_JSON, "deploy", StepKind.COMMAND],
        "actions": ["rollback_version", "log_tail"],
    },
    {
        "title": "Performance Issues",
        "issue": "System performance degraded",
        "solution": [
            "Check SLO status: pnpm run ops:lint",
            "Monitor metrics: pnpm run ops:tail",
            "Scale resources if needed",
        ],
        "symptoms": "Latency or error rate above the SLO thresholds.",
        "applies_to": [StepKind.SLO, StepKind.STATUS_JSON],
        "actions": ["log_tail"],
    },
]
