"""Light records read from a storage backend, for the dataset and analytics passes.

Dataset builders and analytics need a few fields of every feedback and of
the interactions it is about, over millions of rows. They read them through
:func:`iter_feedback_rows` and :func:`iter_interaction_rows`, which yield small
named tuples instead of validated models:

* from any :class:`~rlhfkit.storage.base.Storage`, through the Protocol
  (``iter_feedback`` / ``iter_interactions`` by chunks of ids);
* from :class:`~rlhfkit.storage.sql.SQLStorage`, straight from its tables with
  the same filter semantics (the backend's own SQL conditions), skipping model
  validation and JSON decoding of what is not needed. The results are the
  same; the contract is checked by running the dataset tests on both.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

from .._models import (
    BinaryData,
    BinaryFeedback,
    ComparativeData,
    Feedback,
    FeedbackFilter,
    Interaction,
    InteractionFilter,
    MultiDimensionalData,
    RatingData,
    TextData,
)
from ..storage.base import Storage

__all__ = ["FeedbackRow", "InteractionRow", "iter_feedback_rows", "iter_interaction_rows"]

_SKIP_ROLES = {"tool", "function"}
_SQL_PAGE = 20_000
_WITH_PAYLOAD = ("comparative", "multi_dimensional")


class FeedbackRow(NamedTuple):
    """The parts of a feedback that datasets and analytics use."""

    id: str
    interaction_id: str
    type: str
    timestamp: float
    """Seconds since the Unix epoch."""
    user_id: str | None
    score: float | None
    """0..1: a rating normalised, a thumbs up 1 / down 0, a weighted multi-dimensional score over its max."""
    sentiment: str | None
    data: dict[str, Any] | None
    """The payload as JSON: always for comparisons and multi-dimensional feedback, for all with ``with_data``."""


class InteractionRow(NamedTuple):
    """The parts of an interaction that datasets and analytics use."""

    id: str
    model: str | None
    timestamp: float
    prompt: str
    response: str
    context: list[tuple[str, str]]
    """Earlier text turns as (role, content): tool turns and empty messages left out, developer -> system."""
    failed: bool
    incomplete: bool


def _context(messages: Sequence[Any]) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        role, content = (m.role, m.content) if not isinstance(m, dict) else (m.get("role"), m.get("content"))
        if role in _SKIP_ROLES or not isinstance(content, str) or not content.strip():
            continue
        out.append(("system" if role == "developer" else str(role), content))
    return out


def _reading(storage: Any) -> Any:
    """A connection of ``storage`` for a long scan (see ``SQLStorage.scan_connection``)."""
    return storage.scan_connection()


def _sql_storage(storage: Storage) -> bool:
    module = sys.modules.get("rlhfkit.storage.sql")
    return module is not None and isinstance(storage, module.SQLStorage)


# --------------------------------------------------------------------------- feedback


def iter_feedback_rows(storage: Storage, filter: FeedbackFilter, *, with_data: bool = False) -> Iterator[FeedbackRow]:
    """Feedback matching ``filter`` as :class:`FeedbackRow`, in id order, streamed."""
    if _sql_storage(storage):
        return _sql_feedback(storage, filter, with_data)
    return (_feedback_row(fb, with_data) for fb in storage.iter_feedback(filter))


def _feedback_row(fb: Feedback, with_data: bool) -> FeedbackRow:
    data = fb.data
    score: float | None = None
    sentiment: str | None = None
    payload: dict[str, Any] | None = None
    if isinstance(data, BinaryData):
        score = 1.0 if data.value == BinaryFeedback.THUMBS_UP else 0.0
    elif isinstance(data, RatingData):
        score = data.normalized
    elif isinstance(data, MultiDimensionalData):
        score = data.weighted_score / data.max_score
    elif isinstance(data, TextData):
        sentiment = None if data.sentiment is None else data.sentiment.value
    if with_data or isinstance(data, ComparativeData | MultiDimensionalData):
        payload = data.model_dump(mode="json", exclude={"weighted_score"})
    return FeedbackRow(fb.id, fb.interaction_id, fb.type.value, fb.timestamp.timestamp(), fb.user_id, score, sentiment, payload)


def _sql_feedback(storage: Any, flt: FeedbackFilter, with_data: bool) -> Iterator[FeedbackRow]:
    from ..storage._sql_filters import feedback_conditions
    from ..storage._sql_schema import feedback as f
    from ..storage._sql_schema import sa

    raw = sa.cast(f.c.data, sa.Text)
    payload = raw if with_data else sa.case((f.c.type.in_(_WITH_PAYLOAD), raw), else_=sa.null())
    base = sa.select(f.c.id, f.c.interaction_id, f.c.type, f.c.timestamp, f.c.user_id, f.c.value, f.c.sentiment, payload)
    base = base.where(*feedback_conditions(storage.project, flt))
    after, offset, remaining = flt.after_id, flt.offset, flt.limit
    loads = json.loads
    while remaining is None or remaining > 0:
        size = _SQL_PAGE if remaining is None else min(_SQL_PAGE, remaining)
        query = base if after is None else base.where(f.c.id > after)
        query = query.order_by(f.c.id).limit(size)
        if offset:
            query = query.offset(offset)
            offset = 0
        with _reading(storage) as connection:
            rows = connection.execute(query).cursor.fetchall()
        for fid, iid, kind, micros, user, value, sentiment, text in rows:
            data = loads(text) if text is not None else None
            if kind == "binary":
                score = None if value is None else (1.0 if value > 0 else 0.0)
            elif kind == "rating":
                score = value
            elif kind == "multi_dimensional" and data is not None and value is not None:
                score = value / float(data.get("max_score") or 5)
            else:
                score = None
            yield FeedbackRow(fid, iid, kind, micros / 1e6, user, score, sentiment, data)
        if len(rows) < size:
            return
        after = rows[-1][0]
        if remaining is not None:
            remaining -= len(rows)


# --------------------------------------------------------------------------- interactions


def iter_interaction_rows(storage: Storage, ids: Sequence[str]) -> Iterator[InteractionRow]:
    """The stored interactions among ``ids`` (a chunk: a few hundred) as :class:`InteractionRow`."""
    if _sql_storage(storage):
        return _sql_interactions(storage, ids)
    return (_interaction_row(i) for i in storage.iter_interactions(InteractionFilter(ids=list(ids))))


def _interaction_row(i: Interaction) -> InteractionRow:
    return InteractionRow(
        i.id, i.model, i.timestamp.timestamp(), i.prompt, i.response, _context(i.context), i.error is not None, i.incomplete
    )


# Interactions by id, in the driver's own SQL: at millions of ids in chunks of
# hundreds, building each statement with SQLAlchemy costs more than running it.
# Only two fields of the JSON document are needed; they are extracted in SQL.
_INTERACTIONS_BY_ID = {
    "sqlite": (
        "SELECT id, model, timestamp, prompt, response, json_extract(doc, '$.context'), has_error,"
        " json_extract(doc, '$.incomplete') FROM interactions WHERE project = ? AND id IN ({marks})",
        "?",
    ),
    "postgresql": (
        "SELECT id, model, timestamp, prompt, response, (doc->'context')::text, has_error,"
        " doc->>'incomplete' FROM interactions WHERE project = %s AND id IN ({marks})",
        "%s",
    ),
}


def _sql_interactions(storage: Any, ids: Sequence[str]) -> Iterator[InteractionRow]:
    if not ids:
        return
    template = _INTERACTIONS_BY_ID.get(storage.dialect)
    with _reading(storage) as connection:
        if template is not None:
            sql, mark = template
            statement = sql.format(marks=", ".join([mark] * len(ids)))
            rows = connection.exec_driver_sql(statement, (storage.project, *ids)).cursor.fetchall()
        else:
            rows = connection.execute(_interactions_query(storage, ids)).cursor.fetchall()
    loads = json.loads
    for iid, model, micros, prompt, response, ctx, failed, partial in rows:
        messages = loads(ctx) if ctx and ctx not in ("[]", "null") else []
        yield InteractionRow(
            iid, model, micros / 1e6, prompt, response, _context(messages), bool(failed), partial in (1, "1", "true", True)
        )


def _interactions_query(storage: Any, ids: Sequence[str]) -> Any:
    from ..storage._sql_schema import interactions as t
    from ..storage._sql_schema import sa

    context = sa.cast(t.c.doc["context"], sa.Text)
    incomplete = sa.cast(t.c.doc["incomplete"], sa.Text)
    query = sa.select(t.c.id, t.c.model, t.c.timestamp, t.c.prompt, t.c.response, context, t.c.has_error, incomplete)
    return query.where(t.c.project == storage.project, t.c.id.in_(list(ids)))
