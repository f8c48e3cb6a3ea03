"""The SQLite fast path of flat (CSV, Parquet) interaction exports.

Building an :class:`~rlhfkit.Interaction` per row costs more than the whole
export may (1,000,000 rows in seconds), so for a SQLite :class:`SQLStorage`
the flat rows are read straight from the tables and assembled column-wise in
Arrow:

* interactions are read in pages of ids, their JSON parts extracted by
  SQLite's JSON functions; each page's feedback is read by a range scan of
  the target index, in (interaction id, feedback id) order, with each
  feedback's JSON record built by SQLite (all but its time);
* per page, the records are grouped by interaction (counts, thumbs, mean
  rating and the JSON array) with Arrow kernels over the sorted runs, not
  Python loops;
* reading runs one page ahead in a thread, so SQLite reads while the
  previous page is assembled and written.

With ``adbc-driver-sqlite`` installed (the ``parquet`` extra), queries are
answered as Arrow data by the driver, without a Python object per value:
that halves the export's CPU time. Without it, or for an in-memory database,
the standard ``sqlite3`` module reads the same queries.

Rows are the same as :func:`rlhfkit._export.flat_interaction_row` gives,
column for column (JSON columns as compact JSON of the stored records).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import require

__all__ = ["sqlite_flat_interactions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 10_000
_FEEDBACK_BATCH = 1_000_000
"""Rows per Arrow batch of a page's feedback (the driver infers column types from a batch's rows)."""

_INTERACTIONS = """
SELECT id, timestamp, model, provider, prompt, response, latency,
       COALESCE(prompt_tokens, json_extract(doc, '$.token_usage.prompt')),
       COALESCE(completion_tokens, json_extract(doc, '$.token_usage.completion')),
       COALESCE(total_tokens, json_extract(doc, '$.token_usage.total')),
       user_id, session_id, json_extract(doc, '$.finish_reason'), json_extract(doc, '$.error.type'),
       json_extract(doc, '$.context'), json_extract(doc, '$.metadata')
FROM interactions
WHERE project = ? AND id > ? AND timestamp >= ? AND timestamp < ?
ORDER BY id LIMIT ?
"""

# The feedback of the targets in [first, last], in (target, feedback id) order: the feedback's
# JSON record (as Feedback.model_dump(mode="json") writes it, less the derived weighted_score)
# up to its time and from its source on, its time, then whether it is a thumbs up / down,
# whether it is a rating and its rating on 1..5 (0 when not one). No column is ever NULL,
# so that the column types the driver infers from the first rows hold for every row.
_FEEDBACK = """
SELECT t.interaction_id,
       '{"id":' || json_quote(f.id) || ',"interaction_id":' || json_quote(f.interaction_id)
         || ',"type":' || json_quote(f.type) || ',"data":' || json(f.data)
         || ',"user_id":' || json_quote(f.user_id) || ',"session_id":' || json_quote(f.session_id)
         || ',"metadata":' || json(f.metadata) || ',"timestamp":',
       f.timestamp,
       ',"source":' || json_quote(f.source) || '}',
       IFNULL(f.type = 'binary' AND json_extract(f.data, '$.value') = 'thumbs_up', 0),
       IFNULL(f.type = 'binary' AND json_extract(f.data, '$.value') = 'thumbs_down', 0),
       f.type = 'rating',
       IFNULL(CASE WHEN f.type = 'rating' THEN f.rating_value * 5.0 / f.max_rating END, 0.0)
FROM feedback_targets t JOIN feedback f ON f.project = t.project AND f.id = t.feedback_id
WHERE t.project = ? AND t.interaction_id >= ? AND t.interaction_id <= ?
ORDER BY t.interaction_id, t.feedback_id
"""
_FEEDBACK_NAMES = ["target", "head", "micros", "tail", "up", "down", "is_rating", "rating"]
_PREFETCH = 2
"""Pages read ahead of the one being assembled."""


def _micros(value: datetime | None, default: int) -> int:
    return default if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def sqlite_flat_interactions(
    storage: Any, start_time: datetime | None, end_time: datetime | None, include_feedback: bool
) -> Iterator[Any]:
    """Pages of flat rows as Arrow tables (INTERACTION_COLUMNS), in id order."""
    start, end = _micros(start_time, -(2**62)), _micros(end_time, 2**62)
    reader = _ArrowReader if _adbc_path(storage) is not None else _Sqlite3Reader
    pages = _read_pages(reader(storage), storage.project, start, end, include_feedback)
    for interactions, feedback in _read_ahead(pages):
        yield _page(interactions, feedback)


def _read_pages(
    reader: Any, project: str, start: int, end: int, include_feedback: bool
) -> Iterator[tuple[Any, Any]]:
    """(interactions, feedback) Arrow tables per page of ids, all read in one transaction."""
    with reader:
        after = ""
        while True:
            interactions = reader.query(_INTERACTIONS, (project, after, start, end, _PAGE), _PAGE + 1)
            if interactions.num_rows == 0:
                return
            ids = interactions.column(0)
            first, last = ids[0].as_py(), ids[-1].as_py()
            feedback = (
                reader.query(_FEEDBACK, (project, first, last), _FEEDBACK_BATCH) if include_feedback else None
            )
            yield interactions, feedback
            if interactions.num_rows < _PAGE:
                return
            after = last


class _ArrowReader:
    """Queries answered as Arrow tables by the ADBC SQLite driver, in one read transaction."""

    def __init__(self, storage: Any) -> None:
        self.path = _adbc_path(storage)
        self.connection: Any = None

    def __enter__(self) -> _ArrowReader:
        import adbc_driver_sqlite.dbapi

        # Not autocommit: the driver opens a transaction, so every page reads the same snapshot.
        self.connection = adbc_driver_sqlite.dbapi.connect(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.rollback()
        self.connection.close()

    def query(self, sql: str, params: tuple[Any, ...], batch_rows: int) -> Any:
        """The result of ``sql`` as an Arrow table (column types inferred from each batch of rows)."""
        with self.connection.cursor() as cursor:
            cursor.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
            cursor.execute(sql, params)
            return cursor.fetch_arrow_table()


class _Sqlite3Reader:
    """The same queries through the standard ``sqlite3`` module (via the storage's own connection)."""

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.scan: Any = None
        self.cursor: Any = None

    def __enter__(self) -> _Sqlite3Reader:
        self.scan = self.storage.scan_connection()
        self.cursor = self.scan.__enter__().connection.cursor()
        return self

    def __exit__(self, *exc: object) -> None:
        self.scan.__exit__(*exc)

    def query(self, sql: str, params: tuple[Any, ...], batch_rows: int) -> Any:
        """The result of ``sql`` as an Arrow table."""
        pa = require("pyarrow", "parquet")
        self.cursor.execute(sql, params)
        rows = self.cursor.fetchall()
        names = [f"c{n}" for n in range(len(self.cursor.description))]
        if not rows:
            return pa.table({name: pa.nulls(0) for name in names})
        return pa.table([pa.array(column) for column in zip(*rows, strict=True)], names=names)


def _adbc_path(storage: Any) -> str | None:
    """The database file for the ADBC driver; None when it is not installed or the database is in memory."""
    try:
        import adbc_driver_sqlite.dbapi  # noqa: F401
    except ImportError:
        return None
    database = storage.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(database)


def _read_ahead(pages: Iterator[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """``pages``, read up to :data:`_PREFETCH` pages ahead in a thread (Arrow and SQLite release the GIL)."""
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=_PREFETCH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        handoff.put(("page", page), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            handoff.put(("error", exc))
        finally:
            pages.close()  # type: ignore[attr-defined]

    thread = threading.Thread(target=produce, name="rlhfkit-export-read", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                handoff.get(timeout=0.1)
            except queue.Empty:
                continue
        thread.join()


def _page(interactions: Any, feedback: Any) -> Any:
    """One page of flat rows as an Arrow table."""
    pa = require("pyarrow", "parquet")
    from ._export import INTERACTION_COLUMNS, _parquet_schema

    schema = _parquet_schema(INTERACTION_COLUMNS)
    columns = interactions.columns
    ids = columns[0].cast(pa.string())
    arrays = [ids, _isoformat(columns[1].cast(pa.int64()), "+00:00")]
    for n in range(2, 14):
        arrays.append(columns[n].cast(schema.field(n).type))
    count, up, down, rating, records = _summaries(ids, feedback)
    arrays += [count, up, down, rating, _json_or(columns[14], "[]"), _json_or(columns[15], "{}"), records]
    return pa.Table.from_arrays(arrays, schema=schema)


def _json_or(values: Any, default: str) -> Any:
    """JSON text, with missing (or empty) values as ``default``."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    array = values.cast(pa.string())
    return pc.fill_null(pc.if_else(pc.equal(array, ""), None, array), default)


def _isoformat(micros: Any, suffix: str) -> Any:
    """Microseconds since the epoch as ``datetime.isoformat`` text (no fraction when zero) + ``suffix``."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    exact = pc.cast(micros, pa.timestamp("us"))
    # Casts to text give "YYYY-MM-DD HH:MM:SS[.ffffff]": seconds only where the fraction is zero.
    whole = pc.equal(pc.subtract(micros, pc.multiply(pc.divide(micros, 1_000_000), 1_000_000)), 0)
    seconds = pc.cast(pc.cast(exact, pa.timestamp("s"), safe=False), pa.string())
    text = pc.if_else(whole, seconds, pc.cast(exact, pa.string()))
    return pc.binary_join_element_wise(
        pc.utf8_replace_slice(text, start=10, stop=11, replacement="T"), suffix, ""
    )


def _summaries(ids: Any, feedback: Any) -> tuple[Any, Any, Any, Any, Any]:
    """Per interaction of the page: feedback count, thumbs up, thumbs down, mean rating, records as a JSON array.

    The feedback rows come sorted by target, so each target's rows are one
    run: a run's sums are differences of running sums at its ends, and its
    records one slice of a list array.
    """
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    n = len(ids)
    if feedback is None or feedback.num_rows == 0:
        zeros = pa.array([0] * n, pa.int64())
        return zeros, zeros, zeros, pa.nulls(n, pa.float64()), pa.array(["[]"] * n, pa.string())
    fb = feedback.rename_columns(_FEEDBACK_NAMES)
    target = fb["target"].combine_chunks().cast(pa.string())
    time = pc.binary_join_element_wise('"', _isoformat(fb["micros"].cast(pa.int64()), 'Z"'), "")
    records = pc.binary_join_element_wise(
        fb["head"].cast(pa.string()), time, fb["tail"].cast(pa.string()), ""
    ).combine_chunks()
    rows = len(target)
    changes = pc.indices_nonzero(pc.not_equal(target[1:], target[:-1])).to_numpy(zero_copy_only=False) + 1
    starts = pa.array([0, *changes.tolist()], pa.int64())
    ends = pa.array([*changes.tolist(), rows], pa.int64())

    def run_sums(column: str, kind: Any) -> Any:
        running = pc.cumulative_sum(pa.concat_arrays([pa.array([0], kind), fb[column].combine_chunks().cast(kind)]))
        return pc.subtract(running.take(ends), running.take(starts))

    count = pc.subtract(ends, starts)
    ratings = run_sums("is_rating", pa.int64())
    mean = pc.if_else(
        pc.equal(ratings, 0), None, pc.divide(run_sums("rating", pa.float64()), pc.cast(ratings, pa.float64()))
    )
    offsets = pa.concat_arrays([starts, pa.array([rows], pa.int64())]).cast(pa.int32())
    arrays = pc.binary_join_element_wise(
        "[", pc.binary_join(pa.ListArray.from_arrays(offsets, records), ","), "]", ""
    )
    where = pc.index_in(ids, value_set=target.take(starts))
    return (
        pc.fill_null(count.take(where), 0),
        pc.fill_null(run_sums("up", pa.int64()).take(where), 0),
        pc.fill_null(run_sums("down", pa.int64()).take(where), 0),
        mean.take(where),
        pc.fill_null(arrays.take(where), "[]"),
    )
