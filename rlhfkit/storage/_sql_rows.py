"""Records to SQL rows and back (filters to SQL conditions live in :mod:`._sql_filters`).

Rows are plain tuples in the column order of :data:`INTERACTION_COLUMNS` etc.,
built with one JSON serialisation per record (pydantic-core's, in Rust), so
that bulk writes cost little more than the database's own insert.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any

import pydantic_core

from .._models import (
    BinaryData,
    BinaryFeedback,
    ComparativeData,
    Feedback,
    FeedbackSession,
    Interaction,
    MultiDimensionalData,
    RatingData,
    TextData,
)
from ..analytics._stats import feedback_targets
from . import _sql_schema as schema
from ._sql_schema import from_micros, to_micros

sa = schema.sa

INTERACTION_COLUMNS = (
    "project", "id", "timestamp", "model", "provider", "user_id", "session_id", "latency",
    "prompt_tokens", "completion_tokens", "total_tokens", "has_error", "prompt", "response", "doc",
)  # fmt: skip
FEEDBACK_COLUMNS = (
    "project", "id", "interaction_id", "type", "timestamp", "user_id", "session_id", "source",
    "value", "rating_value", "max_rating", "sentiment", "data", "metadata",
)  # fmt: skip
TARGET_COLUMNS = ("project", "feedback_id", "interaction_id", "role", "timestamp")
DIMENSION_COLUMNS = ("project", "feedback_id", "dimension", "score", "timestamp")
PAIR_COLUMNS = ("project", "feedback_id", "preferred_id", "alternative_id", "timestamp")

_INTERACTION_IN_COLUMNS = {
    "id", "timestamp", "model", "provider", "user_id", "session_id", "latency", "prompt", "response", "feedback_ids",
}  # fmt: skip


def _int32(value: int) -> int | None:
    """``value`` when a 32-bit integer column can hold it; the JSON copy of the record keeps it anyway."""
    return value if -(2**31) <= value < 2**31 else None


_dump_interaction = Interaction.__pydantic_serializer__.to_json  # model_dump_json without its Python wrapper


def interaction_row(project: str, i: Interaction) -> tuple[Any, ...]:
    """The row of an interaction (``doc`` as JSON text)."""
    usage = i.token_usage
    return (
        project,
        i.id,
        to_micros(i.timestamp),
        i.model,
        i.provider,
        i.user_id,
        i.session_id,
        i.latency,
        None if usage is None else _int32(usage.prompt),
        None if usage is None else _int32(usage.completion),
        None if usage is None else _int32(usage.total),
        i.error is not None,
        i.prompt,
        i.response,
        _dump_interaction(i, exclude=_INTERACTION_IN_COLUMNS).decode(),
    )


def feedback_row(project: str, f: Feedback) -> tuple[Any, ...]:
    """The row of a feedback (``data`` and ``metadata`` as JSON text)."""
    data = f.data
    value: float | None = None
    rating_value: float | None = None
    max_rating: int | None = None
    sentiment: str | None = None
    if isinstance(data, BinaryData):
        value = 1.0 if data.value == BinaryFeedback.THUMBS_UP else -1.0
    elif isinstance(data, RatingData):
        value, rating_value, max_rating = data.normalized, data.value, _int32(data.max_rating)
    elif isinstance(data, MultiDimensionalData):
        value = data.weighted_score
    elif isinstance(data, TextData) and data.sentiment is not None:
        sentiment = data.sentiment.value
    return (
        project,
        f.id,
        f.interaction_id,
        f.type.value,
        to_micros(f.timestamp),
        f.user_id,
        f.session_id,
        f.source,
        value,
        rating_value,
        max_rating,
        sentiment,
        data.model_dump_json(exclude={"weighted_score"}),
        pydantic_core.to_json(f.metadata).decode(),
    )


def target_rows(project: str, f: Feedback) -> list[tuple[Any, ...]]:
    """The feedback_targets rows of a feedback: one per interaction it is about."""
    ts = to_micros(f.timestamp)
    data = f.data
    rows = []
    for interaction_id in feedback_targets(f):
        role = "subject"
        if isinstance(data, ComparativeData):
            if interaction_id == data.preferred_id:
                role = "preferred"
            elif interaction_id in data.alternative_ids:
                role = "alternative"
        rows.append((project, f.id, interaction_id, role, ts))
    return rows


def dimension_rows(project: str, f: Feedback) -> list[tuple[Any, ...]]:
    """The feedback_dimensions rows of a multi-dimensional feedback (none for other types)."""
    if not isinstance(f.data, MultiDimensionalData):
        return []
    ts = to_micros(f.timestamp)
    return [(project, f.id, name, score, ts) for name, score in f.data.dimensions.items()]


def pair_rows(project: str, f: Feedback) -> list[tuple[Any, ...]]:
    """The feedback_pairs rows of a comparison, one per alternative (none for other types)."""
    if not isinstance(f.data, ComparativeData):
        return []
    ts = to_micros(f.timestamp)
    return [(project, f.id, f.data.preferred_id, alternative, ts) for alternative in f.data.alternative_ids]


def nul_column(records: list[tuple[Any, ...]], columns: tuple[str, ...]) -> tuple[int, str] | None:
    """(row index, column) of the first text holding a NUL character, which PostgreSQL cannot store.

    JSON columns hold it escaped as ``\\u0000``; jsonb refuses that too. In
    JSON, a text holding a backslash then ``u0000`` reads ``\\\\u0000``: the
    escape counts only after an even number of backslashes.
    """
    # Almost no batch holds one: look at all the text at once, and walk the rows only to name the place.
    text = "".join([v for v in chain.from_iterable(records) if isinstance(v, str)])
    # "\\" first: a one-character search is several times quicker, and most text holds no backslash.
    if "\x00" not in text and ("\\" not in text or "\\u0000" not in text):
        return None
    for index, record in enumerate(records):
        for column, value in zip(columns, record, strict=False):
            if isinstance(value, str) and (
                "\x00" in value or (column in _JSON_COLUMNS and _JSON_NUL.search(value) is not None)
            ):
                return index, column
    return None


_JSON_COLUMNS = frozenset({"doc", "data", "metadata"})
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def session_values(project: str, s: FeedbackSession) -> dict[str, Any]:
    """The column values of a session, for a Core insert."""
    return {
        "project": project,
        "id": s.id,
        "user_id": s.user_id,
        "start_time": to_micros(s.start_time),
        "end_time": None if s.end_time is None else to_micros(s.end_time),
        "interaction_ids": list(s.interaction_ids),
        "feedback_ids": list(s.feedback_ids),
        "metadata": pydantic_core.to_jsonable_python(s.metadata),
    }


def _json(value: Any) -> Any:
    # SQLAlchemy's JSON type decodes on both dialects; a str here means it was bypassed.
    return pydantic_core.from_json(value) if isinstance(value, str | bytes) else value


def row_to_interaction(row: Any, feedback_ids: list[str]) -> Interaction:
    """An Interaction from its row (a mapping) and the ids of its feedback."""
    doc = dict(_json(row["doc"]))
    doc.update(
        id=row["id"],
        timestamp=from_micros(row["timestamp"]),
        model=row["model"],
        provider=row["provider"],
        user_id=row["user_id"],
        session_id=row["session_id"],
        latency=row["latency"],
        prompt=row["prompt"],
        response=row["response"],
        feedback_ids=feedback_ids,
    )
    return Interaction.model_validate(doc)


def row_to_feedback(row: Any) -> Feedback:
    """A Feedback from its row (a mapping)."""
    return Feedback.model_validate(
        {
            "id": row["id"],
            "interaction_id": row["interaction_id"],
            "type": row["type"],
            "data": _json(row["data"]),
            "user_id": row["user_id"],
            "session_id": row["session_id"],
            "metadata": _json(row["metadata"]),
            "timestamp": from_micros(row["timestamp"]),
            "source": row["source"],
        }
    )


def row_to_session(row: Any, interaction_ids: list[str], feedback_ids: list[str]) -> FeedbackSession:
    """A FeedbackSession from its row and the ids found for it."""
    return FeedbackSession.model_validate(
        {
            "id": row["id"],
            "user_id": row["user_id"],
            "start_time": from_micros(row["start_time"]),
            "end_time": None if row["end_time"] is None else from_micros(row["end_time"]),
            "interaction_ids": interaction_ids,
            "feedback_ids": feedback_ids,
            "metadata": _json(row["metadata"]),
        }
    )
