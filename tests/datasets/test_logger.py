"""The logger's export_dataset and get_analytics delegate to the dataset and analytics modules."""

from __future__ import annotations

import json
from pathlib import Path

from rlhfkit import AnalyticsResult, create_rlhf_logger
from rlhfkit.datasets import DatasetSummary


def test_logger_exports_a_dataset_and_a_leaderboard(tmp_path: Path) -> None:
    """Interactions and feedback logged through a SQLite logger become DPO pairs and a leaderboard."""
    logger = create_rlhf_logger(backend="sqlite", backend_config={"sqlite": {"path": str(tmp_path / "rlhf.db")}})
    with logger:
        for n in range(4):
            context = [{"role": "system", "content": "Be terse."}]
            good = logger.log_interaction(f"Capital of country {n}?", f"City {n}.", model="m-good", context=context)
            bad = logger.log_interaction(f"Capital of country {n}?", "No idea.", model="m-bad", context=context)
            logger.log_comparative_feedback(good, [bad], confidence=0.9)
        summary = logger.export_dataset("preference", tmp_path / "out", conversational=True, test_fraction=0.0)
        analytics = logger.get_analytics()
    assert isinstance(summary, DatasetSummary)
    assert summary.counts == {"train": 4, "test": 0}
    row = json.loads(Path(summary.files["train"]).read_text().splitlines()[0])
    assert row["prompt"][0] == {"role": "system", "content": "Be terse."}
    assert row["rejected"] == [{"role": "assistant", "content": "No idea."}]
    assert isinstance(analytics, AnalyticsResult)
    assert [r["model"] for r in analytics.leaderboard] == ["m-good", "m-bad"]
    assert analytics.leaderboard[0]["wins"] == 4
