"""Agreement between annotators: Krippendorff's alpha and Cohen's kappa.

Krippendorff's alpha compares the disagreement observed within units (here,
interactions judged by two people or more) with the disagreement expected by
chance over all values: ``alpha = 1 - D_o / D_e``; 1 is perfect agreement, 0
chance, below 0 systematic disagreement. It handles any number of annotators
and missing judgements. The ``interval`` metric (squared difference) suits
ratings and scores, ``nominal`` (equal or not) thumbs and sentiments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._observations import Observations

__all__ = ["agreement_by_type", "cohen_kappa", "krippendorff_alpha"]


def krippendorff_alpha(
    units: Iterable[Sequence[float | Hashable]], metric: Literal["interval", "nominal"] = "interval"
) -> float | None:
    """Alpha over ``units``, each the values given to one item by different annotators.

    Units with fewer than two values are not pairable and are ignored. Returns
    None when nothing is pairable or every value is the same (no variation:
    alpha is undefined).

    Example::

        krippendorff_alpha([[1, 1], [2, 2], [5, 4]], "interval")
    """
    pairable = [list(u) for u in units if len(u) >= 2]
    n = sum(len(u) for u in pairable)
    if n < 2:
        return None
    if metric == "interval":
        numbers = [[float(v) for v in u] for u in pairable]  # type: ignore[arg-type]
        values = [v for u in numbers for v in u]
        observed = 0.0
        for unit_values in numbers:
            m = len(unit_values)
            s1 = sum(unit_values)
            s2 = sum(v * v for v in unit_values)
            observed += 2 * (m * s2 - s1 * s1) / (m - 1)
        total1, total2 = sum(values), sum(v * v for v in values)
        expected = 2 * (n * total2 - total1 * total1)
        d_o, d_e = observed / n, expected / (n * (n - 1))
    elif metric == "nominal":
        observed = 0.0
        totals: Counter[Hashable] = Counter()
        for unit in pairable:
            m = len(unit)
            counts = Counter(unit)
            totals.update(counts)
            observed += (m * m - sum(c * c for c in counts.values())) / (m - 1)
        expected = n * n - sum(c * c for c in totals.values())
        d_o, d_e = observed / n, expected / (n * (n - 1))
    else:
        raise ValueError(f"metric must be 'interval' or 'nominal', got {metric!r}")
    if d_e <= 1e-15:
        return None
    return 1.0 - d_o / d_e


def cohen_kappa(pairs: Iterable[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two annotators from their ``(a, b)`` labels of the same items.

    None when there is no item or chance agreement is already perfect.
    """
    items = list(pairs)
    if not items:
        return None
    n = len(items)
    agree = sum(1 for a, b in items if a == b) / n
    first, second = Counter(a for a, _ in items), Counter(b for _, b in items)
    chance = sum(first[k] * second.get(k, 0) for k in first) / (n * n)
    if chance >= 1.0:
        return None
    return (agree - chance) / (1.0 - chance)


def agreement_by_type(obs: Observations) -> dict[str, Any]:
    """Krippendorff's alpha per feedback type, over interactions judged by several people.

    Ratings and multi-dimensional weighted scores use the interval metric on
    their 0..1 scores, thumbs and text sentiment the nominal one. A person's
    latest judgement of an interaction counts; anonymous feedback is left out.
    When exactly two people judged common interactions, Cohen's kappa of their
    labels is given too (nominal types).
    """
    from ._observations import KINDS

    metrics = {"rating": "interval", "multi_dimensional": "interval", "binary": "nominal", "text": "nominal"}
    latest: dict[int, dict[int, dict[int, float | int]]] = {}
    for n in range(len(obs)):
        user, kind = obs.user[n], obs.kind[n]
        if user < 0 or KINDS[kind] not in metrics or not obs.keep(obs.interaction[n]):
            continue
        if KINDS[kind] == "text":
            if obs.sentiment[n] == -2:
                continue
            value: float | int = obs.sentiment[n]
        elif KINDS[kind] == "binary":
            value = int(obs.score[n] >= 0.5)
        else:
            value = obs.score[n]
            if value != value:  # NaN: no score
                continue
        latest.setdefault(kind, {}).setdefault(obs.interaction[n], {})[user] = value
    result: dict[str, Any] = {}
    for kind, units in sorted(latest.items()):
        name = KINDS[kind]
        metric = metrics[name]
        shared = [list(by_user.values()) for by_user in units.values() if len(by_user) >= 2]
        if not shared:
            continue
        annotators = {u for by_user in units.values() if len(by_user) >= 2 for u in by_user}
        alpha = krippendorff_alpha(shared, metric)  # type: ignore[arg-type]
        entry: dict[str, Any] = {
            "alpha": None if alpha is None else round(alpha, 4),
            "metric": metric,
            "items": len(shared),
            "judgements": sum(len(u) for u in shared),
            "annotators": len(annotators),
        }
        if metric == "nominal" and len(annotators) == 2:
            first, second = sorted(annotators)
            kappa = cohen_kappa((by_user[first], by_user[second]) for by_user in units.values()
                                if first in by_user and second in by_user)  # fmt: skip
            entry["cohen_kappa"] = None if kappa is None else round(kappa, 4)
        result[name] = entry
    return result
