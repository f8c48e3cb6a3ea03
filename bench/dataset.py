"""Preference dataset from 1,000,000 interactions + 1,000,000 feedback in SQLite: ≤ 30 s, ≤ 1 GB peak RSS.

``rlhfkit.datasets.export_dataset(storage, "preference", dir)`` (JSONL, TRL
target, default rules) runs in a child process on the cached fixture: four
answers per prompt, half the feedback ratings, a tenth comparisons, so pairs
come from both. Wall time and the child's peak RSS are reported.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from ._common import Result, run_child
from .export import _parts

NAME = "dataset"
TITLE = "preference dataset from 1M interactions + 1M feedback in SQLite (targets ≤ 30 s, ≤ 1 GB)"

CAP_S = 150.0


def available() -> str | None:
    """Runnable when ``rlhfkit.datasets.export_dataset`` exists."""
    try:
        from rlhfkit.datasets import export_dataset  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


def child_dataset(db: str, out: str) -> dict[str, Any]:
    """In the child: build the preference dataset of the database at ``db`` into ``out``."""
    from rlhfkit.datasets import export_dataset
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(f"sqlite:///{db}")
    storage.initialize()
    start = time.perf_counter()
    summary = export_dataset(storage, "preference", out)
    seconds = time.perf_counter() - start
    storage.close()
    return {"seconds": seconds, "counts": summary.counts, "feedback_read": summary.feedback_read}


def run(quick: bool = False) -> list[Result]:
    """Build the dataset in a child process."""
    from ._fixtures import sqlite_fixture

    n = 20_000 if quick else 1_000_000
    db = sqlite_fixture(n, n)
    with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as tmp:
        child = run_child(NAME, "child_dataset", {"db": str(db), "out": tmp}, timeout_s=CAP_S)
    if child.timed_out:
        return [
            Result(NAME, "preference dataset time", None, "s", "≤ 30", False, f"not finished after {CAP_S:.0f} s (stopped)"),
            Result(NAME, "preference dataset peak RSS", child.peak_rss_mb, "MB", "≤ 1,024", child.peak_rss_mb <= 1024,
                   "until stopped"),
        ]  # fmt: skip
    seconds = child.result["seconds"]
    counts = child.result["counts"]
    pairs = sum(counts.values())
    note = f"{n:,} + {n:,}; {pairs:,} pairs ({', '.join(f'{k} {v:,}' for k, v in counts.items())})"
    return [
        Result(NAME, "preference dataset time", seconds, "s", "≤ 30", seconds <= 30, note),
        Result(NAME, "preference dataset peak RSS", child.peak_rss_mb, "MB", "≤ 1,024", child.peak_rss_mb <= 1024,
               f"child process (VmHWM){_parts(child)}"),
    ]  # fmt: skip
