"""Analytics: Krippendorff's alpha, Cohen's kappa, Bradley–Terry, and build_analytics on real backends."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from rlhfkit._models import AnalyticsResult, FeedbackFilter, InteractionFilter
from rlhfkit.analytics import (
    annotator_agreement,
    bradley_terry,
    build_analytics,
    cohen_kappa,
    krippendorff_alpha,
    leaderboard,
)
from rlhfkit.storage.base import Storage

from .conftest import T0, Recorder

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 coders, 12 units, missing values.
_N = None
_CODERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _N, _N, _N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _N, 3],
    [_N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _N],
]


def test_krippendorff_alpha_matches_the_published_example() -> None:
    """Nominal alpha 0.743 and interval alpha 0.849 on Krippendorff's worked example."""
    units = [[coder[k] for coder in _CODERS if coder[k] is not None] for k in range(12)]
    assert krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=5e-4)


def test_krippendorff_alpha_edge_cases() -> None:
    """Perfect agreement is 1; nothing pairable or no variation at all gives None."""
    assert krippendorff_alpha([[1, 1], [3, 3], [5, 5]]) == 1.0
    assert krippendorff_alpha([[1], [2]]) is None
    assert krippendorff_alpha([[2, 2], [2, 2]]) is None
    assert krippendorff_alpha([["up", "down"], ["down", "up"]], "nominal") < 0


def test_cohen_kappa_of_a_two_by_two_table() -> None:
    """20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: observed 0.7, chance 0.5, kappa 0.4."""
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([]) is None


def test_bradley_terry_recovers_the_odds_and_brackets_them() -> None:
    """300 wins to 100 give a strength ratio near 3, intervals that do not overlap, ranks and win rates."""
    board = bradley_terry([("a", "b")] * 300 + [("b", "a")] * 100)
    a, b = board
    assert (a["rank"], a["model"], b["model"]) == (1, "a", "b")
    assert a["strength"] / b["strength"] == pytest.approx(3.0, rel=0.02)
    assert a["ci_low"] < a["rating"] < a["ci_high"]
    assert a["ci_low"] > b["ci_high"]
    assert (a["wins"], a["losses"], a["comparisons"], a["win_rate"]) == (300, 100, 400, 0.75)
    assert math.isclose((a["rating"] + b["rating"]) / 2, 1000, abs_tol=0.2)


def test_bradley_terry_undefeated_model_is_finite_and_more_data_narrows_intervals() -> None:
    """A model that never lost gets a finite rating; ten times the games give narrower intervals."""
    few = {r["model"]: r for r in bradley_terry({("a", "b"): 3, ("b", "c"): 2})}
    many = {r["model"]: r for r in bradley_terry({("a", "b"): 30, ("b", "c"): 20, ("c", "a"): 1})}
    assert math.isfinite(few["a"]["rating"]) and few["a"]["rank"] == 1
    assert many["a"]["ci_high"] - many["a"]["ci_low"] < few["a"]["ci_high"] - few["a"]["ci_low"]
    assert bradley_terry([]) == []


def _arena(rec: Recorder) -> None:
    """Model A beats model B on most prompts, by comparisons and by same-prompt ratings; two raters overlap."""
    for n in range(12):
        a = rec.ask(f"question {n}", f"A says {n}", model="model-a")
        b = rec.ask(f"question {n}", f"B says {n}", model="model-b")
        if n < 6:
            rec.prefer(a, b, user="judge") if n != 5 else rec.prefer(b, a, user="judge")
        else:
            rec.rate(a, 5, user="ann", at=T0 + timedelta(days=n - 5))
            rec.rate(b, 2 if n != 11 else 5, user="ann", at=T0 + timedelta(days=n - 5))
            rec.rate(a, 4, user="bob", at=T0 + timedelta(days=n - 5))
            rec.thumb(b, False, user="ann")
            rec.thumb(b, n % 2 == 0, user="bob")
    rec.say(rec.interactions[1], "Wrong units and far too slow", sentiment="negative")
    rec.say(rec.interactions[3], "wrong again", sentiment="negative")
    rec.score(rec.interactions[0], {"accuracy": 5, "tone": 3})


def test_build_analytics_fills_every_part(storage: Storage, rec: Recorder) -> None:
    """Stats, daily trends, top issues, a leaderboard, quality per day/model/dimension and agreement."""
    _arena(rec)
    rec.save(storage)
    result = build_analytics(storage)
    assert isinstance(result, AnalyticsResult)
    assert result.stats.total_feedback == len(rec.feedback)

    board = {row["model"]: row for row in result.leaderboard}
    assert board["model-a"]["rank"] == 1
    # 5 comparisons won by A, 1 by B; 5 rating pairs won by A (question 11 ties 5 vs 5, no pair).
    assert (board["model-a"]["wins"], board["model-a"]["losses"]) == (10, 1)
    assert board["model-b"]["comparisons"] == 11
    assert board["model-a"]["rating"] > board["model-b"]["rating"]

    days = {t["date"]: t for t in result.trends}
    day_one = (T0 + timedelta(days=1)).date().isoformat()
    assert days[day_one]["by_type"] == {"rating": 3}
    assert days[day_one]["average_rating"] == pytest.approx((5 + 2 + 4) / 3, abs=1e-3)

    assert result.top_issues[0] == "wrong"
    assert {"units", "slow"} <= set(result.top_issues)

    quality = {(q["model"], q["dimension"]): q for q in result.quality_over_time if q["date"] == T0.date().isoformat()}
    assert quality[("model-a", "rating")]["count"] == 12
    assert quality[("model-a", "rating")]["mean"] == pytest.approx((6 * 1.0 + 6 * 0.75) / 12)
    assert quality[("model-b", "thumbs_up")]["mean"] == pytest.approx(3 / 12)
    assert quality[("model-a", "dimension:accuracy")]["mean"] == 1.0

    rating = result.agreement["rating"]
    assert (rating["metric"], rating["items"], rating["annotators"]) == ("interval", 6, 2)
    assert rating["alpha"] is not None and rating["alpha"] < 1
    binary = result.agreement["binary"]
    assert binary["metric"] == "nominal" and binary["items"] == 6
    assert "cohen_kappa" in binary


def test_filters_narrow_the_analytics(storage: Storage, rec: Recorder) -> None:
    """A feedback time range, or an InteractionFilter's models, narrows every part."""
    _arena(rec)
    rec.save(storage)
    late = build_analytics(storage, FeedbackFilter(start_time=T0 + timedelta(days=4)))
    assert all(t["date"] >= (T0 + timedelta(days=4)).date().isoformat() for t in late.trends)
    only_b = build_analytics(storage, InteractionFilter(models=["model-b", "model-x"]))
    assert {q["model"] for q in only_b.quality_over_time} == {"model-b"}
    assert only_b.leaderboard == []
    assert "rating" not in only_b.agreement


def test_public_leaderboard_and_agreement_helpers(memory: Storage, rec: Recorder) -> None:
    """leaderboard() and annotator_agreement() give the same answers as build_analytics."""
    _arena(rec)
    rec.save(memory)
    full = build_analytics(memory)
    assert leaderboard(memory) == full.leaderboard
    assert annotator_agreement(memory) == full.agreement
    strict = {r["model"]: r for r in leaderboard(memory, min_margin=1.0)}
    assert strict["model-a"]["wins"] == 5  # thumbs and ratings on a 0..1 scale never differ by 1.0 here


def test_empty_storage_gives_empty_analytics(storage: Storage) -> None:
    """No feedback: empty trends, leaderboard, quality and agreement, no error."""
    result = build_analytics(storage)
    assert (result.trends, result.leaderboard, result.quality_over_time, result.agreement, result.top_issues) == (
        [], [], [], {}, []
    )
