"""Parquet export of 1,000,000 interactions (with their feedback) from SQLite: ≤ 10 s, ≤ 500 MB peak RSS.

``rlhfkit._export.export_records(storage, "parquet", path=...)`` runs in a
child process; its wall time and the kernel's peak RSS of that process are
reported (VmHWM), next to the peak RSS of a child that only imports the same modules
and opens the storage (the floor).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import ChildRun, Result, run_child

NAME = "export"
TITLE = "Parquet export of 1M interactions from SQLite, in a child process (targets ≤ 10 s, ≤ 500 MB)"


# A run slower than this is stopped: the whole suite must finish in 15 minutes.
CAP_S = 150.0


def available() -> str | None:
    """Runnable when pyarrow and SQLAlchemy are installed."""
    try:
        import pyarrow  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return None


def child_export(db: str, out: str, floor_only: bool = False, days: float | None = None) -> dict[str, Any]:
    """In the child: export the database at ``db`` to Parquet at ``out`` (or only open it).

    ``days``: export only the interactions of the first ``days`` days of the fixture.
    """
    from datetime import timedelta

    import pyarrow.parquet  # noqa: F401

    from rlhfkit._export import export_records
    from rlhfkit.storage._sql_schema import from_micros
    from rlhfkit.storage.sql import SQLStorage

    from ._fixtures import BASE_US

    storage = SQLStorage(f"sqlite:///{db}")
    storage.initialize()
    if floor_only:
        return {"seconds": 0.0}
    end = None if days is None else from_micros(BASE_US) + timedelta(days=days)
    start = time.perf_counter()
    export_records(storage, "parquet", path=out, end_time=end)
    seconds = time.perf_counter() - start
    storage.close()
    return {"seconds": seconds}


def _parts(run: ChildRun) -> str:
    """The peaks of each kind of resident memory: heap, and file pages (SQLite maps the database)."""
    if run.anon_mb is None:
        return ""
    return f"; peaks {run.anon_mb:,.0f} MB anonymous, {run.file_mb:,.0f} MB file-backed (the mmap'd database)"


def run(quick: bool = False) -> list[Result]:
    """Export the fixture in a child, then count the rows written."""
    import pyarrow.parquet as pq

    from ._fixtures import sqlite_fixture

    n = 20_000 if quick else 1_000_000
    db = sqlite_fixture(n, n)
    with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as tmp:
        out = Path(tmp) / "export.parquet"
        floor = run_child(NAME, "child_export", {"db": str(db), "out": str(out), "floor_only": True})
        run = run_child(NAME, "child_export", {"db": str(db), "out": str(out)}, timeout_s=CAP_S)
        if run.timed_out:
            # A tenth of the data (the first 3 of 30 days) gives the rate.
            part = run_child(NAME, "child_export", {"db": str(db), "out": str(out), "days": 3}, timeout_s=CAP_S)
            rate = ""
            if not part.timed_out:
                rows = pq.ParquetFile(out).metadata.num_rows
                per_s = rows / part.result["seconds"]
                rate = f"; the first 3 days ({rows:,} rows) took {part.result['seconds']:.0f} s: {per_s:,.0f} rows/s, ≈ {n / per_s:,.0f} s for all"
            return [
                Result(NAME, "Parquet export time", None, "s", "≤ 10", False,
                       f"{n:,} interactions: not finished after {CAP_S:.0f} s (stopped){rate}"),
                Result(NAME, "Parquet export peak RSS", run.peak_rss_mb, "MB", "≤ 500", run.peak_rss_mb <= 500,
                       f"until stopped; {floor.peak_rss_mb:,.0f} MB after imports alone"),
            ]  # fmt: skip
        rows = pq.ParquetFile(out).metadata.num_rows
        size_mb = out.stat().st_size / 1e6
    if rows != n:
        raise RuntimeError(f"the export has {rows} rows, expected {n}")
    seconds = run.result["seconds"]
    return [
        Result(NAME, "Parquet export time", seconds, "s", "≤ 10", seconds <= 10,
               f"{n:,} interactions with their feedback; {rows / seconds:,.0f} rows/s; file {size_mb:,.0f} MB"),
        Result(NAME, "Parquet export peak RSS", run.peak_rss_mb, "MB", "≤ 500", run.peak_rss_mb <= 500,
               f"child process (VmHWM); {floor.peak_rss_mb:,.0f} MB after imports alone{_parts(run)}"),
    ]  # fmt: skip
