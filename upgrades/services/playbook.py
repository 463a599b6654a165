"""Loading the playbook: its templates for each upgrade type and its common issues."""

from __future__ import annotations

from django.db import transaction

from upgrades.models import CommonIssue, PlaybookPhase, PlaybookStep, PlaybookTemplate
from upgrades.playbook import COMMON_ISSUES, playbook_templates


@transaction.atomic
def playbook_seed(*, reset: bool = False) -> int:
    """Load the playbook's templates; existing ones are kept (administrators may have edited them)
    unless `reset`. Returns how many templates were written."""
    _common_issues_seed(reset=reset)
    written = 0
    for spec in playbook_templates():
        existing = PlaybookTemplate.objects.filter(
            upgrade_type=spec.upgrade_type, emergency_kind=spec.emergency_kind
        ).first()
        if existing and not reset:
            continue
        if existing:
            existing.delete()
        template = PlaybookTemplate.objects.create(
            upgrade_type=spec.upgrade_type,
            emergency_kind=spec.emergency_kind,
            name=spec.name,
            description=spec.description,
            rollback_procedure=spec.rollback_procedure,
        )
        for phase_order, phase_spec in enumerate(spec.phases, start=1):
            phase = PlaybookPhase.objects.create(
                template=template, order=phase_order, title=phase_spec.title, stage=phase_spec.stage
            )
            PlaybookStep.objects.bulk_create(
                PlaybookStep(
                    phase=phase,
                    order=step_order,
                    section=step.section,
                    title=step.title,
                    description=step.description,
                    commands=step.commands,
                    kind=step.kind,
                    operation=step.resolved_operation,
                    check_config=dict(step.check),
                    required=step.required,
                )
                for step_order, step in enumerate(phase_spec.steps, start=1)
            )
        written += 1
    return written


def _common_issues_seed(*, reset: bool) -> None:
    if CommonIssue.objects.exists() and not reset:
        return
    CommonIssue.objects.all().delete()
    for order, spec in enumerate(COMMON_ISSUES):
        CommonIssue.objects.create(
            order=order,
            title=spec["title"],
            issue=spec["issue"],
            symptoms=spec["symptoms"],
            solution="\n".join(spec["solution"]),
            applies_to=[str(kind) for kind in spec["applies_to"]],
            actions=spec["actions"],
        )
