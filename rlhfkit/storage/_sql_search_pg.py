"""The substring search index of PostgreSQL: ``pg_trgm`` on a side table kept off the write path.

A text search keeps the meaning of the plain scan (a case-insensitive
substring of the prompt or the response); the index only narrows the rows
that scan checks, so results are the same whatever the index holds.

A trigram index on ``interactions`` itself would triple the cost of every
write. Instead, ``interactions_search`` holds each row's ``project``, ``id``
and ``body`` (prompt, newline, response) under a ``gin_trgm_ops`` index,
and is filled in bulk, off the write path, in the order of
``interactions.seq``: a number every new row takes from a sequence (a column
default, so writes never name it; its index costs writes a few per cent).
``interactions_search_state.indexed_to`` is the high-water mark: every row
with a ``seq`` up to it is indexed (so are the rows stored before the
migration, whose ``seq`` is NULL). A search reads the index's candidates plus
every row above the mark (a bounded scan), as on SQLite.

Unlike SQLite's rowids, sequence numbers are taken when a row is inserted but
become visible when its transaction commits, in any order: indexing "every
committed row above the mark" could pass over a row whose transaction is
still open and never come back to it. So the catch-up first settles a bound:
in a short transaction it takes ``LOCK TABLE interactions IN SHARE MODE``,
which waits for every transaction that has written to the table (each holds
``ROW EXCLUSIVE`` until it ends) and keeps new ones out, and reads the
sequence's last value. Every row numbered up to that bound is then committed
(or rolled back for good), and a writer that gets the table afterwards takes
a larger number (the sequence has no per-session cache). Rows up to the bound
are then indexed without the lock, a batch per transaction, the mark rising
with each.

``body ILIKE pattern`` keeps every row where the prompt or the response
matches: in UTF-8, ILIKE is LIKE on ``lower()`` of both sides, and ``lower``
of the body is the prompt's and the response's ``lower`` around the newline,
a character that is no letter (nor is it case-ignorable).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from . import _sql_schema as schema

__all__ = [
    "SEARCH_TABLE",
    "STATE_TABLE",
    "allocated_to",
    "candidates",
    "catch_up",
    "create_index",
    "has_index",
    "index_rows",
    "indexed_to",
    "number_rows",
    "settle",
]

logger = logging.getLogger("rlhfkit.storage.sql")

sa = schema.sa

SEARCH_TABLE = "interactions_search"
STATE_TABLE = "interactions_search_state"
SEQUENCE = "interactions_seq"
EXTENSION = "pg_trgm"
LOCK_TIMEOUT_MS = 1000
"""How long the catch-up waits for writers to finish before it gives up until the next search."""
_WORD = re.compile(r"[^\W_]{3}")


def number_rows(connection: Any) -> None:
    """Give interactions a ``seq`` column numbering new rows, with an index (rows present keep NULL).

    No value is given to the rows present, so the table is not rewritten, and
    the index leaves them out. A BRIN index would cost writes even less, but
    the planner prices it as a read of the whole table until statistics show
    the column follows the row order, and then scans the table for the rows
    above the mark. The column's statistics are gathered at once for the same
    reason (unknown, a third of the table would be expected above the mark).
    """
    connection.exec_driver_sql("ALTER TABLE interactions ADD COLUMN seq BIGINT")
    connection.exec_driver_sql(f"CREATE SEQUENCE {SEQUENCE} OWNED BY interactions.seq")
    connection.exec_driver_sql(f"ALTER TABLE interactions ALTER COLUMN seq SET DEFAULT nextval('{SEQUENCE}')")
    connection.exec_driver_sql("CREATE INDEX ix_interactions_seq ON interactions (seq) WHERE seq IS NOT NULL")
    connection.exec_driver_sql("ANALYZE interactions (seq)")


def _trigram_schema(connection: Any) -> str | None:
    """The schema of the pg_trgm extension, created when missing (in ``public`` when it can); None if it cannot be."""
    found = connection.exec_driver_sql(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = %(name)s", {"name": EXTENSION}
    ).scalar()
    if found is not None:
        return str(found)
    for clause in (" SCHEMA public", ""):
        try:
            with connection.begin_nested():
                connection.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}{clause}")
        except sa.exc.DBAPIError as exc:
            error = exc
            continue
        return _trigram_schema(connection)
    logger.warning("no substring search index (PostgreSQL extension %s: %s): text search scans", EXTENSION, error.orig)
    return None


def create_index(connection: Any) -> bool:
    """Create the side table and its trigram index, filled with every row stored now; False without pg_trgm.

    The rows present are those up to a settled bound (see :func:`settle`),
    and writers wait until the transaction ends: the migration runs it where
    they wait anyway.
    """
    extension = _trigram_schema(connection)
    if extension is None:
        return False
    connection.exec_driver_sql(
        f'CREATE TABLE {SEARCH_TABLE} (project VARCHAR NOT NULL, id VARCHAR COLLATE "C" NOT NULL, body TEXT NOT NULL)'
    )
    connection.exec_driver_sql(f"CREATE TABLE {STATE_TABLE} (indexed_to BIGINT NOT NULL)")
    bound = settle(connection, wait=True)
    connection.exec_driver_sql(
        f"INSERT INTO {SEARCH_TABLE} (project, id, body) SELECT project, id, prompt || E'\\n' || response "
        "FROM interactions WHERE seq IS NULL OR seq <= %(bound)s",
        {"bound": bound},
    )
    connection.exec_driver_sql(f"INSERT INTO {STATE_TABLE} (indexed_to) VALUES (%(bound)s)", {"bound": bound})
    # Building the index in one pass (not row by row) is several times faster with room to sort in.
    connection.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    connection.exec_driver_sql(
        f'CREATE INDEX ix_{SEARCH_TABLE}_body ON {SEARCH_TABLE} USING gin (body "{extension}".gin_trgm_ops)'
    )
    connection.exec_driver_sql(f"ANALYZE {SEARCH_TABLE}")
    return True


def has_index(connection: Any) -> bool:
    """Whether the side table's state exists in this schema."""
    return connection.exec_driver_sql(f"SELECT to_regclass('{STATE_TABLE}') IS NOT NULL").scalar() is True


def indexed_to(connection: Any) -> int:
    """The high-water mark: every row whose ``seq`` is at most this is indexed."""
    return int(connection.exec_driver_sql(f"SELECT indexed_to FROM {STATE_TABLE}").scalar_one())


def allocated_to(connection: Any) -> int:
    """The largest ``seq`` taken so far (0 when none), committed or not."""
    return int(connection.exec_driver_sql(
        f"SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {SEQUENCE}"
    ).scalar_one())  # fmt: skip


def settle(connection: Any, wait: bool = False) -> int:
    """A bound every row at or under which is committed: the sequence's last value, read under a SHARE lock.

    The lock waits for the transactions writing to ``interactions`` and is
    held until the caller's transaction ends (keep it short). Unless ``wait``,
    raises when writers hold the table longer than :data:`LOCK_TIMEOUT_MS`.
    """
    if not wait:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
    connection.exec_driver_sql("LOCK TABLE interactions IN SHARE MODE")
    return allocated_to(connection)


def index_rows(connection: Any, bound: int, limit: int | None = None) -> int | None:
    """Index the rows above the mark and up to ``bound`` (at most ``limit`` numbers of them); the new mark.

    ``bound`` must come from :func:`settle`. None when another catch-up holds the mark (it does the work).
    """
    try:
        with connection.begin_nested():
            mark = connection.exec_driver_sql(f"SELECT indexed_to FROM {STATE_TABLE} FOR UPDATE NOWAIT").scalar_one()
    except sa.exc.OperationalError:
        return None
    upper = bound if limit is None else min(bound, int(mark) + limit)
    if upper <= mark:
        return int(mark)
    connection.exec_driver_sql(
        f"INSERT INTO {SEARCH_TABLE} (project, id, body) SELECT project, id, prompt || E'\\n' || response "
        "FROM interactions WHERE seq > %(mark)s AND seq <= %(upper)s",
        {"mark": int(mark), "upper": upper},
    )
    connection.exec_driver_sql(f"UPDATE {STATE_TABLE} SET indexed_to = %(upper)s", {"upper": upper})
    return upper


def catch_up(storage: Any, batch: int) -> int:
    """Settle a bound, then index every row up to it, ``batch`` numbers per transaction; the mark reached.

    Gives up (leaving the rest to the next search) when writers hold the table
    too long or another catch-up is running.
    """
    try:
        with storage._connect() as connection:
            bound = settle(connection)
    except sa.exc.OperationalError as exc:
        logger.info("search index catch-up postponed: %s", exc.orig)
        with storage._connect() as connection:
            return indexed_to(connection)
    while True:
        with storage._connect() as connection:
            mark = index_rows(connection, bound, batch)
        if mark is None:
            with storage._connect() as connection:
                return indexed_to(connection)
        if mark >= bound:
            return mark


def waiting(connection: Any) -> int | None:
    """How many numbers were taken above the mark (None without an index)."""
    if not has_index(connection):
        return None
    return allocated_to(connection) - indexed_to(connection)


def pattern_allowed(search: str) -> bool:
    """Whether the index can narrow ``search``: it holds a run of three letters or digits, and no NUL.

    pg_trgm takes its trigrams from words (letters and digits): a text without
    such a run gives none, and the index would be read whole.
    """
    return "\x00" not in search and _WORD.search(search) is not None


def candidates(connection: Any, search: str, broad: int) -> Any | None:
    """A condition keeping the rows that may contain ``search``: the index's candidates and the rows above the mark.

    None when the index cannot narrow the search (no index, no trigram, or
    more than ``broad`` candidates): the plain scan applies.
    """
    if not pattern_allowed(search) or not has_index(connection):
        return None
    body = sa.table(SEARCH_TABLE, sa.column("project"), sa.column("id"), sa.column("body", sa.Text))
    near = body.c.body.icontains(search, autoescape=True)
    probe = sa.select(sa.literal(1)).select_from(body).where(near).limit(broad + 1).subquery()
    if int(connection.execute(sa.select(sa.func.count()).select_from(probe)).scalar_one()) > broad:
        return None
    tail = sa.table("interactions", sa.column("project"), sa.column("id"), sa.column("seq")).alias("tail")
    matched = sa.select(body.c.project, body.c.id).where(near)
    recent = sa.select(tail.c.project, tail.c.id).where(tail.c.seq > indexed_to(connection))
    i = schema.interactions
    return sa.tuple_(i.c.project, i.c.id).in_(sa.union_all(matched, recent))
