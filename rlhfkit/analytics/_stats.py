"""Feedback statistics and record filters in plain Python.

The memory and local backends (and any backend without a query engine) share
these: :func:`compute_stats` aggregates interactions and feedback into a
:class:`~rlhfkit.FeedbackStats`, :func:`matches_interaction` and
:func:`matches_feedback` decide whether a record passes a filter, and
:func:`paginate` applies ``after_id`` / ``offset`` / ``limit``.

The SQL backend computes the same numbers with SQL aggregates; the contract
tests check that both agree on the same data. The rules, shared by all:

* A time range is half-open: ``start_time <= timestamp < end_time``.
* Ratings are put on a 1..5 scale before averaging: ``1 + 4 * normalized``
  where ``normalized = (value - 1) / (max_rating - 1)``; the distribution counts
  them per star, rounded half up.
* An interaction "has feedback" when a feedback in range targets it: its
  ``interaction_id``, or for a comparison any of the compared interactions.
* A comparison is a set of pairs (preferred, alternative): each pair is one win
  for the preferred interaction's model and one loss for the alternative's.
* Per-model numbers attribute a feedback to the model of its ``interaction_id``;
  interactions without a model are counted under ``"unknown"``.
* ``min_rating`` / ``max_rating`` compare a rating's raw value. On a feedback
  filter they drop ratings out of range and, unless ``types`` is given, every
  feedback that is not a rating; on an interaction filter they keep interactions
  with at least one rating in range.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

from .._models import (
    BinaryData,
    BinaryFeedback,
    BinaryStats,
    ComparativeData,
    ComparativeStats,
    Feedback,
    FeedbackFilter,
    FeedbackStats,
    FeedbackType,
    Interaction,
    InteractionFilter,
    ModelStats,
    MultiDimensionalData,
    MultiDimensionalStats,
    RatingData,
    RatingStats,
    Sentiment,
    TextData,
    TextStats,
)

__all__ = [
    "UNKNOWN_MODEL",
    "compute_stats",
    "feedback_targets",
    "feedback_value",
    "in_range",
    "matches_feedback",
    "matches_feedback_summary",
    "matches_interaction",
    "needs_feedback",
    "paginate",
    "rating_bucket",
    "rating_on_five",
]

UNKNOWN_MODEL = "unknown"
"""The model name under which interactions without a model are counted."""

T = TypeVar("T", Interaction, Feedback)


def in_range(timestamp: datetime, start_time: datetime | None, end_time: datetime | None) -> bool:
    """True when ``start_time <= timestamp < end_time`` (a missing bound is open)."""
    if start_time is not None and timestamp < start_time:
        return False
    return end_time is None or timestamp < end_time


def rating_on_five(data: RatingData) -> float:
    """A rating put on the 1..5 scale: ``1 + 4 * normalized``."""
    return 1.0 + 4.0 * data.normalized


def rating_bucket(on_five: float) -> int:
    """The star (1..5) a rating on the 1..5 scale counts under, rounded half up."""
    return min(5, max(1, int(math.floor(on_five + 0.5))))


def feedback_value(feedback: Feedback) -> float | None:
    """One number per feedback for aggregates.

    Binary: +1 / -1; rating: normalised to 0..1; multi-dimensional: the
    weighted score; text and comparative: None.
    """
    data = feedback.data
    if isinstance(data, BinaryData):
        return 1.0 if data.value == BinaryFeedback.THUMBS_UP else -1.0
    if isinstance(data, RatingData):
        return data.normalized
    if isinstance(data, MultiDimensionalData):
        return data.weighted_score
    return None


def feedback_targets(feedback: Feedback) -> list[str]:
    """Every interaction id a feedback is about, ``interaction_id`` first, without repeats."""
    return list(dict.fromkeys([feedback.interaction_id, *feedback.interaction_ids()]))


def matches_interaction(
    interaction: Interaction, filter: InteractionFilter, feedback_of_interaction: Iterable[Feedback] = ()
) -> bool:
    """True when ``interaction`` passes every field of ``filter`` but the paging ones.

    ``feedback_of_interaction`` is the feedback targeting the interaction; it is
    read only when the filter asks about feedback.
    """
    f = filter
    if not in_range(interaction.timestamp, f.start_time, f.end_time):
        return False
    if f.ids is not None and interaction.id not in f.ids:
        return False
    if f.user_id is not None and interaction.user_id != f.user_id:
        return False
    if f.session_id is not None and interaction.session_id != f.session_id:
        return False
    if f.models is not None and interaction.model not in f.models:
        return False
    if f.provider is not None and interaction.provider != f.provider:
        return False
    if f.errors_only and interaction.error is None:
        return False
    if f.search is not None:
        needle = f.search.lower()
        if needle not in interaction.prompt.lower() and needle not in interaction.response.lower():
            return False
    if needs_feedback(f):
        summary = [(fb.type, fb.data.value if isinstance(fb.data, RatingData) else None) for fb in feedback_of_interaction]
        return matches_feedback_summary(summary, f)
    return True


def needs_feedback(filter: InteractionFilter) -> bool:
    """True when ``filter`` asks about an interaction's feedback (has_feedback, types, ratings)."""
    f = filter
    return f.has_feedback is not None or f.feedback_types is not None or f.min_rating is not None or f.max_rating is not None


def matches_feedback_summary(
    summary: Iterable[tuple[FeedbackType | str, float | None]], filter: InteractionFilter
) -> bool:
    """The feedback fields of an interaction filter, given (type, rating value or None) per feedback."""
    f = filter
    pairs = [(FeedbackType(kind), rating) for kind, rating in summary]
    if f.has_feedback is not None and bool(pairs) != f.has_feedback:
        return False
    if f.feedback_types is not None and not any(kind in f.feedback_types for kind, _ in pairs):
        return False
    return not (
        (f.min_rating is not None or f.max_rating is not None)
        and not any(
            kind == FeedbackType.RATING and rating is not None and _rating_in_bounds(rating, f.min_rating, f.max_rating)
            for kind, rating in pairs
        )
    )


def matches_feedback(feedback: Feedback, filter: FeedbackFilter, interaction_model: str | None = None) -> bool:
    """True when ``feedback`` passes every field of ``filter`` but the paging ones.

    ``interaction_model`` is the model of the feedback's interaction, read only
    when the filter has ``model``.
    """
    f = filter
    if not in_range(feedback.timestamp, f.start_time, f.end_time):
        return False
    if f.ids is not None and feedback.id not in f.ids:
        return False
    if f.interaction_ids is not None and not set(feedback_targets(feedback)) & set(f.interaction_ids):
        return False
    if f.types is not None and feedback.type not in f.types:
        return False
    if f.user_id is not None and feedback.user_id != f.user_id:
        return False
    if f.session_id is not None and feedback.session_id != f.session_id:
        return False
    if f.source is not None and feedback.source != f.source:
        return False
    if f.sentiment is not None and not (isinstance(feedback.data, TextData) and feedback.data.sentiment == f.sentiment):
        return False
    if f.min_rating is not None or f.max_rating is not None:
        if isinstance(feedback.data, RatingData):
            if not _rating_in_bounds(feedback.data.value, f.min_rating, f.max_rating):
                return False
        elif f.types is None:
            return False
    return not (f.model is not None and interaction_model != f.model)


def _rating_in_bounds(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def paginate(records: Iterable[T], filter: InteractionFilter | FeedbackFilter) -> Iterator[T]:
    """Apply ``after_id``, then ``offset``, then ``limit`` to records already in id order."""
    it: Iterator[T] = iter(records)
    if filter.after_id is not None:
        after = filter.after_id
        it = (r for r in it if r.id > after)
    stop = None if filter.limit is None else filter.offset + filter.limit
    return itertools.islice(it, filter.offset, stop)


class _ModelAcc:
    """Running sums of one model."""

    __slots__ = ("feedback", "interactions", "latency_n", "latency_sum", "rating_n", "rating_sum", "down", "up")

    def __init__(self) -> None:
        self.interactions = self.feedback = self.up = self.down = self.rating_n = self.latency_n = 0
        self.rating_sum = self.latency_sum = 0.0


def compute_stats(
    interactions: Iterable[Interaction],
    feedback: Iterable[Feedback],
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    model_of: Callable[[str], str | None] | None = None,
) -> FeedbackStats:
    """Aggregate interactions and feedback whose timestamp is in [start_time, end_time).

    Records outside the range are ignored, so callers may pass everything.
    ``model_of(interaction_id)`` names the model of an interaction outside the
    range (a comparison may involve older interactions); by default only the
    interactions passed in are known.
    """
    models: dict[str, str | None] = {}
    in_window: list[str] = []
    accs: dict[str, _ModelAcc] = defaultdict(_ModelAcc)
    for interaction in interactions:
        models[interaction.id] = interaction.model
        if not in_range(interaction.timestamp, start_time, end_time):
            continue
        in_window.append(interaction.id)
        acc = accs[interaction.model or UNKNOWN_MODEL]
        acc.interactions += 1
        if interaction.latency is not None:
            acc.latency_n += 1
            acc.latency_sum += interaction.latency

    def model_name(interaction_id: str) -> str:
        if interaction_id in models:
            return models[interaction_id] or UNKNOWN_MODEL
        found = model_of(interaction_id) if model_of is not None else None
        return found or UNKNOWN_MODEL

    by_type: dict[str, int] = defaultdict(int)
    binary, text, comparative = BinaryStats(), TextStats(), ComparativeStats()
    ratings: list[float] = []
    dims: dict[str, list[float]] = defaultdict(list)
    weighted: list[float] = []
    targeted: set[str] = set()
    total = 0
    for fb in feedback:
        if not in_range(fb.timestamp, start_time, end_time):
            continue
        total += 1
        by_type[fb.type.value] += 1
        targeted.update(feedback_targets(fb))
        acc = accs[model_name(fb.interaction_id)]
        acc.feedback += 1
        data = fb.data
        if isinstance(data, BinaryData):
            if data.value == BinaryFeedback.THUMBS_UP:
                binary.thumbs_up += 1
                acc.up += 1
            else:
                binary.thumbs_down += 1
                acc.down += 1
        elif isinstance(data, RatingData):
            on_five = rating_on_five(data)
            ratings.append(on_five)
            acc.rating_n += 1
            acc.rating_sum += on_five
        elif isinstance(data, TextData):
            text.count += 1
            if data.sentiment == Sentiment.POSITIVE:
                text.positive += 1
            elif data.sentiment == Sentiment.NEGATIVE:
                text.negative += 1
            elif data.sentiment == Sentiment.NEUTRAL:
                text.neutral += 1
            else:
                text.unknown += 1
        elif isinstance(data, MultiDimensionalData):
            for name, score in data.dimensions.items():
                dims[name].append(score)
            weighted.append(data.weighted_score)
        elif isinstance(data, ComparativeData):
            comparative.count += 1
            winner = model_name(data.preferred_id)
            for alternative in data.alternative_ids:
                comparative.wins_by_model[winner] = comparative.wins_by_model.get(winner, 0) + 1
                loser = model_name(alternative)
                comparative.losses_by_model[loser] = comparative.losses_by_model.get(loser, 0) + 1

    rating = RatingStats(count=len(ratings))
    if ratings:
        rating.average = sum(ratings) / len(ratings)
        rating.median = _median(ratings)
        distribution = dict.fromkeys(range(1, 6), 0)
        for value in ratings:
            distribution[rating_bucket(value)] += 1
        rating.distribution = distribution
    multi = MultiDimensionalStats(count=len(weighted))
    if weighted:
        multi.dimension_averages = {name: sum(v) / len(v) for name, v in sorted(dims.items())}
        multi.average_weighted_score = sum(weighted) / len(weighted)
    return FeedbackStats(
        total_interactions=len(in_window),
        total_feedback=total,
        interactions_with_feedback=sum(1 for iid in in_window if iid in targeted),
        by_type=dict(sorted(by_type.items())),
        binary=binary,
        rating=rating,
        text=text,
        multi_dimensional=multi,
        comparative=comparative,
        by_model={name: _model_stats(name, acc) for name, acc in sorted(accs.items())},
        start_time=start_time,
        end_time=end_time,
    )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _model_stats(name: str, acc: _ModelAcc) -> ModelStats:
    return ModelStats(
        model=name,
        interactions=acc.interactions,
        feedback=acc.feedback,
        thumbs_up=acc.up,
        thumbs_down=acc.down,
        average_rating=acc.rating_sum / acc.rating_n if acc.rating_n else None,
        average_latency_ms=acc.latency_sum / acc.latency_n if acc.latency_n else None,
    )
