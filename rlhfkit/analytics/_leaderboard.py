"""Model leaderboard: Bradley–Terry strengths from pairwise outcomes.

Outcomes come from the same resolved pairs a preference dataset would hold
(comparisons and same-prompt score differences, see
:mod:`rlhfkit.datasets._pairs`), counted per model when the two responses come
from different models.

Model i beats model j with probability ``p_i / (p_i + p_j)``. The strengths
are fitted by Hunter's MM algorithm, with a weak prior: every model is also
given ``prior`` virtual wins and ``prior`` virtual losses against an average
opponent of strength 1, so that a model that never lost still has a finite
strength. Strengths are then reported relative to the geometric mean of all
models (``strength`` 1, ``rating`` 1000). Confidence intervals come from the
observed Fisher information of the log-strengths (the inverse Hessian of the
log-likelihood, prior included), centred the same way so they measure how
well a model is placed relative to the others. ``rating`` puts the
log-strength on the familiar Elo scale: ``1000 + 400 * log10(strength)``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._observations import Observations

__all__ = ["bradley_terry", "model_outcomes"]


def bradley_terry(
    outcomes: Iterable[tuple[str, str]] | Mapping[tuple[str, str], int],
    *,
    prior: float = 0.5,
    confidence: float = 0.95,
    max_iterations: int = 1000,
    tolerance: float = 1e-9,
) -> list[dict[str, Any]]:
    """Rank models from ``(winner, loser)`` outcomes (or a mapping of them to counts).

    Returns one dict per model, strongest first: ``rank``, ``model``,
    ``rating`` with ``ci_low`` / ``ci_high`` (Elo scale), ``strength`` (the
    Bradley–Terry parameter, 1 = the geometric mean of the models), ``win_rate``,
    ``wins``, ``losses`` and ``comparisons``.

    Example::

        bradley_terry([("gpt-a", "gpt-b"), ("gpt-a", "gpt-b"), ("gpt-b", "gpt-a")])
    """
    counts: Counter[tuple[str, str]] = Counter()
    if isinstance(outcomes, Mapping):
        counts.update({pair: int(n) for pair, n in outcomes.items() if n})
    else:
        counts.update(outcomes)
    counts = Counter({(w, lo): n for (w, lo), n in counts.items() if w != lo and n > 0})
    models = sorted({m for pair in counts for m in pair})
    if not models:
        return []
    at = {m: k for k, m in enumerate(models)}
    size = len(models)
    wins = [0.0] * size
    games = [[0.0] * size for _ in range(size)]
    for (winner, loser), n in counts.items():
        wins[at[winner]] += n
        games[at[winner]][at[loser]] += n
        games[at[loser]][at[winner]] += n

    strength = [1.0] * size
    for _ in range(max_iterations):
        new = []
        for i in range(size):
            denominator = 2 * prior / (strength[i] + 1.0)
            for j in range(size):
                if games[i][j]:
                    denominator += games[i][j] / (strength[i] + strength[j])
            new.append((wins[i] + prior) / denominator if denominator else strength[i])
        change = max(abs(math.log(a) - math.log(b)) for a, b in zip(new, strength, strict=True))
        strength = new
        if change < tolerance:
            break

    # Observed information of the log-strengths, prior games included.
    info = [[0.0] * size for _ in range(size)]
    for i in range(size):
        q = strength[i] / (strength[i] + 1.0)
        info[i][i] += 2 * prior * q * (1 - q)
        for j in range(size):
            if i != j and games[i][j]:
                q = strength[i] / (strength[i] + strength[j])
                w = games[i][j] * q * (1 - q)
                info[i][i] += w
                info[i][j] -= w
    covariance = _inverse(info)
    # Report relative to the geometric mean model: centre the log-strengths and
    # project the covariance accordingly, so that the intervals carry the
    # uncertainty of differences between models, not of the arbitrary level.
    raw = [math.log(p) for p in strength]
    mean = sum(raw) / size
    theta = [t - mean for t in raw]
    if covariance is not None:
        row_means = [sum(r) / size for r in covariance]
        grand = sum(row_means) / size
        covariance = [
            [covariance[i][j] - row_means[i] - row_means[j] + grand for j in range(size)] for i in range(size)
        ]
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    scale = 400 / math.log(10)
    rows: list[dict[str, Any]] = []
    for i, model in enumerate(models):
        se = math.sqrt(max(covariance[i][i], 0.0)) if covariance is not None else float("nan")
        won = int(wins[i])
        played = int(sum(games[i]))
        rows.append({
            "model": model,
            "rating": round(1000 + scale * theta[i], 1),
            "ci_low": round(1000 + scale * (theta[i] - z * se), 1),
            "ci_high": round(1000 + scale * (theta[i] + z * se), 1),
            "strength": round(math.exp(theta[i]), 4),
            "win_rate": round(won / played, 4) if played else None,
            "wins": won,
            "losses": played - won,
            "comparisons": played,
        })  # fmt: skip
    rows.sort(key=lambda r: (-r["rating"], r["model"]))
    return [{"rank": rank, **row} for rank, row in enumerate(rows, 1)]


def _inverse(matrix: list[list[float]]) -> list[list[float]] | None:
    """Gauss–Jordan inverse with partial pivoting (None when singular)."""
    n = len(matrix)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            return None
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        a[col] = [v / p for v in a[col]]
        for r in range(n):
            if r != col and a[r][col]:
                f = a[r][col]
                a[r] = [v - f * pc for v, pc in zip(a[r], a[col], strict=True)]
    return [row[n:] for row in a]


def model_outcomes(obs: Observations, *, min_margin: float = 0.2, max_pairs_per_prompt: int | None = 64) -> Counter[tuple[str, str]]:
    """``(winner model, loser model)`` counts from the resolved pairs of the selection."""
    from ..datasets._collect import iter_groups
    from ..datasets._pairs import PairBuilder

    table, index = obs.table, obs.index
    builder = PairBuilder(table, index, min_margin=min_margin, max_pairs_per_prompt=max_pairs_per_prompt)
    compared = table.compared()
    positions = [i for i in range(len(table)) if obs.keep(i) and (i in compared or table.has_scores(i))]
    outcomes: Counter[tuple[str, str]] = Counter()
    for candidates in iter_groups(index, positions):
        for pair in builder.pairs(candidates):
            winner, loser = index.model_name(pair.chosen), index.model_name(pair.rejected)
            if winner and loser and winner != loser:
                outcomes[(winner, loser)] += 1
    return outcomes
