"""Feedback statistics and time series computed by SQL aggregates.

The numbers follow the rules of :mod:`rlhfkit.analytics._stats` (the plain
Python version the other backends use); the contract tests check that both
agree. No query loads the feedback rows themselves: counts and sums are
grouped in the database, and the rating median is read with ORDER BY and
LIMIT/OFFSET.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from .._models import (
    BinaryStats,
    ComparativeStats,
    FeedbackStats,
    FeedbackType,
    ModelStats,
    MultiDimensionalStats,
    RatingStats,
    TextStats,
)
from ..analytics._stats import UNKNOWN_MODEL, rating_bucket
from ..errors import ValidationError
from . import _sql_schema as schema
from ._sql_filters import feedback_model, time_conditions
from ._sql_schema import from_micros

__all__ = ["feedback_stats", "timeseries"]

sa = schema.sa

_TYPES = [t.value for t in FeedbackType]
_BUCKET_MICROS = {"hour": 3_600_000_000, "day": 86_400_000_000}


def _case_sum(condition: Any, value: Any = 1) -> Any:
    return sa.func.sum(sa.case((condition, value), else_=0))


def _feedback_rows(project: str, start: datetime | None, end: datetime | None, *extra: Any) -> Any:
    """A subquery of this project's feedback in range, with the model of its interaction as ``m``."""
    f = schema.feedback
    return (
        sa.select(f.c.type, f.c.sentiment, f.c.value, f.c.timestamp, feedback_model(project).label("m"))
        .where(f.c.project == project, *time_conditions(f.c.timestamp, start, end), *extra)
        .subquery()
    )


def feedback_stats(
    connection: Any, project: str, start: datetime | None, end: datetime | None, helper: Any = None
) -> FeedbackStats:
    """The :class:`FeedbackStats` of ``project`` over [start, end).

    ``helper``: a second connection reading the same snapshot; the interaction
    counts are then read on it in a thread, beside the feedback aggregates
    (SQLite releases the GIL while it works, so the two use two cores).
    """
    on_helper = _in_thread(helper, _interaction_counts, project, start, end) if helper is not None else None
    if on_helper is None:
        by_model, with_feedback = _interaction_counts(connection, project, start, end)
    feedback = _feedback_stats(connection, project, start, end)
    if on_helper is not None:
        by_model, with_feedback = on_helper()
    return _combine(by_model, with_feedback, feedback, start, end)


def _in_thread(connection: Any, function: Any, *args: Any) -> Any:
    """Start ``function(connection, *args)`` in a thread; the returned callable waits and gives its result."""
    import threading

    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, function(connection, *args)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name="rlhfkit-stats", daemon=True)
    thread.start()

    def result() -> Any:
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    return result


def _interaction_counts(
    connection: Any, project: str, start: datetime | None, end: datetime | None
) -> tuple[list[tuple[Any, ...]], int]:
    """(model, count, latency sum, latency count) per model, and the interactions with feedback."""
    i = schema.interactions
    query = (
        sa.select(i.c.model, sa.func.count(), sa.func.sum(i.c.latency), sa.func.count(i.c.latency))
        .where(i.c.project == project, *time_conditions(i.c.timestamp, start, end))
        .group_by(i.c.model)
    )
    return [tuple(row) for row in connection.execute(query)], _interactions_with_feedback(connection, project, start, end)


def _feedback_stats(connection: Any, project: str, start: datetime | None, end: datetime | None) -> dict[str, Any]:
    """The feedback side of the stats: rows grouped by model, type and sentiment, and what depends on them."""
    f = schema.feedback
    sums = (sa.func.count(), _case_sum(f.c.value > 0), sa.func.sum(f.c.value))
    # Rows that know their model are grouped in index order (no sort); the others look it up.
    known = (
        sa.select(f.c.model, f.c.type, f.c.sentiment, *sums)
        .where(f.c.project == project, f.c.model.is_not(None), *time_conditions(f.c.timestamp, start, end))
        .group_by(f.c.type, f.c.model, f.c.sentiment)
    )
    looked_up = feedback_model(project).label("m")
    unknown = (
        sa.select(looked_up, f.c.type, f.c.sentiment, *sums)
        # Naming every type lets the database seek (project, type, model IS NULL) in the stats index.
        .where(f.c.project == project, f.c.type.in_(_TYPES), f.c.model.is_(None), *time_conditions(f.c.timestamp, start, end))
        .group_by(f.c.type, sa.text("m"), f.c.sentiment)
    )
    grouped = [*connection.execute(known)]
    if _has_feedback_without_model(connection, project):
        grouped += connection.execute(unknown)
    rating_count = sum(row[3] for row in grouped if row[1] == "rating")
    multi_count = sum(row[3] for row in grouped if row[1] == "multi_dimensional")
    comparative_count = sum(row[3] for row in grouped if row[1] == "comparative")
    return {
        "grouped": grouped,
        "rating": _rating_median_and_distribution(connection, project, start, end) if rating_count else None,
        "dimensions": _dimension_averages(connection, project, start, end) if multi_count else None,
        "comparative": _comparisons(connection, project, start, end, comparative_count),
    }


def _combine(
    by_model: list[tuple[Any, ...]],
    with_feedback: int,
    feedback: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
) -> FeedbackStats:
    """The FeedbackStats from the interaction counts and the feedback aggregates."""
    models: dict[str, ModelStats] = {}

    def model_stats(name: str | None) -> ModelStats:
        key = name or UNKNOWN_MODEL
        return models.setdefault(key, ModelStats(model=key))

    latency_sums: dict[str, float] = defaultdict(float)
    latency_counts: dict[str, int] = defaultdict(int)
    total_interactions = 0
    for model, count, latency_sum, latency_count in by_model:
        stats = model_stats(model)
        stats.interactions += count
        total_interactions += count
        latency_sums[stats.model] += latency_sum or 0.0
        latency_counts[stats.model] += latency_count

    by_type: dict[str, int] = defaultdict(int)
    binary, text = BinaryStats(), TextStats()
    rating_count, rating_sum, multi_count, multi_sum = 0, 0.0, 0, 0.0
    rating_by_model: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for model, type_, sentiment, count, positive, value_sum in feedback["grouped"]:
        stats = model_stats(model)
        stats.feedback += count
        by_type[type_] += count
        if type_ == "binary":
            binary.thumbs_up += positive
            binary.thumbs_down += count - positive
            stats.thumbs_up += positive
            stats.thumbs_down += count - positive
        elif type_ == "rating":
            rating_count += count
            rating_sum += count + 4 * (value_sum or 0.0)
            acc = rating_by_model[stats.model]
            acc[0] += count
            acc[1] += count + 4 * (value_sum or 0.0)
        elif type_ == "text":
            text.count += count
            field = sentiment if sentiment in {"positive", "negative", "neutral"} else "unknown"
            setattr(text, field, getattr(text, field) + count)
        elif type_ == "multi_dimensional":
            multi_count += count
            multi_sum += value_sum or 0.0
    for name, stats in models.items():
        if latency_counts.get(name):
            stats.average_latency_ms = latency_sums[name] / latency_counts[name]
        count_sum = rating_by_model.get(name)
        if count_sum and count_sum[0]:
            stats.average_rating = count_sum[1] / count_sum[0]

    rating = RatingStats(count=rating_count)
    if rating_count and feedback["rating"] is not None:
        rating.average = rating_sum / rating_count
        rating.median, rating.distribution = feedback["rating"]

    multi = MultiDimensionalStats(count=multi_count)
    if multi_count and feedback["dimensions"] is not None:
        multi.average_weighted_score = multi_sum / multi_count
        multi.dimension_averages = feedback["dimensions"]

    return FeedbackStats(
        total_interactions=total_interactions,
        total_feedback=sum(by_type.values()),
        interactions_with_feedback=with_feedback,
        by_type=dict(sorted(by_type.items())),
        binary=binary,
        rating=rating,
        text=text,
        multi_dimensional=multi,
        comparative=feedback["comparative"],
        by_model=dict(sorted(models.items())),
        start_time=start,
        end_time=end,
    )


def _has_feedback_without_model(connection: Any, project: str) -> bool:
    """Whether any feedback lacks its model (cheap: a seek per type in the stats index)."""
    f = schema.feedback
    query = sa.select(sa.literal(1)).where(f.c.project == project, f.c.type.in_(_TYPES), f.c.model.is_(None)).limit(1)
    return connection.execute(query).first() is not None


def _interactions_with_feedback(connection: Any, project: str, start: Any, end: Any) -> int:
    """Interactions in range targeted by feedback in range, from feedback_targets alone (index order)."""
    i, t = schema.interactions, schema.feedback_targets
    lookup = sa.select(i.c.timestamp).where(i.c.project == project, i.c.id == t.c.interaction_id).scalar_subquery()
    when = sa.func.coalesce(t.c.interaction_timestamp, lookup)  # NULL: the interaction is not stored
    in_range = time_conditions(when, start, end) or [when.is_not(None)]
    where = [t.c.project == project, *time_conditions(t.c.timestamp, start, end), *in_range]
    if connection.dialect.name == "postgresql":
        # PostgreSQL sorts for COUNT(DISTINCT); a GROUP BY in a subquery hashes instead.
        grouped = sa.select(t.c.interaction_id).where(*where).group_by(t.c.interaction_id).subquery()
        query = sa.select(sa.func.count()).select_from(grouped)
    else:
        # SQLite counts distinct values of an index read in order without a temporary table.
        query = sa.select(sa.func.count(sa.distinct(t.c.interaction_id))).where(*where)
    return int(connection.execute(query).scalar_one())


def _rating_median_and_distribution(
    connection: Any, project: str, start: Any, end: Any
) -> tuple[float, dict[int, int]]:
    """The median (1..5 scale) and the per-star counts of the ratings in range.

    Ratings take few distinct values, so one GROUP BY over the (type, value)
    index, read in value order without sorting, yields both: the median from
    the running count, the stars from each value's bucket.
    """
    f = schema.feedback
    query = (
        sa.select(f.c.value, sa.func.count())
        .where(f.c.project == project, f.c.type == "rating", *time_conditions(f.c.timestamp, start, end))
        .group_by(f.c.value)
        .order_by(f.c.value)
    )
    counted = [(float(value), int(n)) for value, n in connection.execute(query)]
    distribution = dict.fromkeys(range(1, 6), 0)
    for value, n in counted:
        distribution[rating_bucket(1 + 4 * value)] += n
    total = sum(n for _, n in counted)
    middle = [(total - 1) // 2, total // 2]  # the same rank twice when the count is odd
    found: list[float] = []
    seen = 0
    for value, n in counted:
        while len(found) < 2 and middle[len(found)] < seen + n:
            found.append(value)
        seen += n
    return 1.0 + 4.0 * (found[0] + found[1]) / 2, distribution


def _dimension_averages(connection: Any, project: str, start: Any, end: Any) -> dict[str, float]:
    d = schema.feedback_dimensions
    query = (
        sa.select(d.c.dimension, sa.func.avg(d.c.score))
        .where(d.c.project == project, *time_conditions(d.c.timestamp, start, end))
        .group_by(d.c.dimension)
        .order_by(d.c.dimension)
    )
    return {name: float(avg) for name, avg in connection.execute(query)}


def _comparisons(connection: Any, project: str, start: Any, end: Any, count: int) -> ComparativeStats:
    pairs, i = schema.feedback_pairs, schema.interactions

    def model(column: Any, id_column: Any) -> Any:
        lookup = sa.select(i.c.model).where(i.c.project == project, i.c.id == id_column).scalar_subquery()
        return sa.func.coalesce(column, lookup)

    won = model(pairs.c.preferred_model, pairs.c.preferred_id).label("won")
    lost = model(pairs.c.alternative_model, pairs.c.alternative_id).label("lost")
    query = (
        sa.select(won, lost, sa.func.count())
        .where(pairs.c.project == project, *time_conditions(pairs.c.timestamp, start, end))
        .group_by(sa.text("won"), sa.text("lost"))
    )
    stats = ComparativeStats(count=count)
    for winner, loser, n in connection.execute(query):
        winner, loser = winner or UNKNOWN_MODEL, loser or UNKNOWN_MODEL
        stats.wins_by_model[winner] = stats.wins_by_model.get(winner, 0) + n
        stats.losses_by_model[loser] = stats.losses_by_model.get(loser, 0) + n
    stats.wins_by_model = dict(sorted(stats.wins_by_model.items()))
    stats.losses_by_model = dict(sorted(stats.losses_by_model.items()))
    return stats


def _latency_ranks(
    connection: Any, project: str, groups: list[tuple[int, str | None, int]], size: int
) -> dict[tuple[int, str], tuple[float, float]]:
    """p50 and p95 latency per (bucket, model, latency count), interpolated like numpy's default.

    Each percentile reads at most two rows with ORDER BY latency LIMIT/OFFSET
    over one (model, bucket) range of the covering index, so no latency list
    leaves the database.
    """
    i = schema.interactions
    result: dict[tuple[int, str], tuple[float, float]] = {}
    for bucket_no, name, count in groups:
        if not count:
            continue
        model_is = i.c.model.is_(None) if name is None else i.c.model == name
        base = sa.select(i.c.latency).where(
            i.c.project == project,
            model_is,
            i.c.timestamp >= bucket_no * size,
            i.c.timestamp < (bucket_no + 1) * size,
            i.c.latency.is_not(None),
        )
        percentiles = []
        for q in (0.5, 0.95):
            position = (count - 1) * q
            low = math.floor(position)
            rows = list(connection.execute(base.order_by(i.c.latency).limit(2).offset(low)).scalars())
            high = rows[1] if len(rows) > 1 and low + 1 < count else rows[0]
            percentiles.append(float(rows[0] + (high - rows[0]) * (position - low)))
        result[(bucket_no, name or UNKNOWN_MODEL)] = (percentiles[0], percentiles[1])
    return result


def timeseries(
    connection: Any,
    project: str,
    bucket: Literal["hour", "day"],
    start: datetime | None,
    end: datetime | None,
    model: str | None,
) -> list[dict[str, Any]]:
    """Per bucket and model: see :meth:`rlhfkit.storage.sql.SQLStorage.timeseries`."""
    if bucket not in _BUCKET_MICROS:
        raise ValidationError("bucket", "must be 'hour' or 'day'", bucket)
    size = _BUCKET_MICROS[bucket]
    i = schema.interactions
    items: dict[tuple[int, str], dict[str, Any]] = {}

    def item(b: int, name: str | None) -> dict[str, Any]:
        key = (b, name or UNKNOWN_MODEL)
        if key not in items:
            items[key] = {
                "bucket": from_micros(b * size), "model": key[1], "interactions": 0, "feedback": 0,
                "thumbs_up": 0, "thumbs_down": 0, "average_rating": None, "average_latency_ms": None,
                "p50_latency_ms": None, "p95_latency_ms": None,
            }  # fmt: skip
        return items[key]

    extra = [] if model is None else [i.c.model == model]
    where = [i.c.project == project, *time_conditions(i.c.timestamp, start, end), *extra]
    b = (i.c.timestamp // size).label("b")
    query = (
        sa.select(b, i.c.model, sa.func.count(), sa.func.avg(i.c.latency), sa.func.count(i.c.latency))
        .where(*where)
        .group_by(i.c.model, b)
    )
    groups = []
    for bucket_no, name, count, average, latencies in connection.execute(query):
        entry = item(int(bucket_no), name)
        entry["interactions"] += count
        entry["average_latency_ms"] = None if average is None else float(average)
        groups.append((int(bucket_no), name, int(latencies)))
    for key, values in _latency_ranks(connection, project, groups, size).items():
        entry = item(*key)
        entry["p50_latency_ms"], entry["p95_latency_ms"] = values

    f = schema.feedback
    sums = (
        sa.func.count(),
        _case_sum(sa.and_(f.c.type == "binary", f.c.value > 0)),
        _case_sum(sa.and_(f.c.type == "binary", f.c.value < 0)),
        _case_sum(f.c.type == "rating"),
        _case_sum(f.c.type == "rating", 1 + 4 * f.c.value),
    )
    fb = (f.c.timestamp // size).label("b")
    where = [f.c.project == project, *time_conditions(f.c.timestamp, start, end)]
    known = sa.select(fb, f.c.model, *sums).where(*where, f.c.model.is_not(None)).group_by(f.c.model, fb)
    if model is not None:
        known = known.where(f.c.model == model)
    looked_up = feedback_model(project).label("m")
    unknown = (
        sa.select(fb, looked_up, *sums)
        .where(*where, f.c.type.in_(_TYPES), f.c.model.is_(None))
        .group_by(sa.text("m"), fb)
    )
    if model is not None:
        unknown = unknown.where(looked_up == model)
    grouped = [*connection.execute(known)]
    if _has_feedback_without_model(connection, project):
        grouped += connection.execute(unknown)
    for bucket_no, name, count, up, down, ratings, rating_sum in grouped:
        entry = item(int(bucket_no), name)
        entry["feedback"] += count
        entry["thumbs_up"] += up or 0
        entry["thumbs_down"] += down or 0
        if ratings:
            entry["_ratings"] = entry.get("_ratings", 0) + ratings
            entry["_rating_sum"] = entry.get("_rating_sum", 0.0) + float(rating_sum)
    for entry in items.values():
        if "_ratings" in entry:
            entry["average_rating"] = entry.pop("_rating_sum") / entry.pop("_ratings")
    return [items[key] for key in sorted(items)]
