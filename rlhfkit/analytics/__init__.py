"""Analytics of logged feedback: stats, trends, a model leaderboard, quality over time, agreement.

:func:`build_analytics` fills an :class:`~rlhfkit.AnalyticsResult` in one
streamed pass over the selected feedback and the interactions it is about:

* ``stats``: the backend's :meth:`~rlhfkit.storage.base.Storage.feedback_stats`;
* ``trends``: per UTC day, feedback volume, thumbs ratio, average rating ...;
* ``top_issues``: the most frequent words of negative comments;
* ``leaderboard``: Bradley–Terry ratings with confidence intervals, win rates
  and comparisons per model, from comparisons and same-prompt pairs
  (:func:`leaderboard`, :func:`bradley_terry`);
* ``quality_over_time``: per day, model and dimension;
* ``agreement``: Krippendorff's alpha per feedback type where several people
  judged the same interaction (:func:`annotator_agreement`).

Example::

    from rlhfkit.analytics import build_analytics

    result = build_analytics(storage)
    for row in result.leaderboard:
        print(row["rank"], row["model"], row["rating"], row["ci_low"], row["ci_high"])
"""

from __future__ import annotations

import logging
from typing import Any

from .._models import AnalyticsResult, FeedbackFilter, InteractionFilter
from ..storage.base import Storage
from ._agreement import agreement_by_type, cohen_kappa, krippendorff_alpha
from ._leaderboard import bradley_terry, model_outcomes
from ._observations import observe
from ._trends import daily_trends, quality_over_time, top_issues

__all__ = [
    "annotator_agreement",
    "bradley_terry",
    "build_analytics",
    "cohen_kappa",
    "krippendorff_alpha",
    "leaderboard",
]

logger = logging.getLogger("rlhfkit.analytics")

Selection = FeedbackFilter | InteractionFilter | None


def build_analytics(storage: Storage, filter: Selection = None) -> AnalyticsResult:
    """Everything :class:`~rlhfkit.AnalyticsResult` holds, for the feedback ``filter`` selects.

    ``filter`` is a FeedbackFilter (its time range applies to when feedback
    was given), or an InteractionFilter, whose time range, user, session and
    models are applied the same way. ``stats`` covers the filter's time range.
    """
    obs = observe(storage, filter)
    start = None if filter is None else filter.start_time
    end = None if filter is None else filter.end_time
    return AnalyticsResult(
        stats=storage.feedback_stats(start, end),
        trends=daily_trends(obs),
        top_issues=top_issues(obs),
        leaderboard=bradley_terry(model_outcomes(obs)),
        quality_over_time=quality_over_time(obs),
        agreement=agreement_by_type(obs),
    )


def leaderboard(
    storage: Storage,
    filter: Selection = None,
    *,
    min_margin: float = 0.2,
    max_pairs_per_prompt: int | None = 64,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """The model leaderboard of the selection: see :func:`bradley_terry` for the columns.

    Outcomes are the pairs a preference dataset would hold (same rules and
    ``min_margin``), between responses of different models.
    """
    obs = observe(storage, filter)
    outcomes = model_outcomes(obs, min_margin=min_margin, max_pairs_per_prompt=max_pairs_per_prompt)
    return bradley_terry(outcomes, confidence=confidence)


def annotator_agreement(storage: Storage, filter: Selection = None) -> dict[str, Any]:
    """Krippendorff's alpha per feedback type (and Cohen's kappa for two annotators).

    Returns ``{type: {"alpha", "metric", "items", "judgements", "annotators"[, "cohen_kappa"]}}``
    for the types where some interaction was judged by two people or more.
    """
    return agreement_by_type(observe(storage, filter))
