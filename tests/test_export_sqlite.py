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


@pytest.fixture(params=["adbc", "sqlite3"])
def reader(request: Any, monkeypatch: Any) -> str:
    """Each way of reading SQLite: the ADBC driver (Arrow data) and the standard sqlite3 module."""
    if request.param == "sqlite3":
        monkeypatch.setattr(fast, "_adbc_path", lambda storage: None)
    return str(request.param)


def test_the_adbc_driver_reads_file_databases_only(tmp_path: Path) -> None:
    """A file database is read by the ADBC driver; an in-memory one by sqlite3."""
    assert fast._adbc_path(SQLStorage(f"sqlite:///{tmp_path / 'x.db'}")) == str(tmp_path / "x.db")
    assert fast._adbc_path(SQLStorage("sqlite://")) is None


@pytest.mark.parametrize("page", [2, 3, 20_000])
def test_fast_path_rows_equal_the_record_path_across_pages(
    tmp_path: Path, monkeypatch: Any, page: int, reader: str
) -> None:
    """Parquet and CSV from SQLite equal the record path's, whatever the page size splitting the feedback."""
    db = tmp_path / "rlhf.db"
    _log_tricky_records(db)
    monkeypatch.setattr(fast, "_PAGE", page)
    monkeypatch.setattr(fast, "_FEEDBACK_BATCH", 2)  # batches whose inferred column types must agree
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
    tmp_path: Path, monkeypatch: Any, reader: str
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


def test_read_ahead_hands_over_pages_in_order_and_stops_its_thread_when_left_early() -> None:
    """Pages come in order; a consumer that stops early leaves no reading thread behind."""
    import threading

    closed = threading.Event()

    def pages() -> Any:
        try:
            for n in range(100):
                yield n, None
        finally:
            closed.set()

    assert [page for page, _ in fast._read_ahead(pages())] == list(range(100))
    early = fast._read_ahead(pages())
    closed.clear()
    assert next(early) == (0, None)
    early.close()
    assert closed.is_set()
    assert not any(t.name == "rlhfkit-export-read" for t in threading.enumerate())


def test_read_ahead_raises_the_readers_error_in_the_consumer() -> None:
    """An error while reading reaches the export's caller, after the pages read before it."""

    def pages() -> Any:
        yield 1, None
        raise RuntimeError("disk gone")

    got = []
    with pytest.raises(RuntimeError, match="disk gone"):
        for page, _ in fast._read_ahead(pages()):
            got.append(page)
    assert got == [1]
