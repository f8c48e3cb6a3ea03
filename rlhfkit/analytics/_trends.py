"""Feedback over time: daily trends, quality per model and dimension, and top issues.

* **Trends** bucket feedback by the UTC day it was given: volume per type,
  thumbs up / down and their ratio, average rating on the 1..5 scale of the
  stats, average weighted multi-dimensional score (0..1).
* **Quality over time** buckets judgements by the UTC day of the interaction
  they judge (when the model answered) and by its model, one series per
  dimension: ``rating`` (0..1), ``thumbs_up`` (share of thumbs up),
  ``weighted_score`` (0..1), ``positive_sentiment`` (share of positive among
  positive and negative comments) and ``dimension:<name>`` for every named
  dimension of multi-dimensional feedback (0..1).
* **Top issues** are the most frequent words of negative comments: text
  feedback with negative sentiment, and the comments of ratings and
  multi-dimensional judgements scoring at most 0.4 of their scale.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from ._observations import KINDS, Observations, top_words

__all__ = ["daily_trends", "quality_over_time", "top_issues"]

_EPOCH = date(1970, 1, 1)
_RATING, _BINARY, _MULTI, _TEXT, _COMPARATIVE = range(len(KINDS))
_STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "don't", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if", "in", "into", "is", "isn't", "it", "it's", "its", "just", "me", "more", "most", "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "answer", "response", "reply", "really", "very", "much", "even", "get", "got"]
)


def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


def daily_trends(obs: Observations) -> list[dict[str, Any]]:
    """One dict per UTC day with feedback, oldest first (see the module docstring)."""
    days: dict[int, list[float]] = defaultdict(lambda: [0.0] * 11)
    for n in range(len(obs)):
        if not obs.keep(obs.interaction[n]):
            continue
        acc = days[obs.day[n]]
        kind, score = obs.kind[n], obs.score[n]
        acc[0] += 1
        acc[1 + kind] += 1
        if kind == _BINARY:
            acc[6 if score >= 0.5 else 7] += 1
        elif kind == _RATING and not math.isnan(score):
            acc[8] += 1 + 4 * score
        elif kind == _MULTI and not math.isnan(score):
            acc[9] += score
        elif kind == _TEXT and obs.sentiment[n] == -1:
            acc[10] += 1
    out = []
    for day in sorted(days):
        a = days[day]
        thumbs = a[6] + a[7]
        out.append({
            "date": _date(day),
            "feedback": int(a[0]),
            "by_type": {kind: int(a[1 + k]) for k, kind in enumerate(KINDS) if a[1 + k]},
            "thumbs_up": int(a[6]),
            "thumbs_down": int(a[7]),
            "thumbs_up_ratio": round(a[6] / thumbs, 4) if thumbs else None,
            "average_rating": round(a[8] / a[1 + _RATING], 4) if a[1 + _RATING] else None,
            "average_weighted_score": round(a[9] / a[1 + _MULTI], 4) if a[1 + _MULTI] else None,
            "negative_comments": int(a[10]),
        })  # fmt: skip
    return out


def quality_over_time(obs: Observations) -> list[dict[str, Any]]:
    """One dict per (day, model, dimension): ``date``, ``model``, ``dimension``, ``mean``, ``count``."""
    index = obs.index
    sums: dict[tuple[int, str, str], list[float]] = defaultdict(lambda: [0.0, 0])

    def where(n: int) -> tuple[int, str] | None:
        i = obs.interaction[n]
        if not obs.keep(i):
            return None
        found = index.found(i)
        day = math.floor(index.time[i] / 86400) if found else obs.day[n]
        return day, (index.model_name(i) if found else None) or "unknown"

    names = {_RATING: "rating", _BINARY: "thumbs_up", _MULTI: "weighted_score"}
    for n in range(len(obs)):
        kind = obs.kind[n]
        if kind == _TEXT:
            if obs.sentiment[n] not in (1, -1):
                continue
            value, name = (1.0 if obs.sentiment[n] == 1 else 0.0), "positive_sentiment"
        elif kind in names and not math.isnan(obs.score[n]):
            value, name = obs.score[n], names[kind]
        else:
            continue
        place = where(n)
        if place is not None:
            acc = sums[(place[0], place[1], name)]
            acc[0] += value
            acc[1] += 1
    for k in range(len(obs.dim_feedback)):
        place = where(obs.dim_feedback[k])
        if place is not None:
            acc = sums[(place[0], place[1], f"dimension:{obs.dimensions[obs.dim_code[k]]}")]
            acc[0] += obs.dim_score[k]
            acc[1] += 1
    return [
        {"date": _date(day), "model": model, "dimension": name, "mean": round(s / c, 4), "count": int(c)}
        for (day, model, name), (s, c) in sorted(sums.items())
    ]


def top_issues(obs: Observations, limit: int = 10) -> list[str]:
    """The most frequent words of negative comments in the selection."""
    texts = [text for n, text in obs.complaints if obs.keep(obs.interaction[n])]
    return top_words(texts, _STOPWORDS, limit)
