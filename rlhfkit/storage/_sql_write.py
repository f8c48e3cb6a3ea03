"""Bulk writes: multi-row INSERTs and executemany on SQLite, COPY on PostgreSQL.

Rows come from :mod:`._sql_rows`. Both paths ignore records whose id is
stored already, and write the rows derived from a feedback (targets,
dimensions, comparison pairs) only when the feedback itself is new.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

from .._models import Feedback, FeedbackSession, Interaction
from ..errors import ValidationError
from . import _sql_rows as rows
from ._sql_schema import sessions

__all__ = ["copy_new_interactions", "refuse_nul", "upsert_sessions", "write_postgres", "write_sqlite"]


def refuse_nul(project: str, interactions: list[Any], feedback: list[Feedback], sessions: list[FeedbackSession]) -> None:
    """Raise a ValidationError naming the first field with a NUL character (PostgreSQL refuses them)."""
    found = rows.nul_column(interactions, rows.INTERACTION_COLUMNS)
    kind = "interactions"
    if found is None:
        found = rows.nul_column([rows.feedback_row(project, f) for f in feedback], rows.FEEDBACK_COLUMNS)
        kind = "feedback"
    if found is None:
        found = rows.nul_column([(s.id, s.user_id, s.model_dump_json()) for s in sessions], ("id", "user_id", "doc"))
        kind = "sessions"
    if found is not None:
        index, column = found
        raise ValidationError(f"{kind}[{index}].{column}", "NUL characters (\\u0000) cannot be stored in PostgreSQL")

def write_sqlite(connection: Any, project: str, interactions: list[Interaction], feedback: list[Feedback]) -> None:
    """Insert rows (interactions several per statement, the rest by executemany); existing ids are ignored."""
    def sql(table: str, columns: Sequence[str], extra: str = "", extra_values: str = "") -> str:
        marks = ", ".join("?" * len(columns))
        return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}{extra}) VALUES ({marks}{extra_values})"

    if interactions:
        _insert_interactions(connection, project, interactions)
    if not feedback:
        return
    # The write lock is held (BEGIN IMMEDIATE): what exists now cannot change before the insert.
    existing: set[str] = set()
    ids = [f.id for f in feedback]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        found = connection.exec_driver_sql(
            f"SELECT id FROM feedback WHERE project = ? AND id IN ({', '.join('?' * len(chunk))})",
            (project, *chunk),
        )
        existing.update(r[0] for r in found)
    new = [f for f in feedback if f.id not in existing]
    if not new:
        return
    p = project
    lookup = "(SELECT model FROM interactions WHERE project = ? AND id = ?)"
    connection.exec_driver_sql(
        sql("feedback", rows.FEEDBACK_COLUMNS, ", model", f", {lookup}"),
        [(*rows.feedback_row(p, f), p, f.interaction_id) for f in new],
    )
    targets = [(*r, p, r[2]) for f in new for r in rows.target_rows(p, f)]
    when = "(SELECT timestamp FROM interactions WHERE project = ? AND id = ?)"
    connection.exec_driver_sql(
        sql("feedback_targets", rows.TARGET_COLUMNS, ", interaction_timestamp", f", {when}"), targets
    )
    dimensions = [r for f in new for r in rows.dimension_rows(p, f)]
    if dimensions:
        connection.exec_driver_sql(sql("feedback_dimensions", rows.DIMENSION_COLUMNS), dimensions)
    pairs = [(*r, p, r[2], p, r[3]) for f in new for r in rows.pair_rows(p, f)]
    if pairs:
        connection.exec_driver_sql(
            sql("feedback_pairs", rows.PAIR_COLUMNS, ", preferred_model, alternative_model", f", {lookup}, {lookup}"),
            pairs,
        )

_ROWS_PER_INSERT = 500


def _insert_interactions(connection: Any, project: str, interactions: list[Interaction]) -> None:
    """INSERT OR IGNORE the interactions' rows, several rows per statement.

    ``executemany`` steps once per row, and the sqlite3 module releases and
    takes the GIL around each step: in a server whose other threads run
    Python, every retake can wait for them (up to the switch interval), so the
    write crawls. One statement of many rows takes the GIL back once. (Running
    the statements on a second thread while this one builds the next rows was
    measured slower: the handoffs of the GIL cost more than the overlap gains.)
    """
    import sqlite3

    raw = connection.connection.driver_connection
    columns = rows.INTERACTION_COLUMNS
    size = max(1, min(_ROWS_PER_INSERT, raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(columns)))
    head = f"INSERT OR IGNORE INTO interactions ({', '.join(columns)}) VALUES "
    one = f"({', '.join('?' * len(columns))})"
    full = head + ", ".join([one] * size)
    for start in range(0, len(interactions), size):
        chunk = [rows.interaction_row(project, i) for i in interactions[start : start + size]]
        raw.execute(full if len(chunk) == size else head + ", ".join([one] * len(chunk)), tuple(chain.from_iterable(chunk)))


def copy_new_interactions(connection: Any, interactions: list[Any]) -> bool:
    """COPY interaction rows straight into their table, on a connection in autocommit mode.

    The COPY is its own transaction: every row is stored, or (an id is stored
    already, a batch sent again) none is and the result is False.
    """
    from psycopg import errors

    raw = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(_copy_sql("interactions", rows.INTERACTION_COLUMNS)) as pipe:
            for record in interactions:
                pipe.write_row(record)
    except errors.UniqueViolation:
        return False
    return True


def _copy_sql(table: str, columns: Sequence[str]) -> str:
    return f"COPY {table} ({', '.join(columns)}) FROM STDIN"


def write_postgres(
    connection: Any, project: str, interactions: list[Any], feedback: list[Feedback], copy_first: bool = True
) -> None:
    """COPY new interactions straight into their table; everything else (and a batch sent again) through
    temporary tables and INSERT ... SELECT ... ON CONFLICT DO NOTHING.

    ``copy_first=False`` skips the straight COPY (an id of the batch is known to be stored).
    """
    raw = connection.connection.driver_connection
    created: set[str] = connection.connection.info.setdefault("rlhfkit_temp_tables", set())
    try:
        _copy_all(raw, created, project, interactions, feedback, copy_first)
    except BaseException:
        created.clear()  # a rolled-back transaction takes the temporary tables it created with it
        raise

def _copy_all(
    raw: Any, created: set[str], project: str, interactions: list[Any], feedback: list[Feedback], copy_first: bool
) -> None:
    p = project
    with raw.cursor() as cursor:

        def copy(table: str, columns: Sequence[str], records: list[Any], insert: str) -> list[Any]:
            """COPY records into a temporary twin of ``table``, then run ``insert`` (which reads ``t``)."""
            temp = f"_rlhfkit_{table}"
            if temp not in created:  # temporary tables live as long as the pooled connection
                cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {temp} (LIKE {table} INCLUDING DEFAULTS) "
                    "ON COMMIT DELETE ROWS"
                )
                created.add(temp)
            with cursor.copy(_copy_sql(temp, columns)) as pipe:
                for record in records:
                    pipe.write_row(record)
            cursor.execute(insert.format(temp=temp, names=", ".join(columns)))
            return cursor.fetchall() if cursor.description else []

        plain = "INSERT INTO {table} ({{names}}) SELECT {{names}} FROM {{temp}} t ON CONFLICT DO NOTHING"
        columns = rows.INTERACTION_COLUMNS
        if interactions and not (copy_first and _copy_if_all_new(cursor, "interactions", columns, interactions)):
            copy("interactions", rows.INTERACTION_COLUMNS, interactions, plain.format(table="interactions"))
        if not feedback:
            return
        picked = ", ".join(f"t.{c}" for c in rows.FEEDBACK_COLUMNS)
        inserted = copy(
            "feedback",
            rows.FEEDBACK_COLUMNS,
            [rows.feedback_row(p, f) for f in feedback],
            f"INSERT INTO feedback ({{names}}, model) SELECT {picked}, i.model FROM {{temp}} t "
            "LEFT JOIN interactions i ON i.project = t.project AND i.id = t.interaction_id "
            "ON CONFLICT DO NOTHING RETURNING id",
        )
        new_ids = {r[0] for r in inserted}
        new = [f for f in feedback if f.id in new_ids]
        targets = [r for f in new for r in rows.target_rows(p, f)]
        if targets:
            picked = ", ".join(f"t.{c}" for c in rows.TARGET_COLUMNS)
            copy(
                "feedback_targets",
                rows.TARGET_COLUMNS,
                targets,
                f"INSERT INTO feedback_targets ({{names}}, interaction_timestamp) SELECT {picked}, i.timestamp "
                "FROM {temp} t LEFT JOIN interactions i ON i.project = t.project AND i.id = t.interaction_id "
                "ON CONFLICT DO NOTHING",
            )
        dimensions = [r for f in new for r in rows.dimension_rows(p, f)]
        if dimensions:
            copy("feedback_dimensions", rows.DIMENSION_COLUMNS, dimensions, plain.format(table="feedback_dimensions"))
        pairs = [r for f in new for r in rows.pair_rows(p, f)]
        if pairs:
            picked = ", ".join(f"t.{c}" for c in rows.PAIR_COLUMNS)
            copy(
                "feedback_pairs",
                rows.PAIR_COLUMNS,
                pairs,
                f"INSERT INTO feedback_pairs ({{names}}, preferred_model, alternative_model) "
                f"SELECT {picked}, ip.model, ia.model FROM {{temp}} t "
                "LEFT JOIN interactions ip ON ip.project = t.project AND ip.id = t.preferred_id "
                "LEFT JOIN interactions ia ON ia.project = t.project AND ia.id = t.alternative_id "
                "ON CONFLICT DO NOTHING",
            )

def _copy_if_all_new(cursor: Any, table: str, columns: Sequence[str], records: list[Any]) -> bool:
    """COPY records straight into ``table``; False, with nothing written, when an id is stored already.

    Most batches hold only new records, and a plain COPY costs the server about
    a third less than filling a temporary table and inserting from it. A
    savepoint undoes the COPY when a record conflicts (a batch sent again).
    """
    from psycopg import errors

    cursor.execute("SAVEPOINT rlhfkit_copy")
    try:
        with cursor.copy(_copy_sql(table, columns)) as pipe:
            for record in records:
                pipe.write_row(record)
    except errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT rlhfkit_copy")
        return False
    cursor.execute("RELEASE SAVEPOINT rlhfkit_copy")
    return True


def upsert_sessions(connection: Any, values: list[dict[str, Any]]) -> None:
    """Insert sessions, replacing those already stored."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(sessions)
    updated = {c: statement.excluded[c] for c in ("user_id", "start_time", "end_time", "interaction_ids",
                                                  "feedback_ids", "metadata")}  # fmt: skip
    connection.execute(statement.on_conflict_do_update(index_elements=["project", "id"], set_=updated), values)
