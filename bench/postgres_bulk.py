"""PostgreSQL bulk insert: ``SQLStorage.write`` vs a raw psycopg COPY of the same rows (target ≥ 0.5×).

Both write the same N interactions into rlhfkit's ``interactions`` table, each
in its own fresh schema created by ``SQLStorage.initialize()``, in batches of
5,000 with a commit per batch, in three interleaved rounds (tables truncated
between rounds); the median round is reported. ``SQLStorage.write`` is timed
from ``RecordBatch`` (row building included); the COPY gets the very rows
SQLStorage builds, made beforehand.
"""

from __future__ import annotations

import time
from typing import Any

from ._common import Result, median

NAME = "postgres_bulk"
TITLE = "PostgreSQL: SQLStorage.write vs raw psycopg COPY of the same rows (target ≥ 0.5×)"

BATCH = 5_000


def available() -> str | None:
    """Runnable when psycopg is installed and PostgreSQL answers."""
    try:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    from ._pg import postgres_unavailable

    return postgres_unavailable()


def _storage_write(url: str, batches: list[Any]) -> float:
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(url)
    storage.initialize()
    with storage.engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE interactions")
    start = time.perf_counter()
    for batch in batches:
        storage.write(batch)
    elapsed = time.perf_counter() - start
    storage.close()
    return elapsed


def _raw_copy(url: str, rows: list[tuple[Any, ...]]) -> float:
    import psycopg

    from rlhfkit.storage._sql_rows import INTERACTION_COLUMNS
    from rlhfkit.storage.sql import SQLStorage

    schema = SQLStorage(url)
    schema.initialize()
    schema.close()
    sql = f"COPY interactions ({', '.join(INTERACTION_COLUMNS)}) FROM STDIN"
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("TRUNCATE interactions")
        conn.commit()
        start = time.perf_counter()
        for first in range(0, len(rows), BATCH):
            with conn.cursor() as cursor, cursor.copy(sql) as copy:
                for row in rows[first : first + BATCH]:
                    copy.write_row(row)
            conn.commit()
        return time.perf_counter() - start


def run(quick: bool = False) -> list[Result]:
    """Three interleaved rounds of SQLStorage.write and raw COPY."""
    from rlhfkit import RecordBatch
    from rlhfkit.storage._sql_rows import interaction_row

    from ._fixtures import sample_interactions
    from ._pg import fresh_schema

    n = 20_000 if quick else 200_000
    interactions = sample_interactions(n)
    batches = [RecordBatch(interactions=interactions[i : i + BATCH]) for i in range(0, n, BATCH)]
    rows = [interaction_row("default", i) for i in interactions]
    times: dict[str, list[float]] = {"sql": [], "copy": []}
    with fresh_schema("bulk_rlhfkit") as sql_url, fresh_schema("bulk_copy") as copy_url:
        for _round in range(3):
            times["copy"].append(_raw_copy(copy_url, rows))
            times["sql"].append(_storage_write(sql_url, batches))
    rate = {k: n / median(v) for k, v in times.items()}
    ratio = rate["sql"] / rate["copy"]
    note = f"{n:,} interactions, batches of {BATCH:,}; median of 3 rounds"
    return [
        Result(NAME, "SQLStorage.write (PostgreSQL)", rate["sql"], "rec/s", note=note),
        Result(NAME, "raw psycopg COPY, same rows", rate["copy"], "rec/s"),
        Result(NAME, "SQLStorage / raw COPY", ratio, "×", "≥ 0.5", ratio >= 0.5),
    ]
