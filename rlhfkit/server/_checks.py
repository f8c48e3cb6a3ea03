"""Limits every database accepts, checked before a record reaches one.

PostgreSQL refuses NUL characters in text and JSON, non-finite numbers in
JSONB, strings longer than a ``VARCHAR(n)`` column and integers beyond its
integer columns. The collector refuses such input with a 422 naming the
field, so that no request can fail inside the database.
"""

from __future__ import annotations

import math
from typing import Any

from .._models import ComparativeData, RatingData, RecordBatch
from ..errors import ValidationError

__all__ = ["check_body_values", "check_storable", "check_text"]

MAX_ID = 200
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


def check_text(value: str | None, field: str, max_length: int | None = None) -> None:
    """Refuse NUL characters, lone surrogates and, with ``max_length``, strings longer than that."""
    if value is None:
        return
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, "must be valid Unicode (no lone surrogates)", None) from None
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters", value)


def check_body_values(value: Any, field: str) -> None:
    """Refuse NUL characters, lone surrogates, non-finite floats and 64-bit-overflowing integers anywhere in ``value``."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(where, "must be a finite number", item)
        elif isinstance(item, int):
            if not -_INT64 - 1 <= item <= _INT64:
                raise ValidationError(where, "is out of the 64-bit integer range", item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    check_text(key, f"{where}.<key>" if where else "<key>")
                stack.append((sub, name))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))


def check_storable(batch: RecordBatch, interaction_paths: list[str], feedback_paths: list[str]) -> None:
    """Refuse what a SQL column cannot hold (lengths and integer ranges), naming the field."""
    for interaction, where in zip(batch.interactions, interaction_paths, strict=False):
        for name, limit in (("model", MAX_ID), ("provider", 100), ("user_id", MAX_ID), ("session_id", MAX_ID)):
            check_text(getattr(interaction, name), f"{where}.{name}".lstrip("."), limit)
        usage = interaction.token_usage
        if usage is not None:
            for name in ("prompt", "completion", "total", "cached", "reasoning"):
                count = getattr(usage, name)
                if count is not None and count > _INT32:
                    raise ValidationError(f"{where}.token_usage.{name}".lstrip("."), f"must be at most {_INT32}", count)
    for feedback, where in zip(batch.feedback, feedback_paths, strict=False):
        for name in ("interaction_id", "user_id", "session_id", "source"):
            check_text(getattr(feedback, name), f"{where}.{name}".lstrip("."), MAX_ID)
        data = feedback.data
        if isinstance(data, RatingData) and data.max_rating > _INT32:
            raise ValidationError(f"{where}.data.max_rating".lstrip("."), f"must be at most {_INT32}", data.max_rating)
        if isinstance(data, ComparativeData):
            check_text(data.preferred_id, f"{where}.data.preferred_id".lstrip("."), MAX_ID)
            for i, other in enumerate(data.alternative_ids):
                check_text(other, f"{where}.data.alternative_ids[{i}]".lstrip("."), MAX_ID)
    for i, session in enumerate(batch.sessions):
        check_text(session.id, f"sessions[{i}].id", MAX_ID)
        check_text(session.user_id, f"sessions[{i}].user_id", MAX_ID)
        for j, other in enumerate(session.interaction_ids):
            check_text(other, f"sessions[{i}].interaction_ids[{j}]", MAX_ID)
        for j, other in enumerate(session.feedback_ids):
            check_text(other, f"sessions[{i}].feedback_ids[{j}]", MAX_ID)
