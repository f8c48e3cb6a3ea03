"""The public surface of rlhfkit.datasets and rlhfkit.analytics."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("rlhfkit.datasets", ["DatasetKind", "DatasetSummary", "Judgements", "export_dataset"]),
        (
            "rlhfkit.analytics",
            ["annotator_agreement", "bradley_terry", "build_analytics", "cohen_kappa", "krippendorff_alpha", "leaderboard"],
        ),
    ],
)
def test_all_is_sorted_complete_and_documented(module: str, names: list[str]) -> None:
    """__all__ lists exactly the public names, sorted, each with a docstring."""
    mod = importlib.import_module(module)
    assert mod.__all__ == names
    for name in names:
        assert (getattr(mod, name).__doc__ or "").strip(), name
