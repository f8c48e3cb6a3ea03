"""One streamed pass over feedback and the interactions it is about, for every analysis.

:func:`observe` reads the selected feedback once (as light rows) into flat
arrays, then the interactions it targets in chunks of ids, keeping their model,
time and prompt / response keys (never their text). Trends, quality over time,
agreement, top issues and the leaderboard are all computed from the result.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .._models import FeedbackFilter, InteractionFilter
from ..datasets._collect import InteractionIndex, SignalTable
from ..datasets._sources import FeedbackRow, iter_feedback_rows
from ..storage.base import Storage

__all__ = ["KINDS", "Observations", "as_feedback_filter", "observe"]

KINDS = ("rating", "binary", "multi_dimensional", "text", "comparative")
_KIND_CODE = {k: n for n, k in enumerate(KINDS)}
_SENTIMENT_CODE = {"positive": 1, "negative": -1, "neutral": 0}
_NO_SENTIMENT = -2
_NEGATIVE_SCORE = 0.4
_WORD = re.compile(r"[^\W\d_][\w'-]*[^\W_]", re.UNICODE)


@dataclass
class Observations:
    """Per feedback (in arrays, by feedback ordinal) and per interaction facts of one selection."""

    table: SignalTable
    index: InteractionIndex
    interaction: array[int] = field(default_factory=lambda: array("I"))
    """SignalTable position of each feedback's interaction."""
    day: array[int] = field(default_factory=lambda: array("i"))
    """UTC day number (days since 1970-01-01) of each feedback."""
    kind: array[int] = field(default_factory=lambda: array("B"))
    score: array[float] = field(default_factory=lambda: array("d"))
    """0..1 score of each feedback (NaN when it has none)."""
    user: array[int] = field(default_factory=lambda: array("i"))
    """Annotator code (-1 when anonymous); names in ``users``."""
    sentiment: array[int] = field(default_factory=lambda: array("b"))
    users: list[str] = field(default_factory=list)
    dimensions: list[str] = field(default_factory=list)
    dim_feedback: array[int] = field(default_factory=lambda: array("I"))
    dim_code: array[int] = field(default_factory=lambda: array("H"))
    dim_score: array[float] = field(default_factory=lambda: array("d"))
    complaints: list[tuple[int, str]] = field(default_factory=list)
    """(feedback ordinal, text) of negative comments."""
    keep: Callable[[int], bool] = lambda i: True
    """Whether the interaction at a SignalTable position is in the selection (model filter)."""

    def __len__(self) -> int:
        return len(self.kind)


def as_feedback_filter(flt: FeedbackFilter | InteractionFilter | None) -> tuple[FeedbackFilter, set[str] | None]:
    """The feedback filter to read with, and the set of models to keep afterwards (None: all).

    An InteractionFilter (the collector and dashboard pass one) keeps its time
    range, user and session, applied to the feedback, and its models.
    """
    if flt is None:
        return FeedbackFilter(), None
    if isinstance(flt, FeedbackFilter):
        return flt, None
    models = None if flt.models is None else set(flt.models)
    single = next(iter(models)) if models is not None and len(models) == 1 else None
    ffilter = FeedbackFilter(
        start_time=flt.start_time, end_time=flt.end_time, user_id=flt.user_id, session_id=flt.session_id, model=single
    )
    return ffilter, models


def observe(storage: Storage, flt: FeedbackFilter | InteractionFilter | None = None) -> Observations:
    """Read the selection once; see the module docstring."""
    ffilter, models = as_feedback_filter(flt)
    table = SignalTable(rating_threshold=0.75, use_text_sentiment=False)
    obs = Observations(table=table, index=InteractionIndex(0, keep_text=False))
    user_codes: dict[str, int] = {}
    dim_codes: dict[str, int] = {}
    for row in iter_feedback_rows(storage, ffilter, with_data=True):
        table.add(row)
        n = len(obs.kind)
        obs.interaction.append(table.idx(row.interaction_id))
        obs.day.append(math.floor(row.timestamp / 86400))
        obs.kind.append(_KIND_CODE.get(row.type, _KIND_CODE["text"]))
        obs.score.append(math.nan if row.score is None else row.score)
        if row.user_id is None:
            obs.user.append(-1)
        else:
            code = user_codes.get(row.user_id)
            if code is None:
                code = user_codes[row.user_id] = len(obs.users)
                obs.users.append(row.user_id)
            obs.user.append(code)
        obs.sentiment.append(_SENTIMENT_CODE.get(row.sentiment or "", _NO_SENTIMENT))
        _details(obs, n, row, dim_codes)
    index = InteractionIndex(len(table), keep_text=False)
    index.load(storage, table.ids, range(len(table)), seed="0", test_fraction=0.0)
    obs.index = index
    if models is not None:
        wanted = {code for code, name in enumerate(index.models) if name in models}
        obs.keep = lambda i: index.model[i] in wanted
    return obs


def _details(obs: Observations, n: int, row: FeedbackRow, dim_codes: dict[str, int]) -> None:
    data = row.data or {}
    comment: str | None = None
    if row.type == "text" and row.sentiment == "negative" or row.type == "rating" and row.score is not None and row.score <= _NEGATIVE_SCORE:
        comment = data.get("comment")
    elif row.type == "multi_dimensional":
        max_score = float(data.get("max_score") or 5)
        for name, value in (data.get("dimensions") or {}).items():
            code = dim_codes.get(name)
            if code is None:
                code = dim_codes[name] = len(obs.dimensions)
                obs.dimensions.append(name)
            obs.dim_feedback.append(n)
            obs.dim_code.append(code)
            obs.dim_score.append(float(value) / max_score)
        if row.score is not None and row.score <= _NEGATIVE_SCORE:
            comment = data.get("overall_comment")
    if comment:
        obs.complaints.append((n, comment))


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (letters, inner apostrophes and hyphens)."""
    return [w.lower() for w in _WORD.findall(text)]


def top_words(texts: list[str], stopwords: frozenset[str], limit: int = 10) -> list[str]:
    """The ``limit`` most frequent words of ``texts``, stop words and short words left out."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in words(text) if len(w) > 2 and w not in stopwords})
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
