"""Exported files load with the real `datasets` package into exactly TRL's / OpenAI's columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlhfkit.datasets import export_dataset
from rlhfkit.storage.base import Storage

from .conftest import Recorder

SYSTEM = [{"role": "system", "content": "Answer in one sentence."}]


def _sky(rec: Recorder) -> None:
    """One prompt (with a system prompt) answered twice, rated 5 and 2; plus a lone thumbs up."""
    good = rec.ask("What color is the sky?", "It is blue.", model="model-a", context=SYSTEM)
    bad = rec.ask("What color is the sky?", "It is green.", model="model-b", context=SYSTEM)
    rec.rate(good, 5)
    rec.rate(bad, 2)
    hi = rec.ask("Say hi", "Hello!", model="model-a")
    rec.thumb(hi, True)


def _features(ds: object) -> dict[str, object]:
    return {name: feature for name, feature in ds.features.items()}  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_standard_preference_has_prompt_chosen_rejected_strings(storage: Storage, rec: Recorder, tmp_path: Path,
                                                                 hf_load: object, fmt: str) -> None:  # fmt: skip
    """Standard TRL preference rows are three strings; the prompt carries the system prompt as a transcript."""
    _sky(rec)
    rec.save(storage)
    summary = export_dataset(storage, "preference", tmp_path / "out", format=fmt, test_fraction=0.0)
    assert summary.counts == {"train": 1, "test": 0}
    ds = hf_load(summary.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert all(f.dtype == "string" for f in _features(ds).values())  # type: ignore[attr-defined]
    assert ds[0] == {
        "prompt": "System: Answer in one sentence.\n\nUser: What color is the sky?\n\nAssistant:",
        "chosen": "It is blue.",
        "rejected": "It is green.",
    }


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_conversational_preference_with_margin(storage: Storage, rec: Recorder, tmp_path: Path,
                                               hf_load: object, fmt: str) -> None:  # fmt: skip
    """Conversational rows are role/content message lists and the optional margin column is a float."""
    _sky(rec)
    rec.save(storage)
    summary = export_dataset(
        storage, "preference", tmp_path, format=fmt, conversational=True, include_margin=True, test_fraction=0.0
    )
    ds = hf_load(summary.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert _features(ds)["margin"].dtype == "float64"  # type: ignore[attr-defined]
    row = ds[0]
    assert row["prompt"] == [*SYSTEM, {"role": "user", "content": "What color is the sky?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "It is blue."}]
    assert row["rejected"] == [{"role": "assistant", "content": "It is green."}]
    assert row["margin"] == pytest.approx(0.75)


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_openai_preference_format(memory: Storage, rec: Recorder, tmp_path: Path, hf_load: object, fmt: str) -> None:
    """OpenAI preference rows have input.messages, preferred_output and non_preferred_output."""
    _sky(rec)
    rec.save(memory)
    summary = export_dataset(memory, "preference", tmp_path, target="openai", format=fmt, test_fraction=0.0)
    ds = hf_load(summary.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["input", "preferred_output", "non_preferred_output"]
    row = ds[0]
    assert row["input"] == {"messages": [*SYSTEM, {"role": "user", "content": "What color is the sky?"}]}
    assert row["preferred_output"] == [{"role": "assistant", "content": "It is blue."}]
    assert row["non_preferred_output"] == [{"role": "assistant", "content": "It is green."}]
    if fmt == "jsonl":
        line = json.loads(Path(summary.files["train"]).read_text().splitlines()[0])
        assert set(line) == {"input", "preferred_output", "non_preferred_output"}


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_unpaired_rows_have_boolean_labels(storage: Storage, rec: Recorder, tmp_path: Path,
                                          hf_load: object, fmt: str) -> None:  # fmt: skip
    """KTO rows are prompt / completion / label with label a bool: rating 5 true, rating 2 false, thumbs up true."""
    _sky(rec)
    rec.save(storage)
    summary = export_dataset(storage, "unpaired", tmp_path, format=fmt, test_fraction=0.0)
    ds = hf_load(summary.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["prompt", "completion", "label"]
    assert _features(ds)["label"].dtype == "bool"  # type: ignore[attr-defined]
    labels = {row["completion"]: row["label"] for row in ds}
    assert labels == {"It is blue.": True, "It is green.": False, "Hello!": True}


def test_conversational_unpaired(memory: Storage, rec: Recorder, tmp_path: Path, hf_load: object) -> None:
    """Conversational KTO rows: prompt messages, a one-message assistant completion, a bool label."""
    _sky(rec)
    rec.save(memory)
    summary = export_dataset(memory, "unpaired", tmp_path, conversational=True, test_fraction=0.0)
    rows = {r["completion"][0]["content"]: r for r in hf_load(summary.files, "jsonl")["train"]}  # type: ignore[operator]
    assert rows["Hello!"]["prompt"] == [{"role": "user", "content": "Say hi"}]
    assert rows["It is green."]["label"] is False


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_sft_prompt_completion_and_messages(storage: Storage, rec: Recorder, tmp_path: Path,
                                           hf_load: object, fmt: str) -> None:  # fmt: skip
    """SFT keeps liked responses: prompt/completion in standard form, messages in conversational and OpenAI form."""
    _sky(rec)
    rec.save(storage)
    standard = export_dataset(storage, "sft", tmp_path / "std", format=fmt, test_fraction=0.0)
    ds = hf_load(standard.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["prompt", "completion"]
    assert sorted(ds["completion"]) == ["Hello!", "It is blue."]
    for target, conversational in (("trl", True), ("openai", False)):
        out = export_dataset(storage, "sft", tmp_path / target, target=target, conversational=conversational,
                             format=fmt, test_fraction=0.0)  # fmt: skip
        ds = hf_load(out.files, fmt)["train"]  # type: ignore[operator]
        assert ds.column_names == ["messages"]
        conversations = sorted(ds["messages"], key=len)
        assert conversations[0] == [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hello!"}]
        assert conversations[1] == [*SYSTEM, {"role": "user", "content": "What color is the sky?"},
                                    {"role": "assistant", "content": "It is blue."}]  # fmt: skip


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_reward_table_scores_in_unit_range(storage: Storage, rec: Recorder, tmp_path: Path,
                                          hf_load: object, fmt: str) -> None:  # fmt: skip
    """Reward rows are prompt / response / float score, the mean normalised score."""
    _sky(rec)
    rec.save(storage)
    summary = export_dataset(storage, "reward", tmp_path, format=fmt, test_fraction=0.0)
    ds = hf_load(summary.files, fmt)["train"]  # type: ignore[operator]
    assert ds.column_names == ["prompt", "response", "score"]
    assert _features(ds)["score"].dtype == "float64"  # type: ignore[attr-defined]
    assert {r["response"]: r["score"] for r in ds} == {"It is blue.": 1.0, "It is green.": 0.25, "Hello!": 1.0}


def test_card_declares_configs_so_the_directory_loads_by_kind(memory: Storage, rec: Recorder, tmp_path: Path) -> None:
    """Two kinds exported to one directory load from it by config name, thanks to the card's YAML header."""
    import datasets

    _sky(rec)
    rec.save(memory)
    export_dataset(memory, "preference", tmp_path, test_fraction=0.0)
    export_dataset(memory, "reward", tmp_path, test_fraction=0.0)
    cache = str(tmp_path / "cache")
    pref = datasets.load_dataset(str(tmp_path), "preference", cache_dir=cache)
    reward = datasets.load_dataset(str(tmp_path), "reward", cache_dir=cache)
    assert pref["train"].column_names == ["prompt", "chosen", "rejected"]
    assert reward["train"].num_rows == 3
