"""The SQLite fast path of flat (CSV, Parquet) interaction exports.

Building an :class:`~rlhfkit.Interaction` per row costs more than the whole
export may (1,000,000 rows in seconds), so for a SQLite :class:`SQLStorage`
the flat rows are read straight from the tables and assembled column-wise in
Arrow:

* interactions are read in pages of ids, their JSON parts extracted by
  SQLite's JSON functions;
* feedback is read by one scan of the target index, in (interaction id,
  feedback id) order, and merged with the pages: the rows up to a page's last
  id are that page's feedback;
* per page, each feedback becomes its JSON record and the records are
  grouped by interaction (counts, thumbs, mean rating and the JSON array) with
  Arrow kernels, not Python loops.

Rows are the same as :func:`rlhfkit._export.flat_interaction_row` gives,
column for column (JSON columns as compact JSON of the stored records).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from operator import itemgetter
from typing import Any

from .errors import require

__all__ = ["sqlite_flat_interactions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 10_000
_FEEDBACK_FETCH = 10_000

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

# Every (target interaction, feedback) in that order: the columns of the feedback's
# JSON record (as Feedback.model_dump(mode="json") writes it, less the derived
# weighted_score), then its thumbs up / down and its rating on 1..5.
_FEEDBACK = """
SELECT t.interaction_id, f.id, f.interaction_id, f.type, json(f.data), f.user_id, f.session_id,
       json(f.metadata), f.timestamp, f.source,
       IFNULL(f.type = 'binary' AND json_extract(f.data, '$.value') = 'thumbs_up', 0),
       IFNULL(f.type = 'binary' AND json_extract(f.data, '$.value') = 'thumbs_down', 0),
       CASE WHEN f.type = 'rating' THEN f.rating_value * 5.0 / f.max_rating END
FROM feedback_targets t JOIN feedback f ON f.project = t.project AND f.id = t.feedback_id
WHERE t.project = ? AND t.interaction_id >= ?
ORDER BY t.interaction_id, t.feedback_id
"""

# Where each piece of a feedback record goes: '{"id":' id ',"interaction_id":' ... '}'.
_RECORD_KEYS = ('{"id":', ',"interaction_id":', ',"type":', ',"data":', ',"user_id":', ',"session_id":',
                ',"metadata":', ',"timestamp":', ',"source":')  # fmt: skip
_NEEDS_ESCAPE = '["\\\\\\x00-\\x1f]'


def _micros(value: datetime | None, default: int) -> int:
    return default if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def sqlite_flat_interactions(
    storage: Any, start_time: datetime | None, end_time: datetime | None, include_feedback: bool
) -> Iterator[Any]:
    """Pages of flat interaction rows as Arrow tables (INTERACTION_COLUMNS), in id order."""
    start, end = _micros(start_time, -(2**62)), _micros(end_time, 2**62)
    with storage.scan_connection() as connection:
        raw = connection.connection
        cursor = raw.cursor()
        feedback = _FeedbackScan(raw.cursor(), storage.project) if include_feedback else None
        after = ""
        while True:
            rows = cursor.execute(_INTERACTIONS, (storage.project, after, start, end, _PAGE)).fetchall()
            if not rows:
                return
            if feedback is not None and after == "":
                feedback.start(rows[0][0])
            yield _page(rows, feedback.until(rows[-1][0]) if feedback is not None else [])
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]


class _FeedbackScan:
    """One ordered scan of the feedback rows, handed out up to an interaction id at a time."""

    def __init__(self, cursor: Any, project: str) -> None:
        self.cursor = cursor
        self.project = project
        self.pending: list[tuple[Any, ...]] = []
        self.done = True

    def start(self, first_id: str) -> None:
        """Start the scan at the first interaction id of the export (the ones before are never needed)."""
        self.cursor.execute(_FEEDBACK, (self.project, first_id))
        self.done = False

    def until(self, last_id: str) -> list[tuple[Any, ...]]:
        """The rows of target interactions up to ``last_id`` (included) not handed out yet."""
        pending = self.pending
        while not self.done and (not pending or pending[-1][0] <= last_id):
            more = self.cursor.fetchmany(_FEEDBACK_FETCH)
            if not more:
                self.done = True
            pending.extend(more)
        cut = bisect.bisect_right(pending, last_id, key=itemgetter(0))
        self.pending = pending[cut:]
        return pending[:cut]


def _page(rows: list[tuple[Any, ...]], feedback: list[tuple[Any, ...]]) -> Any:
    """One page of flat rows as an Arrow table."""
    pa = require("pyarrow", "parquet")
    from ._export import INTERACTION_COLUMNS, _parquet_schema

    schema = _parquet_schema(INTERACTION_COLUMNS)
    columns = list(zip(*rows, strict=True))
    ids = pa.array(columns[0], pa.string())
    arrays = [ids, _isoformat(pa.array(columns[1], pa.int64()), "+00:00")]
    for n in range(2, 14):
        arrays.append(pa.array(columns[n], schema.field(n).type))
    count, up, down, rating, records = _summaries(ids, feedback)
    arrays += [count, up, down, rating, _json_or(columns[14], "[]"), _json_or(columns[15], "{}"), records]
    return pa.Table.from_arrays(arrays, schema=schema)


def _json_or(values: tuple[Any, ...], default: str) -> Any:
    """JSON text, with missing (or empty) values as ``default``."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    array = pa.array(values, pa.string())
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


def _quoted(values: tuple[Any, ...]) -> Any:
    """JSON string literals (``null`` for None), escaped as ``json.dumps`` and SQLite's JSON functions do."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    array = pa.array(values, pa.string())
    if pc.any(pc.match_substring_regex(array, _NEEDS_ESCAPE)).as_py():
        array = pa.array([None if v is None else encode_basestring(v) for v in values], pa.string())
    else:
        array = pc.binary_join_element_wise('"', array, '"', "")
    return pc.fill_null(array, "null")


def _summaries(ids: Any, feedback: list[tuple[Any, ...]]) -> tuple[Any, Any, Any, Any, Any]:
    """Per interaction of the page: feedback count, thumbs up, thumbs down, mean rating, records as a JSON array."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    n = len(ids)
    if not feedback:
        zeros = pa.array([0] * n, pa.int64())
        return zeros, zeros, zeros, pa.nulls(n, pa.float64()), pa.array(["[]"] * n, pa.string())
    (target, fid, iid, kind, data, user, session, metadata, micros, source, up, down, rating) = zip(
        *feedback, strict=True
    )
    pieces = [
        _quoted(fid), _quoted(iid), _quoted(kind), pc.fill_null(pa.array(data, pa.string()), "null"),
        _quoted(user), _quoted(session), pc.fill_null(pa.array(metadata, pa.string()), "null"),
        _quoted_time(micros), _quoted(source),
    ]  # fmt: skip
    parts: list[Any] = []
    for key, piece in zip(_RECORD_KEYS, pieces, strict=True):
        parts += [key, piece]
    record = pc.binary_join_element_wise(*parts, "}", "")
    table = pa.table(
        {
            "target": pa.array(target, pa.string()),
            "up": pa.array(up, pa.int64()),
            "down": pa.array(down, pa.int64()),
            "rating": pa.array(rating, pa.float64()),
            "record": record,
        }
    )
    # Single-threaded grouping keeps groups and the records within them in input order.
    grouped = table.group_by("target", use_threads=False).aggregate(
        [([], "count_all"), ("up", "sum"), ("down", "sum"), ("rating", "mean"), ("record", "list")]
    )
    where = pc.index_in(ids, value_set=grouped["target"])
    arrays = pc.binary_join_element_wise("[", pc.binary_join(grouped["record_list"], ","), "]", "")
    return (
        pc.fill_null(grouped["count_all"].take(where), 0),
        pc.fill_null(grouped["up_sum"].take(where), 0),
        pc.fill_null(grouped["down_sum"].take(where), 0),
        grouped["rating_mean"].take(where),
        pc.fill_null(arrays.take(where), "[]"),
    )


def _quoted_time(micros: tuple[Any, ...]) -> Any:
    """Feedback times as pydantic writes them in JSON: a quoted ISO 8601 text ending in Z."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    return pc.binary_join_element_wise('"', _isoformat(pa.array(micros, pa.int64()), 'Z"'), "")
