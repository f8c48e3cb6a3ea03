"""Preference pairs from feedback: the rules.

A *candidate* is one distinct response to one prompt: interactions whose
normalised prompt and context are equal share a prompt, and among those,
interactions with the same normalised response are one candidate (their
judgements pooled; the extra copies count as duplicates removed).

Votes between two candidates A and B of the same prompt:

* **Comparisons.** A comparative feedback with one preferred response and k
  alternatives gives k votes, preferred over each alternative; the vote's
  margin is the feedback's ``confidence`` (1.0 when not given). A comparison
  between interactions of different prompts gives no pair (counted).
* **Scores.** For each signal (ratings, thumbs, weighted multi-dimensional
  scores, and text sentiment when enabled), the mean normalised score of A and
  of B (0..1) are compared; a difference of at least ``min_margin`` (and above
  zero) is one vote for the higher, with the difference as margin. Smaller
  differences are ties and give nothing.

A pair exists when some vote exists. Contradicting votes are settled by
majority (the counts are kept in the summary); an even split drops the pair.
The pair's margin is the mean margin of the winning votes. Per prompt at most
``max_pairs_per_prompt`` pairs are kept, widest margins first; score pairs are
enumerated widest-first so large groups cost no more than the cap.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple

from ._collect import SIGNALS, InteractionIndex, SignalTable

__all__ = ["Pair", "PairBuilder"]

_EPS = 1e-9


class Pair(NamedTuple):
    """A resolved preference: positions of the chosen and rejected interactions."""

    chosen: int
    rejected: int
    margin: float
    votes_for: int
    votes_against: int
    from_comparison: bool


class PairBuilder:
    """Turns the candidates of each prompt into resolved pairs, following the module's rules."""

    def __init__(
        self,
        table: SignalTable,
        index: InteractionIndex,
        *,
        min_margin: float,
        max_pairs_per_prompt: int | None,
        signals: Sequence[int] = tuple(range(len(SIGNALS))),
    ) -> None:
        self.table = table
        self.index = index
        self.min_margin = min_margin
        self.max_pairs = max_pairs_per_prompt
        # Signals nobody used cost nothing per prompt.
        self.signals = tuple(s for s in signals if any(table.counts[s]))
        self.counts: Counter[str] = Counter()
        """What happened to candidate pairs: resolved contradictions, ties, caps, ..."""
        self._comparisons: dict[int, list[int]] = defaultdict(list)
        group = index.group
        for k, (p, a) in enumerate(zip(table.cmp_pref, table.cmp_alt, strict=True)):
            if not (index.usable(p) and index.usable(a)):
                self.counts["comparison involving an unusable interaction"] += 1
            elif group[p] != group[a]:
                self.counts["comparison across different prompts"] += 1
            else:
                self._comparisons[group[p]].append(k)

    def pairs(self, candidates: list[list[int]]) -> list[Pair]:
        """Resolved pairs among the candidates of one prompt, widest margin first."""
        table = self.table
        comparisons = self._comparisons.get(self.index.group[candidates[0][0]], ())
        if len(candidates) < 2:
            if comparisons:
                self.counts["comparison of identical responses"] += len(comparisons)
            return []
        signals = self.signals
        sums, counts = table.sums, table.counts
        if not comparisons and len(signals) == 1 and all(len(m) == 1 for m in candidates):
            return self._one_signal(candidates, signals[0])
        means: list[list[float | None]] = []
        for members in candidates:
            row: list[float | None] = [None] * len(SIGNALS)
            for s in signals:
                if len(members) == 1:
                    n, total = counts[s][members[0]], sums[s][members[0]]
                else:
                    n, total = sum(counts[s][i] for i in members), sum(sums[s][i] for i in members)
                if n:
                    row[s] = total / n
            means.append(row)

        # comparative votes: (a, b) with a < b -> [votes a, votes b, margin sum a, margin sum b]
        votes: dict[tuple[int, int], list[float]] = {}
        cand_of = {i: c for c, members in enumerate(candidates) for i in members} if comparisons else {}
        for k in comparisons:
            a, b = cand_of[table.cmp_pref[k]], cand_of[table.cmp_alt[k]]
            if a == b:
                self.counts["comparison of identical responses"] += 1
                continue
            key = (a, b) if a < b else (b, a)
            tally = votes.setdefault(key, [0, 0, 0.0, 0.0])
            side = 0 if a == key[0] else 1
            tally[side] += 1
            tally[2 + side] += table.cmp_margin[k]
        compared = set(votes)

        wanted = set(votes)
        capped = False
        for s in signals:
            scored: list[tuple[float, int]] = sorted(
                ((v, c) for c, m in enumerate(means) if (v := m[s]) is not None), key=lambda t: (-t[0], t[1])
            )
            found, cut = _widest_pairs([v for v, _ in scored], self.min_margin, self.max_pairs)
            capped = capped or cut
            for hi, lo in found:
                a, b = scored[hi][1], scored[lo][1]
                wanted.add((a, b) if a < b else (b, a))

        resolved: list[Pair] = []
        for key in wanted:
            tally = votes.get(key) or [0, 0, 0.0, 0.0]
            a, b = key
            for s in signals:
                va, vb = means[a][s], means[b][s]
                if va is None or vb is None:
                    continue
                diff = va - vb
                if abs(diff) > _EPS and abs(diff) >= self.min_margin - _EPS:
                    side = 0 if diff > 0 else 1
                    tally[side] += 1
                    tally[2 + side] += abs(diff)
            wa, wb = int(tally[0]), int(tally[1])
            if wa == wb:
                if wa:
                    self.counts["contradicting judgements, even split (dropped)"] += 1
                continue
            if wa and wb:
                self.counts["contradicting judgements settled by majority"] += 1
            win, lose, w_for, w_against, msum = (a, b, wa, wb, tally[2]) if wa > wb else (b, a, wb, wa, tally[3])
            resolved.append(
                Pair(candidates[win][0], candidates[lose][0], msum / w_for, w_for, w_against, key in compared)
            )
        return self._finish(resolved, capped)

    def _one_signal(self, candidates: list[list[int]], s: int) -> list[Pair]:
        """The common case (one signal, no comparisons, no duplicates): pairs straight from the scores."""
        sums, counts = self.table.sums[s], self.table.counts[s]
        scored = [(sums[m[0]] / counts[m[0]], m[0]) for m in candidates if counts[m[0]]]
        if len(scored) > 12:
            scored.sort(key=lambda t: (-t[0], t[1]))
            found, capped = _widest_pairs([v for v, _ in scored], self.min_margin, self.max_pairs)
            resolved = [
                Pair(scored[hi][1], scored[lo][1], scored[hi][0] - scored[lo][0], 1, 0, False) for hi, lo in found
            ]
            return self._finish(resolved, capped)
        # Small prompts: every qualifying pair, sorted once in the final order.
        floor = max(self.min_margin - _EPS, 2 * _EPS)
        ranked = [(vb - va, pa, pb) for va, pa in scored for vb, pb in scored if va - vb >= floor]
        ranked.sort()
        capped = self.max_pairs is not None and len(ranked) > self.max_pairs
        if capped:
            del ranked[self.max_pairs :]
            self.counts["prompts with more pairs than max_pairs_per_prompt"] += 1
        return [Pair(chosen, rejected, -negative, 1, 0, False) for negative, chosen, rejected in ranked]

    def _finish(self, resolved: list[Pair], capped: bool) -> list[Pair]:
        resolved.sort(key=lambda p: (-p.margin, p.votes_against - p.votes_for, p.chosen, p.rejected))
        if self.max_pairs is not None and len(resolved) > self.max_pairs:
            capped = True
            del resolved[self.max_pairs :]
        if capped:
            self.counts["prompts with more pairs than max_pairs_per_prompt"] += 1
        return resolved


def _widest_pairs(values: list[float], min_margin: float, limit: int | None) -> tuple[list[tuple[int, int]], bool]:
    """Index pairs (i, j), i < j, of descending ``values`` whose difference is at least
    ``min_margin`` (and positive), widest first, at most ``limit`` of them; and
    whether more such pairs were left out."""
    n = len(values)
    if n < 2:
        return [], False
    if n <= 12:  # small groups: enumerate, cheaper than the heap
        floor = max(_EPS, min_margin - _EPS)
        found = sorted(
            (
                (values[i] - values[j], i, j)
                for i in range(n)
                for j in range(i + 1, n)
                if values[i] - values[j] >= floor and values[i] - values[j] > _EPS
            ),
            key=lambda t: (-t[0], t[1], -t[2]),
        )
        cut = limit is not None and len(found) > limit
        return [(i, j) for _, i, j in (found[:limit] if cut else found)], cut
    out: list[tuple[int, int]] = []
    heap = [(-(values[0] - values[n - 1]), 0, n - 1)]
    seen = {(0, n - 1)}
    while heap and (limit is None or len(out) < limit):
        neg, i, j = heapq.heappop(heap)
        diff = -neg
        if diff <= _EPS or diff < min_margin - _EPS:
            break
        out.append((i, j))
        for a, b in ((i + 1, j), (i, j - 1)):
            if a < b and (a, b) not in seen:
                seen.add((a, b))
                heapq.heappush(heap, (-(values[a] - values[b]), a, b))
    cut = bool(heap) and -heap[0][0] > _EPS and -heap[0][0] >= min_margin - _EPS and len(out) == limit
    return out, cut
