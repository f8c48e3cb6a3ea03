"""The SQLite fast path of flat (CSV, Parquet) interaction exports.

Building an :class:`~rlhfkit.Interaction` per row costs more than the whole
export may (1,000,000 rows in seconds), so for a SQLite :class:`SQLStorage`
the flat rows are read straight from the tables: JSON parts are extracted by
SQLite's JSON functions and each page's feedback is summarised by one query.
Rows are the same as :func:`rlhfkit._export.flat_interaction_row` gives,
column for column (JSON columns as compact JSON of the stored records).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["sqlite_flat_interactions"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAGE = 5_000

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

# Per interaction: count, thumbs up, thumbs down, mean rating on 1..5, and the JSON
# array of its feedback records (as Feedback.model_dump(mode="json") writes them,
# less the derived weighted_score), in feedback id order.
_FEEDBACK = """
SELECT interaction_id, COUNT(*),
       SUM(kind = 'binary' AND thumbs = 'thumbs_up'), SUM(kind = 'binary' AND thumbs = 'thumbs_down'),
       AVG(CASE WHEN kind = 'rating' THEN rating * 5.0 / max_rating END),
       json_group_array(json(record))
FROM (
    SELECT t.interaction_id, f.type AS kind, json_extract(f.data, '$.value') AS thumbs,
           f.rating_value AS rating, f.max_rating AS max_rating,
           json_object('id', f.id, 'interaction_id', f.interaction_id, 'type', f.type, 'data', json(f.data),
                       'user_id', f.user_id, 'session_id', f.session_id, 'metadata', json(f.metadata),
                       'timestamp', strftime('%Y-%m-%dT%H:%M:%S', f.timestamp / 1000000, 'unixepoch')
                                    || CASE WHEN f.timestamp % 1000000 THEN printf('.%06d', f.timestamp % 1000000)
                                       ELSE '' END || 'Z',
                       'source', f.source) AS record
    FROM feedback_targets t JOIN feedback f ON f.project = t.project AND f.id = t.feedback_id
    WHERE t.project = ? AND t.interaction_id BETWEEN ? AND ?
    ORDER BY f.id
)
GROUP BY interaction_id
"""


def _micros(value: datetime | None, default: int) -> int:
    return default if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def sqlite_flat_interactions(
    storage: Any, start_time: datetime | None, end_time: datetime | None, include_feedback: bool
) -> Iterator[list[tuple[Any, ...]]]:
    """Pages of flat interaction rows (tuples in INTERACTION_COLUMNS order), in id order."""
    start, end = _micros(start_time, -(2**62)), _micros(end_time, 2**62)
    with storage.scan_connection() as connection:
        cursor = connection.connection.cursor()
        after = ""
        while True:
            rows = cursor.execute(_INTERACTIONS, (storage.project, after, start, end, _PAGE)).fetchall()
            if not rows:
                return
            summaries = _feedback_summaries(cursor, storage.project, [r[0] for r in rows]) if include_feedback else {}
            yield [_flat(row, summaries.get(row[0])) for row in rows]
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]


def _feedback_summaries(cursor: Any, project: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Per interaction id of the page (ids sorted): (count, thumbs up, thumbs down, mean rating, feedback JSON).

    One range scan of the target index covers the page; ids in the range that
    are not on the page (outside a time filter) are read and left unused.
    """
    return {row[0]: tuple(row[1:]) for row in cursor.execute(_FEEDBACK, (project, ids[0], ids[-1]))}


def _flat(row: tuple[Any, ...], summary: tuple[Any, ...] | None) -> tuple[Any, ...]:
    count, up, down, rating, records = summary or (0, 0, 0, None, "[]")
    return (
        row[0], (_EPOCH + timedelta(microseconds=row[1])).isoformat(), *row[2:14],
        count, up, down, rating, row[14] or "[]", row[15] or "{}", records,
    )  # fmt: skip
