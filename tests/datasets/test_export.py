"""export_dataset's options, splits, bad input, skipped interactions and the dataset card."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rlhfkit._models import FeedbackFilter
from rlhfkit.datasets import DatasetKind, Judgements, export_dataset
from rlhfkit.errors import ValidationError
from rlhfkit.storage.base import Storage

from .conftest import T0, Recorder


def _rows(summary: Any, split: str = "train") -> list[dict[str, Any]]:
    if split not in summary.files:
        return []
    return [json.loads(line) for line in Path(summary.files[split]).read_text().splitlines()]


@pytest.mark.parametrize(
    ("options", "field", "listed"),
    [
        ({"kind": "dpo"}, "kind", "preference, reward, sft, unpaired"),
        ({"target": "axolotl"}, "target", "openai, trl"),
        ({"format": "csv"}, "format", "jsonl, parquet"),
        ({"kind": "unpaired", "target": "openai"}, "target", "preference, sft"),
        ({"kind": "sft", "sft_rule": "loved"}, "sft_rule", "best, majority, unanimous"),
        ({"include_margin": True, "target": "openai"}, "include_margin", "preference"),
        ({"min_margin": 1.5}, "min_margin", "between 0 and 1"),
        ({"test_fraction": 1.0}, "test_fraction", "between 0 and 1"),
        ({"max_pairs_per_prompt": 0}, "max_pairs_per_prompt", "positive"),
    ],
)
def test_bad_options_are_refused_naming_the_valid_ones(memory: Storage, tmp_path: Path, options: dict[str, Any],
                                                       field: str, listed: str) -> None:  # fmt: skip
    """Unknown kinds, targets, formats, rules or out-of-range numbers raise ValidationError and write nothing."""
    kind = options.pop("kind", "preference")
    with pytest.raises(ValidationError) as info:
        export_dataset(memory, kind, tmp_path / "out", **options)
    assert info.value.field == field
    assert listed in str(info.value)
    assert not (tmp_path / "out").exists()


def test_kind_accepts_the_enum(memory: Storage, tmp_path: Path) -> None:
    """DatasetKind members work as kinds."""
    assert export_dataset(memory, DatasetKind.SFT, tmp_path).kind == "sft"


def test_empty_selection_gives_an_empty_dataset_and_a_message(storage: Storage, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """No feedback: no error, an empty train file with the right columns, a card, and a logged message."""
    import pyarrow.parquet as pq

    with caplog.at_level("WARNING", logger="rlhfkit.datasets"):
        summary = export_dataset(storage, "preference", tmp_path, format="parquet", conversational=True)
    assert summary.total == 0
    assert summary.message == "Empty preference dataset: no feedback matched the selection."
    assert summary.message in caplog.text
    table = pq.read_table(summary.files["train"])
    assert table.num_rows == 0
    assert table.column_names == ["prompt", "chosen", "rejected"]
    assert str(table.schema.field("prompt").type) == "list<element: struct<role: string, content: string>>"
    assert "no feedback matched the selection" in (tmp_path / "README.md").read_text()


def test_unusable_interactions_are_skipped_and_counted(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Empty, failed and truncated responses and feedback about unknown interactions are counted, not exported."""
    good = rec.ask("p", "fine")
    empty = rec.ask("p", "   ")
    failed = rec.ask("p", "", error={"type": "RateLimitError", "message": "slow down"})
    cut = rec.ask("p", "It was the best of", incomplete=True)
    for interaction in (good, empty, failed, cut):
        rec.thumb(interaction, True)
    ghost = rec.ask("p", "never stored")
    rec.thumb(ghost, True)
    rec.interactions.remove(ghost)
    rec.save(storage)
    summary = export_dataset(storage, "sft", tmp_path, test_fraction=0.0)
    assert [r["completion"] for r in _rows(summary)] == ["fine"]
    assert summary.skipped == {
        "empty response": 1,
        "failed call without a response": 1,
        "incomplete (truncated) response": 1,
        "interaction not found": 1,
    }
    card = (tmp_path / "README.md").read_text()
    assert "| incomplete (truncated) response | 1 |" in card


def test_split_is_by_prompt_deterministic_and_disjoint(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Every prompt lands wholly in one split, the same one on every run with the same seed, about test_fraction."""
    for n in range(200):
        a, b = rec.ask(f"question {n}", "right"), rec.ask(f"question {n}", "wrong")
        rec.thumb(a, True)
        rec.thumb(b, False)
    rec.save(memory)
    first = export_dataset(memory, "unpaired", tmp_path / "a", test_fraction=0.25, seed=7)
    again = export_dataset(memory, "unpaired", tmp_path / "b", test_fraction=0.25, seed=7)
    other = export_dataset(memory, "unpaired", tmp_path / "c", test_fraction=0.25, seed=8)
    train = {r["prompt"] for r in _rows(first, "train")}
    test = {r["prompt"] for r in _rows(first, "test")}
    assert not train & test
    assert len(train | test) == 200
    assert 25 <= len(test) <= 75
    assert first.counts["test"] == 2 * len(test)
    assert {r["prompt"] for r in _rows(again, "test")} == test
    assert {r["prompt"] for r in _rows(other, "test")} != test
    assert Path(first.files["train"]).read_bytes() == Path(again.files["train"]).read_bytes()


def test_split_follows_the_documented_prompt_hash(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """A prompt is in test when sha256(seed, prompt key) falls below test_fraction (key: sha256 of context + prompt)."""
    prompts = [f"q{n}" for n in range(40)]
    for prompt in prompts:
        rec.thumb(rec.ask(prompt, "a"), True)
    rec.save(memory)
    summary = export_dataset(memory, "sft", tmp_path, test_fraction=0.5, seed="s")

    def in_test(prompt: str) -> bool:
        key = hashlib.sha256(f"\x1euser\x1f{prompt}".encode()).digest()[:8]
        return int.from_bytes(hashlib.sha256(b"s\x00" + key).digest()[:8]) < int(0.5 * 2**64)

    assert {r["prompt"] for r in _rows(summary, "test")} == {p for p in prompts if in_test(p)}


def test_unpaired_labels_from_thresholds_majority_and_sentiment(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Ratings split at rating_threshold, votes by majority, ties dropped, text sentiment only when asked."""
    four, three = rec.ask("p", "four"), rec.ask("p", "three")
    rec.rate(four, 4)
    rec.rate(three, 3)
    split = rec.ask("p", "split")
    rec.thumb(split, True)
    rec.thumb(split, False)
    mostly = rec.ask("p", "mostly good")
    rec.thumb(mostly, True)
    rec.thumb(mostly, True)
    rec.thumb(mostly, False)
    said = rec.ask("p", "praised")
    rec.say(said, "great answer", sentiment="positive")
    rec.save(storage)
    plain = export_dataset(storage, "unpaired", tmp_path / "a", test_fraction=0.0)
    assert {r["completion"]: r["label"] for r in _rows(plain)} == {"four": True, "three": False, "mostly good": True}
    assert plain.skipped["contradicting labels, even split"] == 1
    assert plain.notes["contradicting labels settled by majority"] == 1
    assert plain.unused_feedback == {"text comment (use_text_sentiment is off)": 1}
    strict = export_dataset(storage, "unpaired", tmp_path / "b", rating_threshold=1.0, use_text_sentiment=True,
                            test_fraction=0.0)  # fmt: skip
    labels = {r["completion"]: r["label"] for r in _rows(strict)}
    assert labels["four"] is False
    assert labels["praised"] is True


def test_sft_rules(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """majority, unanimous, best (one per prompt) and a custom callable select different responses."""
    a, b, c = rec.ask("p", "A"), rec.ask("p", "B"), rec.ask("p", "C")
    rec.rate(a, 5)
    rec.rate(b, 4)
    rec.rate(b, 5)
    rec.thumb(c, True)
    rec.thumb(c, True)
    rec.thumb(c, False)
    rec.save(memory)

    def chosen(**options: Any) -> set[str]:
        out = tmp_path / str(len(list(tmp_path.iterdir())))
        return {r["completion"] for r in _rows(export_dataset(memory, "sft", out, test_fraction=0.0, **options))}

    assert chosen() == {"A", "B", "C"}
    assert chosen(sft_rule="unanimous") == {"A", "B"}
    assert chosen(sft_rule="best") == {"A"}

    def loved(j: Judgements) -> bool:
        return j.positive >= 2

    assert chosen(sft_rule=loved) == {"B", "C"}


def test_filter_selects_feedback_by_time_and_model(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """A FeedbackFilter limits the export to feedback in its time range and about its model's interactions."""
    early = rec.ask("p", "early", model="model-a")
    late = rec.ask("p", "late", model="model-b")
    rec.thumb(early, True, at=T0 + timedelta(days=1))
    rec.thumb(late, True, at=T0 + timedelta(days=5))
    rec.save(storage)
    by_time = export_dataset(storage, "sft", tmp_path / "t", test_fraction=0.0,
                             filter=FeedbackFilter(start_time=T0 + timedelta(days=3)))  # fmt: skip
    assert [r["completion"] for r in _rows(by_time)] == ["late"]
    by_model = export_dataset(storage, "sft", tmp_path / "m", test_fraction=0.0, filter=FeedbackFilter(model="model-a"))
    assert [r["completion"] for r in _rows(by_model)] == ["early"]
    assert by_model.models == {"model-a": 1}


def test_card_reports_counts_rules_time_range_models_and_skips(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """The README.md beside the files has the counts, thresholds, the pair rules, time range, models and skips."""
    a, b = rec.ask("p", "A", model="m-one"), rec.ask("p", "B", model="m-two")
    rec.prefer(a, b)
    rec.thumb(rec.ask("p", "", model="m-one"), True)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, min_margin=0.3, test_fraction=0.0)
    card = Path(summary.card or "").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: preference\n")
    assert "| preference |" in card and "| 1 | 0 |" in card
    assert "- `min_margin` = `0.3`" in card
    assert "Contradicting votes are settled by\nmajority" in card
    assert f"interactions from {a.timestamp.isoformat()}" in card or "interactions from 2026-03-01" in card
    assert "| m-one | 1 |" in card and "| m-two | 1 |" in card
    assert "| empty response | 1 |" in card


def test_progress_is_reported(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """progress(stage, done, total) is called for the feedback and interaction passes."""
    rec.thumb(rec.ask("p", "x"), True)
    rec.save(memory)
    calls: list[tuple[str, int, int | None]] = []
    export_dataset(memory, "sft", tmp_path, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert ("feedback", 1, 1) in calls
    assert ("interactions", 1, 1) in calls


def test_switching_format_replaces_the_old_files(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Re-exporting a kind as Parquet removes its JSONL files, so the directory never mixes two versions."""
    rec.thumb(rec.ask("p", "x"), True)
    rec.save(memory)
    export_dataset(memory, "sft", tmp_path, test_fraction=0.0)
    assert (tmp_path / "sft-train.jsonl").exists()
    export_dataset(memory, "sft", tmp_path, format="parquet", test_fraction=0.0)
    assert not (tmp_path / "sft-train.jsonl").exists()
    assert (tmp_path / "sft-train.parquet").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_non_ascii_text_round_trips(storage: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Accents, CJK and emoji in context, prompt and responses come back unchanged."""
    context = [{"role": "system", "content": "Réponds en français 🇫🇷"}]
    a = rec.ask("Quelle est la capitale du Japon ?", "東京です 🗼", context=context)
    b = rec.ask("Quelle est la capitale du Japon ?", "Kyōto", context=context)
    rec.prefer(a, b)
    rec.save(storage)
    summary = export_dataset(storage, "preference", tmp_path, conversational=True, test_fraction=0.0)
    row = _rows(summary)[0]
    assert row["prompt"] == [*context, {"role": "user", "content": "Quelle est la capitale du Japon ?"}]
    assert row["chosen"][0]["content"] == "東京です 🗼"
    assert row["rejected"][0]["content"] == "Kyōto"
