from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def get_item(mapping: dict, key: Any) -> Any:
    """Look a value up by a variable key, which Django's templates cannot do by themselves."""
    return mapping.get(key) if mapping else None
