"""The SQLite fast path of flat exports gives the rows the record path gives."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from rlhfkit import FeedbackFilter, InteractionFilter, RecordBatch, StorageBackend, create_rlhf_logger
from rlhfkit import _export_sqlite as fast
from rlhfkit._export import export_records
from rlhfkit.storage.memory import MemoryStorage
from rlhfkit.storage.sql import SQLStorage

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def _log_tricky_records(db: Path) -> None:
    """Interactions over several pages, with feedback that is hard to render the same way twice."""
    config = {"sqlite": {"path": str(db)}}
    with create_rlhf_logger(backend=StorageBackend.SQLITE, backend_config=config) as logger:
        ids = []
        for n in range(9):
            # Whole seconds and fractions; a time before 1970 too.
            when = BASE + timedelta(minutes=n, microseconds=0 if n % 2 else 1_500 * n)
            if n == 8:
                when = datetime(1969, 12, 31, 23, 59, 59, 250_000, tzinfo=UTC)
            ids.append(
                logger.log_interaction(
                    f"prompt {n}", f"answer {n}", model="m" if n % 3 else None, timestamp=when,
                    user_id='quote " and \\ backslash' if n == 1 else None, session_id="s\ttab" if n == 2 else None,
                    context=[{"role": "user", "content": "earlier \u00e9\n"}] if n == 3 else None,
                    metadata={"k": [1, 2.5, "x y"]} if n == 4 else None,
                    token_usage={"prompt": n, "completion": 1} if n % 2 else None,
                )
            )  # fmt: skip
        logger.log_binary_feedback(ids[0], True, user_id='rater "1"', metadata={"note": "two words"})
        logger.log_binary_feedback(ids[0], False, timestamp=BASE + timedelta(hours=1))
        logger.log_rating(ids[0], 3, "fine, I guess", session_id="s\u0001")
        logger.log_rating(ids[0], 7, max_rating=10)
        logger.log_rating(ids[0], 2)
        logger.log_text_feedback(ids[2], "line one\nline two", "positive")
        logger.log_multi_dimensional_feedback(
            ids[5], {"a": 4, "b": 2}, weights={"a": 2, "b": 1}, overall_comment="ok"
        )
        logger.log_comparative_feedback(ids[1], [ids[6], ids[7]], reason="clearer", confidence=0.25)
        logger.log_rating(ids[7], 5, source="model")


def _record_path_copy(storage: SQLStorage) -> MemoryStorage:
    memory = MemoryStorage()
    memory.write(
        RecordBatch(
            interactions=list(storage.iter_interactions(InteractionFilter())),
            feedback=list(storage.iter_feedback(FeedbackFilter())),
        )
    )
    return memory


@pytest.mark.parametrize("page", [2, 3, 20_000])
def test_fast_path_rows_equal_the_record_path_across_pages(
    tmp_path: Path, monkeypatch: Any, page: int
) -> None:
    """Parquet and CSV from SQLite equal the record path's, whatever the page size splitting the feedback."""
    db = tmp_path / "rlhf.db"
    _log_tricky_records(db)
    monkeypatch.setattr(fast, "_PAGE", page)
    monkeypatch.setattr(fast, "_FEEDBACK_FETCH", 2)
    storage = SQLStorage(f"sqlite:///{db}")
    memory = _record_path_copy(storage)
    rows = pq.read_table(io.BytesIO(export_records(storage, "parquet"))).to_pylist()  # type: ignore[arg-type]
    expected = pq.read_table(io.BytesIO(export_records(memory, "parquet"))).to_pylist()  # type: ignore[arg-type]
    assert len(rows) == 9 and rows == expected
    first = next(r for r in rows if r["feedback_count"] == 5)
    assert (first["thumbs_up"], first["thumbs_down"]) == (1, 1)
    assert first["average_rating"] == pytest.approx((3 + 3.5 + 2) / 3)
    assert any(r["timestamp"].startswith("1969-12-31T23:59:59.25") for r in rows)
    assert export_records(storage, "csv") == export_records(memory, "csv")
    storage.close()


def test_fast_path_time_filter_and_no_feedback_equal_the_record_path(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A time window and include_feedback=False give the record path's rows too."""
    db = tmp_path / "rlhf.db"
    _log_tricky_records(db)
    monkeypatch.setattr(fast, "_PAGE", 2)
    storage = SQLStorage(f"sqlite:///{db}")
    memory = _record_path_copy(storage)
    window = {"start_time": BASE + timedelta(minutes=2), "end_time": BASE + timedelta(minutes=6)}
    for options in (window, {"include_feedback": False}, {**window, "include_feedback": False}):
        rows = pq.read_table(io.BytesIO(export_records(storage, "parquet", **options))).to_pylist()  # type: ignore[arg-type]
        expected = pq.read_table(io.BytesIO(export_records(memory, "parquet", **options))).to_pylist()  # type: ignore[arg-type]
        assert rows == expected
    assert len(pq.read_table(io.BytesIO(export_records(storage, "parquet", **window))).to_pylist()) == 4  # type: ignore[arg-type]
    storage.close()
