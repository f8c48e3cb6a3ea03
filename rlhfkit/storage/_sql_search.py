"""The substring search index: FTS5 trigrams on SQLite, kept off the write path.

A text search keeps the meaning of the plain scan (a case-insensitive
substring of the prompt or the response); the index only narrows the rows
that scan checks, so results are the same whatever the index holds.

``interactions_search`` is a contentless FTS5 table (``trigram`` tokenizer,
``detail=none``) whose rowids are those of ``interactions``. Writes never
touch it, since indexing a row costs about twice as much as storing it: rows
are indexed in bulk, in rowid order above the largest rowid indexed (the
high-water mark). Interactions are never updated or deleted and their rowids
only grow, so everything above the mark is exactly what is not indexed yet.
The migration indexes the rows present; later rows are indexed by a
background thread that a search starts once more than :data:`TAIL_ROWS` of
them wait. Until then a search reads the index's candidates plus every row
above the mark (a bounded scan).

PostgreSQL gets the same arrangement with ``pg_trgm`` on a side table
(migration 008, :mod:`._sql_search_pg`): :func:`candidates` and
:func:`start_catch_up` serve both databases.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from . import _sql_schema as schema

__all__ = [
    "BROAD",
    "CATCH_UP_BATCH",
    "SEARCH_TABLE",
    "TAIL_ROWS",
    "candidates",
    "create_index",
    "index_rows",
    "indexed_to",
    "match_expression",
    "start_catch_up",
]

logger = logging.getLogger("rlhfkit.storage.sql")

sa = schema.sa

SEARCH_TABLE = "interactions_search"
TAIL_ROWS = 20_000
"""Rows not indexed yet beyond which a search starts indexing them in the background."""
CATCH_UP_BATCH = 5_000
"""Rows indexed per write transaction by the catch-up (short, so writers wait little)."""
BROAD = 20_000
"""More index candidates than this: the plain scan finds a page of matches sooner than checking every candidate."""
_MAX_TERMS = 24

_running: dict[int, threading.Thread] = {}
_guard = threading.Lock()


def create_index(connection: Any) -> bool:
    """Create the empty FTS5 table; False when this SQLite has no FTS5 trigram tokenizer (search then scans)."""
    try:
        with connection.begin_nested():
            connection.exec_driver_sql(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5("
                "prompt, response, content='', tokenize='trigram', detail='none')"
            )
    except sa.exc.OperationalError as exc:
        logger.warning(
            "no substring search index (SQLite %s: %s): text search scans", _version(connection), exc
        )
        return False
    return True


def _version(connection: Any) -> str:
    return str(connection.exec_driver_sql("SELECT sqlite_version()").scalar())


def has_index(connection: Any) -> bool:
    """Whether the search table exists in this database."""
    found = connection.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (SEARCH_TABLE,)
    ).first()
    return found is not None


def indexed_to(connection: Any) -> int:
    """The high-water mark: the largest interaction rowid indexed (0 when none is)."""
    mark = connection.exec_driver_sql(
        f"SELECT rowid FROM {SEARCH_TABLE} ORDER BY rowid DESC LIMIT 1"
    ).scalar()
    return int(mark or 0)


def index_rows(connection: Any, limit: int | None = None) -> int:
    """Index up to ``limit`` (all when None) of the rows above the mark, in rowid order; how many were indexed.

    Run it in a write transaction, so that no row can commit below the new mark meanwhile.
    """
    mark = indexed_to(connection)
    bound = "" if limit is None else f" LIMIT {int(limit)}"
    result = connection.exec_driver_sql(
        f"INSERT INTO {SEARCH_TABLE} (rowid, prompt, response) "
        f"SELECT rowid, prompt, response FROM interactions WHERE rowid > ? ORDER BY rowid{bound}",
        (mark,),
    )
    return int(result.rowcount)


def match_expression(search: str) -> str | None:
    """An FTS5 query for rows holding every trigram of ``search`` (a superset of its matches), or None.

    None when the text is shorter than three characters (no trigram) or holds a NUL.
    At most ``_MAX_TERMS`` trigrams are asked for, spread over the text: fewer
    terms still give a superset, and the LIKE check settles each row.
    """
    if len(search) < 3 or "\x00" in search:
        return None
    grams = list(dict.fromkeys(search[k : k + 3] for k in range(len(search) - 2)))
    if len(grams) > _MAX_TERMS:
        step = (len(grams) - 1) / (_MAX_TERMS - 1)
        grams = [grams[round(k * step)] for k in range(_MAX_TERMS)]
    return " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams)


def candidates(connection: Any, search: str) -> Any | None:
    """A condition keeping the rows that may contain ``search``: the index's candidates and the rows above the mark.

    None when the index cannot narrow the search (no index, fewer than three
    characters, or more than :data:`BROAD` candidates): the plain scan applies.
    """
    if connection.dialect.name == "postgresql":
        from . import _sql_search_pg

        return _sql_search_pg.candidates(connection, search, BROAD)
    expression = match_expression(search)
    if expression is None or not has_index(connection):
        return None
    probe = f"SELECT count(*) FROM (SELECT rowid FROM {SEARCH_TABLE} WHERE {SEARCH_TABLE} MATCH ? LIMIT {BROAD + 1})"
    if int(connection.exec_driver_sql(probe, (expression,)).scalar_one()) > BROAD:
        return None
    i = schema.interactions
    rowid = sa.literal_column("interactions.rowid")
    fts = sa.table(SEARCH_TABLE, sa.column("rowid"))
    matched = sa.select(fts.c.rowid).where(sa.literal_column(SEARCH_TABLE).op("MATCH")(expression))
    tail = sa.select(rowid).select_from(i).where(rowid > indexed_to(connection))
    return rowid.in_(sa.union_all(matched, tail))


def start_catch_up(storage: Any) -> threading.Thread | None:
    """Index the rows above the mark in a background thread when more than :data:`TAIL_ROWS` wait.

    One thread per engine at a time; returns it (None when none was started).
    """
    from . import _sql_search_pg

    with storage._connect() as connection:
        if storage.dialect == "postgresql":
            waiting = _sql_search_pg.waiting(connection)
        elif has_index(connection):
            waiting = int(connection.exec_driver_sql("SELECT max(rowid) FROM interactions").scalar() or 0)
            waiting -= indexed_to(connection)
        else:
            waiting = None
    if waiting is None or waiting <= TAIL_ROWS:
        return None
    key = id(storage.engine)
    with _guard:
        if key in _running:
            return None
        thread = _running[key] = threading.Thread(
            target=_catch_up, args=(storage, key), name="rlhfkit-search-index", daemon=True
        )
    thread.start()
    return thread


def _catch_up(storage: Any, key: int) -> None:
    try:
        if storage.dialect == "postgresql":
            from . import _sql_search_pg

            _sql_search_pg.catch_up(storage, CATCH_UP_BATCH)
            return
        while True:
            with storage._connect(write=True) as connection:
                if index_rows(connection, CATCH_UP_BATCH) < CATCH_UP_BATCH:
                    return
    except Exception:  # a search must never fail because indexing did: it scans the tail meanwhile
        logger.exception("indexing interactions for search failed")
    finally:
        with _guard:
            _running.pop(key, None)
