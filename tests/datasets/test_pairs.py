"""The pair rules of preference datasets: comparisons, score margins, ties, majority, duplicates, caps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlhfkit.datasets import export_dataset
from rlhfkit.storage.base import Storage

from .conftest import Recorder


def _rows(summary: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for split in ("train", "test"):
        if split in summary.files:
            rows += [json.loads(line) for line in Path(summary.files[split]).read_text().splitlines()]
    return rows


def _pairs(summary: Any) -> set[tuple[str, str]]:
    return {(r["chosen"], r["rejected"]) for r in _rows(summary)}


def test_one_preferred_over_k_alternatives_gives_k_pairs_with_confidence_margin(
    storage: Storage, rec: Recorder, tmp_path: Path
) -> None:
    """A comparison of one preferred response against three alternatives gives three pairs, margin = confidence."""
    best = rec.ask("Name a prime", "7")
    others = [rec.ask("Name a prime", text) for text in ("8", "9", "10")]
    rec.prefer(best, *others, confidence=0.6)
    rec.save(storage)
    summary = export_dataset(storage, "preference", tmp_path, include_margin=True, test_fraction=0.0)
    assert _pairs(summary) == {("7", "8"), ("7", "9"), ("7", "10")}
    assert {r["margin"] for r in _rows(summary)} == {0.6}
    assert summary.notes["pairs from comparisons"] == 3


def test_comparison_without_confidence_has_margin_one(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """A comparison without confidence counts as certain: margin 1.0."""
    a, b = rec.ask("q", "yes"), rec.ask("q", "no")
    rec.prefer(a, b)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, include_margin=True, test_fraction=0.0)
    assert [r["margin"] for r in _rows(summary)] == [1.0]


def test_same_prompt_ratings_pair_when_they_differ_by_min_margin(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Ratings 5, 4 and 4 of one prompt: (5 > 4) pairs at min_margin 0.25, the equal 4s tie, nothing at 0.5."""
    five, four_a, four_b = rec.ask("p", "five"), rec.ask("p", "four a"), rec.ask("p", "four b")
    rec.rate(five, 5)
    rec.rate(four_a, 4)
    rec.rate(four_b, 4)
    rec.save(storage)
    loose = export_dataset(storage, "preference", tmp_path / "a", min_margin=0.25, test_fraction=0.0)
    assert _pairs(loose) == {("five", "four a"), ("five", "four b")}
    strict = export_dataset(storage, "preference", tmp_path / "b", min_margin=0.5, test_fraction=0.0)
    assert strict.total == 0
    assert strict.skipped == {"no pair: ties or differences below min_margin": 3}


def test_prompt_normalisation_and_context_decide_what_is_the_same_prompt(
    memory: Storage, rec: Recorder, tmp_path: Path
) -> None:
    """Whitespace differences do not split a prompt; a different system prompt does."""
    a = rec.ask("  Tell me   a joke ", "joke one")
    b = rec.ask("Tell me a joke", "joke two")
    c = rec.ask("Tell me a joke", "joke three", context=[{"role": "system", "content": "Be rude."}])
    rec.thumb(a, True)
    rec.thumb(b, False)
    rec.thumb(c, False)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, test_fraction=0.0)
    assert _pairs(summary) == {("joke one", "joke two")}
    assert summary.skipped["no pair: only response to its prompt"] == 1


def test_weighted_multi_dimensional_scores_make_pairs(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Multi-dimensional judgements compare by weighted score: the weights decide the winner."""
    a, b = rec.ask("p", "accurate but rude"), rec.ask("p", "polite but wrong")
    weights = {"accuracy": 3.0, "tone": 1.0}
    rec.score(a, {"accuracy": 5, "tone": 1}, weights)
    rec.score(b, {"accuracy": 1, "tone": 5}, weights)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, test_fraction=0.0)
    assert _pairs(summary) == {("accurate but rude", "polite but wrong")}


def test_contradictions_are_settled_by_majority_and_counted(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Two comparisons say A > B and one says B > A: one pair A > B, and the contradiction is counted."""
    a, b = rec.ask("p", "A"), rec.ask("p", "B")
    rec.prefer(a, b, user="u1")
    rec.prefer(a, b, user="u2")
    rec.prefer(b, a, user="u3")
    rec.save(storage)
    summary = export_dataset(storage, "preference", tmp_path, test_fraction=0.0)
    assert _pairs(summary) == {("A", "B")}
    assert summary.notes["contradicting judgements settled by majority"] == 1


def test_even_contradiction_drops_the_pair(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """A comparison says A > B but the ratings say B > A: an even split gives no pair, and says so."""
    a, b = rec.ask("p", "A"), rec.ask("p", "B")
    rec.prefer(a, b)
    rec.rate(a, 1)
    rec.rate(b, 5)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, test_fraction=0.0)
    assert summary.total == 0
    assert summary.notes["contradicting judgements, even split (dropped)"] == 1
    assert "Empty preference dataset" in summary.message


def test_duplicate_responses_and_repeated_judgements_give_one_pair(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """The same answer logged twice is one candidate; repeated comparisons of one pair give one row."""
    good1, good2, bad = rec.ask("p", "good"), rec.ask("p", "good "), rec.ask("p", "bad")
    rec.prefer(good1, bad)
    rec.prefer(good2, bad)
    rec.rate(good1, 5)
    rec.rate(bad, 1)
    rec.save(storage)
    summary = export_dataset(storage, "preference", tmp_path, test_fraction=0.0)
    assert len(_rows(summary)) == 1
    assert _pairs(summary) == {("good", "bad")}
    assert summary.notes["duplicate responses merged"] == 1


def test_comparison_across_prompts_gives_no_pair(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """A comparison of answers to different prompts has no common prompt: no pair, counted."""
    a, b = rec.ask("first question", "A"), rec.ask("second question", "B")
    rec.prefer(a, b)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path)
    assert summary.total == 0
    assert summary.notes["comparison across different prompts"] == 1


def test_max_pairs_per_prompt_keeps_the_widest_margins(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Five ratings of one prompt give ten pairs; a cap of 2 keeps the two widest (5 > 1, then 5 > 2 or 4 > 1)."""
    answers = {v: rec.ask("p", f"r{v}") for v in range(1, 6)}
    for value, interaction in answers.items():
        rec.rate(interaction, value)
    rec.save(memory)
    full = export_dataset(memory, "preference", tmp_path / "all", min_margin=0.25, test_fraction=0.0,
                          max_pairs_per_prompt=None)  # fmt: skip
    assert len(_pairs(full)) == 10
    capped = export_dataset(memory, "preference", tmp_path / "cap", min_margin=0.25, test_fraction=0.0,
                            max_pairs_per_prompt=2, include_margin=True)  # fmt: skip
    rows = _rows(capped)
    assert [r["margin"] for r in rows] == [1.0, 0.75]
    assert (rows[0]["chosen"], rows[0]["rejected"]) == ("r5", "r1")
    assert capped.notes["prompts with more pairs than max_pairs_per_prompt"] == 1
    assert "prompts with more pairs than max_pairs_per_prompt" not in full.notes


def test_score_pairs_match_a_brute_force_reading_of_the_rules(tmp_path: Path) -> None:
    """For random ratings (small and large prompts), pairs are exactly: every difference >= min_margin,
    widest first, ties between equal ratings dropped, at most max_pairs_per_prompt per prompt."""
    import random

    from rlhfkit.storage.memory import MemoryStorage

    rnd = random.Random(5)
    for trial in range(12):
        rec = Recorder()
        qualifying: dict[int, list[tuple[str, str, float]]] = {}
        cap = rnd.choice([None, 3, 64])
        for g in range(3):
            ratings = {f"g{g} r{k}": rnd.randint(1, 5) for k in range(rnd.choice([2, 5, 15]))}
            for text, value in ratings.items():
                rec.rate(rec.ask(f"prompt {g}", text), value)
            qualifying[g] = [(a, b, (ra - rb) / 4) for a, ra in ratings.items() for b, rb in ratings.items() if ra - rb >= 1]
        memory = MemoryStorage(max_entries=10_000)
        rec.save(memory)
        summary = export_dataset(memory, "preference", tmp_path / str(trial), min_margin=0.25, test_fraction=0.0,
                                 include_margin=True, max_pairs_per_prompt=cap)  # fmt: skip
        rows = _rows(summary)
        for g, pairs in qualifying.items():
            got = [(r["chosen"], r["rejected"], r["margin"]) for r in rows if r["chosen"].startswith(f"g{g} ")]
            assert len(set(got)) == len(got)
            assert set(got) <= set(pairs)
            widest = sorted((m for *_, m in pairs), reverse=True)
            if cap is not None:
                widest = widest[:cap]
            assert sorted((m for *_, m in got), reverse=True) == widest
