"""Dashboard forms to feedback records, stored through the collector's own ingest path.

Feedback given on the dashboard is a :class:`~rlhfkit.Feedback` like any
other: validated by the same model, checked and written by the same code as
``POST /v1/feedback``, with ``source="dashboard"`` and the API key's name as
``user_id``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from ..._models import Feedback, RecordBatch
from ...errors import ValidationError, from_pydantic
from ...storage.base import Storage

__all__ = ["DIMENSIONS", "KINDS", "comparison_from_form", "feedback_from_form", "store_feedback"]

SOURCE = "dashboard"
DIMENSIONS = ("accuracy", "helpfulness", "clarity", "safety")
"""The sliders of the multi-dimensional form."""
KINDS = ("binary", "rating", "text", "multi_dimensional")
"""The feedback forms of the detail page."""


def _text(form: Mapping[str, Any], name: str, limit: int = 10_000) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, "must be text", None)
    value = value.strip()
    if len(value) > limit:
        raise ValidationError(name, f"must be at most {limit} characters", None)
    if "\x00" in value:
        raise ValidationError(name, "must not contain NUL characters", None)
    return value or None


def _number(form: Mapping[str, Any], name: str, required: bool = True) -> float | None:
    raw = _text(form, name, 40)
    if raw is None:
        if required:
            raise ValidationError(name, "is required", None)
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(name, "must be a number", raw) from None
    if not math.isfinite(value):
        raise ValidationError(name, "must be a finite number", raw)
    return value


def _build(fields: dict[str, Any]) -> Feedback:
    try:
        return Feedback.model_validate(fields)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None


def feedback_from_form(kind: str, form: Mapping[str, Any], interaction_id: str, user: str) -> Feedback:
    """The feedback a detail-page form describes; ValidationError names the bad field."""
    data: dict[str, Any]
    if kind == "binary":
        value = _text(form, "value")
        if value not in ("thumbs_up", "thumbs_down"):
            raise ValidationError("value", "must be thumbs_up or thumbs_down", value)
        data = {"type": "binary", "value": value}
    elif kind == "rating":
        data = {"type": "rating", "value": _number(form, "value"), "max_rating": 5, "comment": _text(form, "comment")}
    elif kind == "text":
        sentiment = _text(form, "sentiment")
        if sentiment not in (None, "positive", "negative", "neutral"):
            raise ValidationError("sentiment", "must be positive, negative or neutral", sentiment)
        comment = _text(form, "comment")
        if comment is None:
            raise ValidationError("comment", "must not be empty", None)
        data = {"type": "text", "comment": comment, "sentiment": sentiment}
    elif kind == "multi_dimensional":
        dimensions: dict[str, float] = {}
        for name in DIMENSIONS:
            score = _number(form, f"dim_{name}", required=False)
            if score is not None:
                dimensions[name] = score
        if not dimensions:
            raise ValidationError("dimensions", "rate at least one dimension", None)
        data = {"type": "multi_dimensional", "dimensions": dimensions, "max_score": 5,
                "overall_comment": _text(form, "comment")}  # fmt: skip
    else:
        raise ValidationError("kind", f"must be one of {', '.join(KINDS)}", kind)
    return _build({"interaction_id": interaction_id, "type": kind, "data": data, "user_id": user, "source": SOURCE})


def comparison_from_form(form: Mapping[str, Any], candidates: Sequence[str], user: str) -> Feedback:
    """The comparative feedback of a compare form: the picked response over every other shown."""
    preferred = _text(form, "preferred", 200)
    if preferred is None or preferred not in candidates:
        raise ValidationError("preferred", "pick one of the responses shown", preferred)
    alternatives = [c for c in candidates if c != preferred]
    if not alternatives:
        raise ValidationError("preferred", "a comparison needs at least two responses", preferred)
    confidence = _number(form, "confidence", required=False)
    data = {
        "type": "comparative", "preferred_id": preferred, "alternative_ids": alternatives,
        "reason": _text(form, "reason"), "confidence": confidence,
    }  # fmt: skip
    return _build({"interaction_id": preferred, "type": "comparative", "data": data, "user_id": user,
                   "source": SOURCE, "metadata": {"ui": "compare"}})  # fmt: skip


def store_feedback(storage: Storage, feedback: Feedback) -> None:
    """Write ``feedback`` through the collector's ingest checks (unknown interactions, column limits)."""
    from .._ingest import ParsedPaths
    from .._routes import _store

    _store(storage, RecordBatch(feedback=[feedback]), ParsedPaths(feedback=[""]))
