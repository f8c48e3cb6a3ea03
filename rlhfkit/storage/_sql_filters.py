"""Filters to SQL conditions, shared by the storage's reads, the dashboard and the datasets."""

from __future__ import annotations

from typing import Any

from .._models import FeedbackFilter, FeedbackType, InteractionFilter
from . import _sql_schema as schema
from ._sql_schema import to_micros

sa = schema.sa

NARROW = 2_000
"""Fewer matching feedback than this: start from the interactions they are about rather than checking each row."""


def feedback_model(project: str) -> Any:
    """The model of a feedback's interaction: the stored copy, else a lookup."""
    i, f = schema.interactions, schema.feedback
    lookup = (
        sa.select(i.c.model).where(i.c.project == project, i.c.id == f.c.interaction_id).scalar_subquery()
    )
    return sa.func.coalesce(f.c.model, lookup)


def time_conditions(column: Any, start: Any, end: Any) -> list[Any]:
    """``start <= column < end`` on a microseconds column, for each bound given."""
    conditions = []
    if start is not None:
        conditions.append(column >= to_micros(start))
    if end is not None:
        conditions.append(column < to_micros(end))
    return conditions


def _has_matching_feedback(project: str, match: list[Any]) -> Any:
    """An interaction has a feedback (direct, or a comparison it is in) meeting every ``match`` condition.

    The matching ids are selected once (an uncorrelated IN): a correlated EXISTS
    made SQLite scan every feedback of the type for each interaction row.
    """
    i, f, t = schema.interactions, schema.feedback, schema.feedback_targets
    joined = t.join(f, sa.and_(f.c.project == t.c.project, f.c.id == t.c.feedback_id))
    return i.c.id.in_(sa.select(t.c.interaction_id).select_from(joined).where(t.c.project == project, *match))


def interaction_conditions(
    project: str, flt: InteractionFilter, *, search_rows: Any = None, rating_per_row: bool = False, dialect: str = ""
) -> list[Any]:
    """SQL conditions for every non-paging field of an interaction filter.

    ``search_rows`` (from :func:`._sql_search.candidates`) narrows a text
    search to the rows the search index names: the rows kept are the same,
    and the project condition is then written so that no index on project
    competes with those few rows. ``rating_per_row`` (when :func:`many_ratings`)
    checks a rating range per row instead of selecting the matching ids once.
    """
    i, f, t = schema.interactions, schema.feedback, schema.feedback_targets
    conds: list[Any] = [
        i.c.project == project if search_rows is None else i.c.project.concat("") == project,
        *time_conditions(i.c.timestamp, flt.start_time, flt.end_time),
    ]
    if search_rows is not None:
        conds.append(search_rows)
    if flt.ids is not None:
        conds.append(i.c.id.in_(flt.ids))
    if flt.user_id is not None:
        conds.append(i.c.user_id == flt.user_id)
    if flt.session_id is not None:
        conds.append(i.c.session_id == flt.session_id)
    if flt.models is not None:
        conds.append(i.c.model.in_(flt.models))
    if flt.provider is not None:
        conds.append(i.c.provider == flt.provider)
    if flt.errors_only:
        conds.append(i.c.has_error.is_(True))
    if flt.search is not None:
        conds.append(
            sa.or_(
                i.c.prompt.icontains(flt.search, autoescape=True),
                i.c.response.icontains(flt.search, autoescape=True),
            )
        )
    targeted = sa.and_(t.c.project == project, t.c.interaction_id == i.c.id)
    if flt.has_feedback is not None:
        exists = sa.select(sa.literal(1)).where(targeted).exists()
        conds.append(exists if flt.has_feedback else ~exists)
    feedback_match: list[Any] = []
    if flt.feedback_types is not None:
        feedback_match.append(f.c.type.in_([FeedbackType(x).value for x in flt.feedback_types]))
    if flt.min_rating is not None or flt.max_rating is not None:
        if rating_per_row and flt.feedback_types is None:
            conds.append(_has_rating(project, flt, dialect))
        else:
            feedback_match += [f.c.type == FeedbackType.RATING.value, *_rating_bounds(flt)]
    if feedback_match:
        conds.append(_has_matching_feedback(project, feedback_match))
    return conds


def _rating_bounds(flt: InteractionFilter | FeedbackFilter) -> list[Any]:
    f = schema.feedback
    bounds = []
    if flt.min_rating is not None:
        bounds.append(f.c.rating_value >= flt.min_rating)
    if flt.max_rating is not None:
        bounds.append(f.c.rating_value <= flt.max_rating)
    return bounds


def _has_rating(project: str, flt: InteractionFilter, dialect: str) -> Any:
    """The row has a rating in bounds, checked per row (a rating is about its ``interaction_id`` only).

    On SQLite, ``type || ''`` keeps the planner (no statistics unless ANALYZE
    ran) from scanning every rating through the type index for each row:
    each row costs one lookup by interaction id.
    """
    i, f = schema.interactions, schema.feedback
    kind = f.c.type.concat("") if dialect == "sqlite" else f.c.type
    return (
        sa.select(sa.literal(1))
        .where(f.c.project == project, f.c.interaction_id == i.c.id, kind == FeedbackType.RATING.value,
               *_rating_bounds(flt))
        .exists()
    )  # fmt: skip


def index_filter(flt: InteractionFilter) -> InteractionFilter | None:
    """The part of ``flt`` that indexes of interactions serve (time, user, session, model, provider), or None."""
    fields = ("start_time", "end_time", "user_id", "session_id", "models", "provider")
    kept = {name: getattr(flt, name) for name in fields if getattr(flt, name) is not None}
    return InteractionFilter(**kept) if kept else None


def fewer_than(connection: Any, conditions: list[Any], cap: int) -> bool:
    """Whether fewer than ``cap`` interactions meet ``conditions``.

    SQLite counts them through an index, stopping at ``cap`` (its indexes
    cover the conditions). PostgreSQL would read each row's heap page to
    count them: its planner's estimate, from the column statistics, is used
    instead.
    """
    rows = sa.select(sa.literal(1)).select_from(schema.interactions).where(*conditions)
    if connection.dialect.name == "postgresql":
        compiled = rows.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
        return float(plan[0]["Plan"]["Plan Rows"]) < cap
    capped = rows.limit(cap).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()) < cap


def many_ratings(connection: Any, project: str, flt: InteractionFilter) -> bool:
    """Whether at least :data:`NARROW` ratings are in the filter's bounds (an index-only probe, capped).

    Then a page of matching interactions is found soonest by checking rows in
    order; with fewer, by starting from the ids of those ratings.
    """
    f = schema.feedback
    rows = sa.select(sa.literal(1)).where(f.c.project == project, f.c.type == FeedbackType.RATING.value,
                                          *_rating_bounds(flt))  # fmt: skip
    capped = rows.limit(NARROW).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()) >= NARROW


def feedback_conditions(project: str, flt: FeedbackFilter) -> list[Any]:
    """SQL conditions for every non-paging field of a feedback filter."""
    f, t = schema.feedback, schema.feedback_targets
    conds: list[Any] = [
        f.c.project == project,
        *time_conditions(f.c.timestamp, flt.start_time, flt.end_time),
    ]
    if flt.ids is not None:
        conds.append(f.c.id.in_(flt.ids))
    if flt.interaction_ids is not None:
        conds.append(
            f.c.id.in_(
                sa.select(t.c.feedback_id).where(
                    t.c.project == project, t.c.interaction_id.in_(flt.interaction_ids)
                )
            )
        )
    if flt.types is not None:
        conds.append(f.c.type.in_([FeedbackType(x).value for x in flt.types]))
    if flt.user_id is not None:
        conds.append(f.c.user_id == flt.user_id)
    if flt.session_id is not None:
        conds.append(f.c.session_id == flt.session_id)
    if flt.source is not None:
        conds.append(f.c.source == flt.source)
    if flt.sentiment is not None:
        conds.append(sa.and_(f.c.type == FeedbackType.TEXT.value, f.c.sentiment == flt.sentiment.value))
    if flt.min_rating is not None or flt.max_rating is not None:
        in_bounds = [f.c.type == FeedbackType.RATING.value, *_rating_bounds(flt)]
        # Feedback without a rating passes only when the caller named the types it wants.
        conds.append(
            sa.and_(*in_bounds) if flt.types is None else sa.or_(f.c.type != "rating", sa.and_(*in_bounds))
        )
    if flt.model is not None:
        conds.append(feedback_model(project) == flt.model)
    return conds
