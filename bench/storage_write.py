"""Interactions stored per second: SQLStorage (SQLite), LocalStorage (JSONL), and raw sqlite3.

The same N interactions (realistic: token usage, metadata, ~400 characters
of text) are written three ways, each into a fresh file, in interleaved
rounds (the median of three rounds is reported):

* ``SQLStorage.write(RecordBatch)`` in batches of 2,000 — the time includes
  turning the models into rows;
* ``LocalStorage.write(RecordBatch)`` in the same batches (JSONL files);
* raw ``sqlite3`` ``executemany`` of the very rows SQLStorage would write
  (already built, not timed) into the same schema, WAL and
  ``synchronous=NORMAL`` as SQLStorage sets them, committing every 1,000 rows.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import Result, median

NAME = "storage_write"
TITLE = "interactions stored per second, SQLite / JSONL / raw sqlite3 (targets ≥ 100,000/s, SQLite ≥ 0.5× raw)"

BATCH = 2_000
RAW_COMMIT = 1_000


def available() -> str | None:
    """Runnable when SQLAlchemy is installed."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return "sqlalchemy is not installed"
    return None


def _sqlstorage(batches: list[Any], path: Path) -> float:
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(f"sqlite:///{path}")
    storage.initialize()
    start = time.perf_counter()
    for batch in batches:
        storage.write(batch)
    elapsed = time.perf_counter() - start
    storage.close()
    return elapsed


def _jsonl(batches: list[Any], path: Path) -> float:
    from rlhfkit.storage.local import LocalStorage

    storage = LocalStorage(data_dir=path)
    storage.initialize()
    start = time.perf_counter()
    for batch in batches:
        storage.write(batch)
    elapsed = time.perf_counter() - start
    storage.close()
    return elapsed


def _raw(rows: list[tuple[Any, ...]], path: Path) -> float:
    from rlhfkit.storage._sql_rows import INTERACTION_COLUMNS
    from rlhfkit.storage.sql import SQLStorage

    schema = SQLStorage(f"sqlite:///{path}")
    schema.initialize()
    schema.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    sql = f"INSERT INTO interactions ({', '.join(INTERACTION_COLUMNS)}) VALUES ({', '.join('?' * len(INTERACTION_COLUMNS))})"
    start = time.perf_counter()
    for first in range(0, len(rows), RAW_COMMIT):
        conn.execute("BEGIN")
        conn.executemany(sql, rows[first : first + RAW_COMMIT])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def run(quick: bool = False) -> list[Result]:
    """Three interleaved rounds of the three writers; rates from the median round."""
    from rlhfkit import RecordBatch
    from rlhfkit.storage._sql_rows import interaction_row

    from ._fixtures import sample_interactions

    n = 20_000 if quick else 200_000
    interactions = sample_interactions(n)
    batches = [RecordBatch(interactions=interactions[i : i + BATCH]) for i in range(0, n, BATCH)]
    rows = [interaction_row("default", i) for i in interactions]
    times: dict[str, list[float]] = {"raw": [], "sql": [], "jsonl": []}
    for _round in range(3):
        with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as tmp:
            base = Path(tmp)
            times["raw"].append(_raw(rows, base / "raw.db"))
            times["sql"].append(_sqlstorage(batches, base / "sql.db"))
            times["jsonl"].append(_jsonl(batches, base / "jsonl"))
            shutil.rmtree(base, ignore_errors=True)
    rate = {k: n / median(v) for k, v in times.items()}
    ratio = rate["sql"] / rate["raw"]
    spread = {k: f"{min(n / t for t in v):,.0f}–{max(n / t for t in v):,.0f}" for k, v in times.items()}
    note = f"{n:,} interactions, batches of {BATCH:,}; median of 3 rounds"
    return [
        Result(NAME, "SQLStorage.write (SQLite)", rate["sql"], "rec/s", "≥ 100,000", rate["sql"] >= 100_000,
               f"{note}; range {spread['sql']}"),
        Result(NAME, "raw sqlite3 executemany, same rows", rate["raw"], "rec/s",
               note=f"WAL, {RAW_COMMIT:,}-row commits; range {spread['raw']}"),
        Result(NAME, "SQLStorage / raw sqlite3", ratio, "×", "≥ 0.5", ratio >= 0.5),
        Result(NAME, "LocalStorage.write (JSONL)", rate["jsonl"], "rec/s", "≥ 100,000", rate["jsonl"] >= 100_000,
               f"range {spread['jsonl']}"),
    ]  # fmt: skip
