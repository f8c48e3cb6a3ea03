"""The analytics page's data: series per model over time, the leaderboard, the rating distribution.

Everything is returned as JSON-ready dictionaries; the browser draws them.
The leaderboard is served on its own (it reads every feedback in range) so
that the charts never wait for it.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime
from typing import Any, Literal

from ..._models import FeedbackFilter, FeedbackStats
from ...storage.base import Storage

__all__ = ["METRICS", "analytics_payload", "leaderboard", "series"]

logger = logging.getLogger("rlhfkit.server.dashboard")

METRICS = {
    "interactions": "Volume (interactions)",
    "feedback_rate": "Feedback rate",
    "thumbs_ratio": "Thumbs-up ratio",
    "average_rating": "Average rating (1–5)",
    "p50_latency_ms": "Latency p50 (ms)",
    "p95_latency_ms": "Latency p95 (ms)",
}
"""The charts of the analytics page: metric name → title."""

_BUCKET_MICROS = {"hour": 3_600_000_000, "day": 86_400_000_000}


def _with_feedback(
    storage: Any, bucket: str, start: datetime | None, end: datetime | None
) -> dict[tuple[int, str], int]:
    """Interactions that received feedback, per (bucket number, model), in one SQL query."""
    from ...storage._sql_rows import sa
    from ...storage._sql_schema import feedback_targets as t
    from ...storage._sql_schema import interactions as i
    from ...storage._sql_schema import to_micros

    size = _BUCKET_MICROS[bucket]
    targeted = sa.select(sa.literal(1)).where(t.c.project == storage.project, t.c.interaction_id == i.c.id).exists()
    conditions = [i.c.project == storage.project, targeted]
    if start is not None:
        conditions.append(i.c.timestamp >= to_micros(start))
    if end is not None:
        conditions.append(i.c.timestamp < to_micros(end))
    query = (
        sa.select((i.c.timestamp // size).label("b"), i.c.model, sa.func.count())
        .where(*conditions)
        .group_by(sa.text("b"), i.c.model)
    )
    with storage._connect() as connection:
        return {(int(b), model or "unknown"): int(n) for b, model, n in connection.execute(query)}


def series(
    storage: Storage, bucket: Literal["hour", "day"], start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """``{"buckets": [iso...], "models": [...], "series": {metric: {model: [value or None per bucket]}}}``."""
    timeseries = getattr(storage, "timeseries", None)
    if timeseries is None:
        return {"buckets": [], "models": [], "series": {m: {} for m in METRICS}}
    items: list[dict[str, Any]] = timeseries(bucket=bucket, start_time=start, end_time=end)
    with_feedback: dict[tuple[int, str], int] = {}
    if hasattr(storage, "_connect") and hasattr(storage, "project"):
        with_feedback = _with_feedback(storage, bucket, start, end)
    buckets = sorted({item["bucket"] for item in items})
    models = sorted({item["model"] for item in items})
    position = {b: n for n, b in enumerate(buckets)}
    out: dict[str, dict[str, list[float | None]]] = {
        metric: {model: [None] * len(buckets) for model in models} for metric in METRICS
    }
    size = _BUCKET_MICROS[bucket]
    for item in items:
        n, model = position[item["bucket"]], item["model"]
        volume = item["interactions"]
        out["interactions"][model][n] = volume
        number = int(item["bucket"].timestamp() * 1_000_000) // size
        rated = with_feedback.get((number, model))
        if volume and rated is not None:
            out["feedback_rate"][model][n] = round(rated / volume, 4)
        elif volume:
            out["feedback_rate"][model][n] = 0.0
        thumbs = item["thumbs_up"] + item["thumbs_down"]
        if thumbs:
            out["thumbs_ratio"][model][n] = round(item["thumbs_up"] / thumbs, 4)
        for metric in ("average_rating", "p50_latency_ms", "p95_latency_ms"):
            value = item.get(metric)
            out[metric][model][n] = None if value is None else round(float(value), 2)
    fmt = "%Y-%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    return {"buckets": [b.strftime(fmt) for b in buckets], "models": models, "series": out}


def _from_stats(stats: FeedbackStats) -> list[dict[str, Any]]:
    """Per-model figures of the stats, ranked by comparison win rate then average rating."""
    wins = stats.comparative.wins_by_model
    losses = stats.comparative.losses_by_model
    rows: list[dict[str, Any]] = []
    for name in stats.by_model:
        played = wins.get(name, 0) + losses.get(name, 0)
        rows.append({
            "model": name,
            "win_rate": round(wins.get(name, 0) / played, 3) if played else None,
            "comparisons": played,
            **_model_figures(stats, name),
        })  # fmt: skip
    rows.sort(key=lambda r: (-(r["win_rate"] or 0), -(r["average_rating"] or 0), r["model"]))
    return [{"rank": rank, **row} for rank, row in enumerate(rows, 1)]


def _model_figures(stats: FeedbackStats, name: str) -> dict[str, Any]:
    model = stats.by_model.get(name)
    if model is None:
        return {}
    thumbs = model.thumbs_up + model.thumbs_down
    return {
        "average_rating": None if model.average_rating is None else round(model.average_rating, 2),
        "thumbs_up_ratio": round(model.thumbs_up / thumbs, 3) if thumbs else None,
        "interactions": model.interactions,
        "feedback": model.feedback,
        "average_latency_ms": None if model.average_latency_ms is None else round(model.average_latency_ms, 1),
    }


_LEADERBOARD_TTL_S = 60.0
_leaderboards: dict[tuple[int, str, Any, Any], tuple[float, list[dict[str, Any]]]] = {}


def leaderboard(storage: Storage, start: datetime | None, end: datetime | None) -> list[dict[str, Any]]:
    """The analytics module's leaderboard (Bradley–Terry) with each model's figures, else the per-model figures.

    It reads every feedback in range, so it is cached for a minute per project and range.
    """
    key = (id(getattr(storage, "engine", storage)), str(getattr(storage, "project", "")),
           None if start is None else start.replace(second=0, microsecond=0),
           None if end is None else end.replace(second=0, microsecond=0))  # fmt: skip
    now = time.monotonic()
    hit = _leaderboards.get(key)
    if hit is not None and now - hit[0] < _LEADERBOARD_TTL_S:
        return hit[1]
    stats = storage.feedback_stats(start, end)
    rows = _from_stats(stats)
    try:
        from ... import analytics

        rank = getattr(analytics, "leaderboard", None)
        board = [] if rank is None else list(rank(storage, FeedbackFilter(start_time=start, end_time=end)))
        if board:
            rows = [{**dict(entry), **{k: v for k, v in _model_figures(stats, str(entry.get("model"))).items()
                                       if k not in entry}} for entry in board]  # fmt: skip
    except Exception:  # the page still shows the per-model figures
        logger.exception("the analytics leaderboard failed; showing per-model figures")
    if len(_leaderboards) > 100:
        _leaderboards.clear()
    _leaderboards[key] = (now, rows)
    return rows


def analytics_payload(
    storage: Storage, bucket: Literal["hour", "day"], start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    """Everything the analytics page draws, as one JSON object."""
    stats = storage.feedback_stats(start, end)
    distribution: dict[int, int] = defaultdict(int, {int(k): v for k, v in stats.rating.distribution.items()})
    return {
        "summary": {
            "interactions": stats.total_interactions,
            "feedback": stats.total_feedback,
            "feedback_rate": round(stats.feedback_rate, 4),
            "thumbs_ratio": round(stats.binary.ratio, 4),
            "average_rating": round(stats.rating.average, 2) if stats.rating.count else None,
            "ratings": stats.rating.count,
            "comparisons": stats.comparative.count,
        },
        "metrics": METRICS,
        "timeseries": series(storage, bucket, start, end),
        "rating_distribution": {"labels": [f"{n}★" for n in range(1, 6)], "counts": [distribution[n] for n in range(1, 6)]},
    }
