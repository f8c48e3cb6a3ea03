"""The ``rlhfkit export`` and ``rlhfkit stats`` commands against a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.storage.sql import SQLStorage

from .conftest import Recorder


@pytest.fixture
def db(tmp_path: Path, rec: Recorder) -> str:
    """A SQLite database where model-a beats model-b on three prompts, rated by two people."""
    url = f"sqlite:///{tmp_path / 'rlhf.db'}"
    for n in range(3):
        a = rec.ask(f"q{n}", f"good {n}", model="model-a")
        b = rec.ask(f"q{n}", f"bad {n}", model="model-b")
        rec.prefer(a, b, user="u1")
        rec.rate(a, 5, user="u1")
        rec.rate(a, 4, user="u2")
        rec.rate(b, 1, user="u1", comment="wrong and rude")
    storage = SQLStorage(url)
    storage.initialize()
    rec.save(storage)
    storage.close()
    return url


def test_export_writes_the_dataset_and_reports_counts(db: str, tmp_path: Path) -> None:
    """`rlhfkit export` writes TRL conversational preference rows with margins, the card, and a summary table."""
    out = tmp_path / "data"
    result = CliRunner().invoke(app, [
        "export", "--db", db, "--kind", "preference", "--out", str(out), "--conversational", "--margin",
        "--test-fraction", "0", "--model", "model-a",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Wrote 3 preference examples" in result.output
    rows = [json.loads(line) for line in (out / "preference-train.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {"prompt", "chosen", "rejected", "margin"}
    assert rows[0]["chosen"][0]["content"].startswith("good")
    assert (out / "README.md").exists()


def test_export_openai_parquet(db: str, tmp_path: Path) -> None:
    """--target openai --format parquet writes OpenAI preference columns to Parquet."""
    import pyarrow.parquet as pq

    out = tmp_path / "oa"
    result = CliRunner().invoke(app, ["export", "--db", db, "--kind", "sft", "--target", "openai",
                                      "--format", "parquet", "--out", str(out), "--test-fraction", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert pq.read_table(out / "sft-train.parquet").column_names == ["messages"]


def _flat(output: str) -> str:
    """The output without rich's panel borders and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_export_refuses_unknown_kinds_listing_the_valid_ones(db: str, tmp_path: Path) -> None:
    """An unknown --kind is a usage error naming the valid kinds; nothing is written."""
    result = CliRunner().invoke(app, ["export", "--db", db, "--kind", "ppo", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "preference, reward, sft, unpaired" in _flat(result.output)
    assert not (tmp_path / "x").exists()


def test_export_refuses_a_bad_time(db: str, tmp_path: Path) -> None:
    """A --start that is not ISO 8601 is a usage error."""
    result = CliRunner().invoke(app, ["export", "--db", db, "--kind", "sft", "--out", str(tmp_path), "--start", "May"])
    assert result.exit_code == 2
    assert "ISO 8601" in _flat(result.output)


def test_stats_prints_stats_and_leaderboard(db: str) -> None:
    """`rlhfkit stats` prints the totals, the Bradley–Terry leaderboard, agreement and top issues."""
    result = CliRunner().invoke(app, ["stats", "--db", db], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "leaderboard" in result.output
    lines = [line for line in result.output.splitlines() if "model-a" in line and "100.0%" in line]
    assert lines, result.output
    assert "annotator agreement" in result.output
    assert "rude" in result.output


def test_stats_json(db: str) -> None:
    """`rlhfkit stats --json` prints the AnalyticsResult as JSON."""
    result = CliRunner().invoke(app, ["stats", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["stats"]["total_feedback"] == 12
    assert data["leaderboard"][0]["model"] == "model-a"
