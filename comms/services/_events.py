from __future__ import annotations

from typing import Any

from comms.models import CommsEvent


def event_record(
    *,
    kind: str,
    subject: Any,
    by: Any | None = None,
    upgrade_id: int | None = None,
    from_state: str = "",
    to_state: str = "",
    detail: dict[str, Any] | None = None,
) -> CommsEvent:
    """Call inside the transaction of the change it records."""
    return CommsEvent.objects.create(
        kind=kind,
        subject_type=type(subject)._meta.model_name,
        subject_id=subject.pk,
        actor=by if by is not None and getattr(by, "is_authenticated", False) else None,
        upgrade_id=upgrade_id if upgrade_id is not None else getattr(subject, "upgrade_id", None),
        from_state=from_state or "",
        to_state=to_state or "",
        detail=detail or {},
    )
