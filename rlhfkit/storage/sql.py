"""SQLStorage: SQLite and PostgreSQL through one SQLAlchemy Core layer.

::

    storage = SQLStorage("sqlite:///rlhf.db")          # or "sqlite://" in memory
    storage = SQLStorage("postgresql://postgres@127.0.0.1/test", project="shop")
    storage.initialize()                               # runs the migrations
    storage.write(RecordBatch(interactions=[...]))

Every row belongs to a project; :meth:`SQLStorage.for_project` gives a view
of another project on the same engine (the collector scopes each request to
its API key's project this way).

SQLite runs in WAL mode with a busy timeout, and writes take the write lock
when their transaction begins (``BEGIN IMMEDIATE``), so that several threads
and several processes can write one file; they queue for it on a
:class:`~._sql_write_gate.WriteGate`, which wakes the next writer at once.
Bulk writes are one ``executemany`` per table in one transaction on SQLite;
on PostgreSQL a batch of only new interactions is one ``COPY`` in autocommit
mode, anything else ``COPY`` into a temporary table then ``INSERT ... SELECT
... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from typing import Any, Literal

from .._batching import DATA_ERRORS
from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RecordBatch,
)
from ..errors import ConfigurationError, StorageError, ValidationError, require
from ._sql_checkpoint import BACKSTOP_PAGES, Checkpointer
from ._sql_write_gate import WriteGate

__all__ = ["SQLStorage", "create_sql_engine", "is_memory_url", "normalize_url"]

logger = logging.getLogger("rlhfkit.storage.sql")

_CHUNK = 1000
_FEW = 50_000
"""Index filters keeping fewer interactions than this: read those through their index and sort them."""
_MEMORY_URLS = {"sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://", "sqlite+pysqlite:///:memory:"}


_checkpointers: weakref.WeakKeyDictionary[Any, Checkpointer] = weakref.WeakKeyDictionary()
_checkpointers_guard = threading.Lock()  # guards the gates' registry too


def _checkpointer(engine: Any) -> Checkpointer:
    """The one background checkpointer of a SQLite engine (storages sharing an engine share it)."""
    with _checkpointers_guard:
        found = _checkpointers.get(engine)
        if found is None:
            found = _checkpointers[engine] = Checkpointer(engine)
        return found


_gates: weakref.WeakKeyDictionary[Any, WriteGate] = weakref.WeakKeyDictionary()


def _write_gate(engine: Any) -> WriteGate:
    """The one write gate of a SQLite file engine (storages sharing an engine share it)."""
    with _checkpointers_guard:
        found = _gates.get(engine)
        if found is None:
            found = _gates[engine] = WriteGate(os.path.abspath(engine.url.database))
        return found


def normalize_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_memory_url(url: str) -> bool:
    """True for an in-memory SQLite URL (``sqlite://``, ``sqlite:///:memory:``)."""
    return normalize_url(url) in _MEMORY_URLS


def create_sql_engine(url: str) -> Any:
    """A SQLAlchemy engine for ``url`` with rlhfkit's SQLite settings (WAL, busy timeout, BEGIN IMMEDIATE)."""
    sa = require("sqlalchemy", "sql")
    url = normalize_url(url)
    if url.startswith("postgresql"):
        require("psycopg", "postgres")
        engine = sa.create_engine(url)
        _ping_after_idle(engine)
        return engine
    if not url.startswith("sqlite"):
        raise ConfigurationError(f"url: unsupported database URL {url!r} (use sqlite:///path or postgresql://...)")
    memory = url in _MEMORY_URLS
    if memory:
        from sqlalchemy.pool import StaticPool

        engine = sa.create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        path = sa.engine.make_url(url).database
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Manage transactions ourselves: pysqlite's implicit BEGIN cannot take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            # Aggregates scan whole indexes: a larger page cache and memory-mapped reads halve their time.
            cursor.execute("PRAGMA mmap_size = 1073741824")
        cursor.execute("PRAGMA cache_size = -32768")
        cursor.execute("PRAGMA synchronous = NORMAL")
        if not memory:  # checkpoints run in the background (see _sql_checkpoint)
            cursor.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        cursor.close()

    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get("rlhfkit_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    sa.event.listen(engine, "connect", _on_connect)
    sa.event.listen(engine, "begin", _on_begin)
    return engine


POSTGRES_PARALLEL_WRITES = 3
"""Concurrent group-commit writes to PostgreSQL (of the pool's five connections)."""
IDLE_PING_S = 1.0
"""A pooled PostgreSQL connection idle for longer than this is pinged before it is used again."""


def _ping_after_idle(engine: Any) -> None:
    """Check a pooled connection with a ``SELECT 1`` when it has sat idle, not on every checkout.

    A connection the server or a proxy closed while it sat in the pool is
    replaced before use (SQLAlchemy's pessimistic disconnect handling). One
    used within the last second is not pinged: under load the ping was a
    round trip per write, a sixth of the collector's time.
    """
    sa = require("sqlalchemy", "sql")

    def checked_in(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["rlhfkit_idle_since"] = time.monotonic()

    def checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("rlhfkit_idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"a pooled connection was closed while idle: {exc}") from exc

    sa.event.listen(engine, "checkin", checked_in)
    sa.event.listen(engine, "checkout", checked_out)


class SQLStorage:
    """Interactions, feedback and sessions in SQLite or PostgreSQL.

    ``url`` is ``sqlite:///path``, ``sqlite://`` (in memory) or
    ``postgresql://...``; ``engine`` (optional) is an existing SQLAlchemy
    engine to share. ``project`` scopes every read and write.
    """

    def __init__(self, url: str, project: str = "default", *, engine: Any = None) -> None:
        if not project:
            raise ConfigurationError("project: must not be empty")
        self.url = url
        self.project = project
        self._owns_engine = engine is None
        self._engine = engine if engine is not None else create_sql_engine(url)
        self.dialect: str = self._engine.dialect.name
        memory = self.dialect == "sqlite" and is_memory_url(url)
        # An in-memory database is one shared connection: serialise its use.
        self._lock: contextlib.AbstractContextManager[Any] = threading.RLock() if memory else contextlib.nullcontext()
        self._initialized = False
        self._closed = False
        file = self.dialect == "sqlite" and not memory
        self._checkpointer = _checkpointer(self._engine) if file else None
        self._gate = _write_gate(self._engine) if file else None

    @property
    def parallel_writes(self) -> int:
        """How many writes the collector runs at once here: SQLite has one writer, PostgreSQL takes several."""
        return 1 if self.dialect == "sqlite" else POSTGRES_PARALLEL_WRITES

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (shared by every :meth:`for_project` view)."""
        return self._engine

    def for_project(self, name: str) -> SQLStorage:
        """A storage of project ``name`` on the same engine (closing it leaves the engine open)."""
        view = SQLStorage(self.url, name, engine=self._engine)
        view._lock = self._lock
        view._initialized = self._initialized
        view._checkpointer = self._checkpointer
        view._gate = self._gate
        return view

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Create or migrate the schema (see :func:`upgrade`). Safe to call twice."""
        if not self._initialized:
            self.upgrade()
            self._initialized = True

    def upgrade(self) -> list[int]:
        """Run pending schema migrations; return the versions applied now."""
        from ._migrations import upgrade

        with self._lock:
            return upgrade(self._engine)

    def close(self) -> None:
        """Dispose of the engine's connections (only when this storage created the engine)."""
        if not self._closed:
            self._closed = True
            if self._owns_engine:
                if self._checkpointer is not None:
                    self._checkpointer.stop()
                if self._gate is not None:
                    self._gate.close()
                self._engine.dispose()

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[Any]:
        gate = self._gate.held() if write and self._gate is not None else contextlib.nullcontext()
        with self._lock, self._engine.connect() as connection, gate:
            if write:
                connection = connection.execution_options(rlhfkit_write=True)
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def scan_connection(self) -> Iterator[Any]:
        """A connection for a long read of many rows (exports, dataset builds), in one transaction.

        On SQLite, memory-mapped I/O is turned off for the scan (and restored
        after): a scan touches the whole file, and mapped pages would count in
        the process's resident memory, up to the mmap size.
        """
        with self._connect() as connection:
            if self.dialect != "sqlite":
                yield connection
                return
            previous = connection.exec_driver_sql("PRAGMA mmap_size").scalar()
            connection.exec_driver_sql("PRAGMA mmap_size = 0")
            try:
                yield connection
            finally:
                connection.exec_driver_sql(f"PRAGMA mmap_size = {int(previous or 0)}")

    # ------------------------------------------------------------------ writes

    def write(self, batch: RecordBatch) -> None:
        """Store the batch in one transaction; existing ids are ignored, sessions replaced.

        Rows derived from a feedback (its targets, dimensions and comparison
        pairs) are written only when the feedback itself is new, so the first
        copy of a feedback id wins entirely.
        """
        from . import _sql_rows as rows
        from . import _sql_write as writes

        if not len(batch):
            return
        interactions = batch.interactions
        feedback: list[Feedback] = []
        seen: set[str] = set()
        for f in batch.feedback:
            if f.id not in seen:  # the first copy of an id wins, within a batch too
                seen.add(f.id)
                feedback.append(f)
        sessions = list({s.id: s for s in batch.sessions}.values())
        copy_first = True
        if self.dialect == "postgresql":
            interaction_rows = [rows.interaction_row(self.project, i) for i in interactions]
            writes.refuse_nul(self.project, interaction_rows, feedback, sessions)
            if not feedback and not sessions:
                if self._copy_alone(interaction_rows):
                    return
                copy_first = False  # an id is stored already: insert what is new
        try:
            with self._connect(write=True) as connection:
                if self.dialect == "postgresql":
                    writes.write_postgres(connection, self.project, interaction_rows, feedback, copy_first)
                else:
                    writes.write_sqlite(connection, self.project, interactions, feedback)
                if sessions:
                    writes.upsert_sessions(connection, [rows.session_values(self.project, s) for s in sessions])
        except Exception as exc:
            if isinstance(exc, StorageError):
                raise
            raise _write_error(exc, f"{len(batch)} records") from exc
        if self._checkpointer is not None:
            self._checkpointer.wrote()

    def _copy_alone(self, interaction_rows: list[tuple[Any, ...]]) -> bool:
        """COPY a batch of only interactions as one statement; False, with nothing written, when an id exists.

        A lone COPY is atomic, so it runs in autocommit mode: one round trip
        where a transaction with a savepoint takes five.
        """
        from . import _sql_write as writes

        try:
            with self._engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                return writes.copy_new_interactions(connection, interaction_rows)
        except Exception as exc:
            raise _write_error(exc, f"{len(interaction_rows)} interactions") from exc

    # ------------------------------------------------------------------ single records

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id, ``feedback_ids`` filled, or None."""
        found = list(self.iter_interactions(InteractionFilter(ids=[interaction_id])))
        return found[0] if found else None

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        found = list(self.iter_feedback(FeedbackFilter(ids=[feedback_id])))
        return found[0] if found else None

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The session with this id, with the ids of its interactions and feedback, or None."""
        from ._sql_rows import row_to_session, sa
        from ._sql_schema import feedback, interactions, sessions

        p = self.project
        with self._connect() as connection:
            row = connection.execute(
                sa.select(sessions).where(sessions.c.project == p, sessions.c.id == session_id)
            ).mappings().first()
            if row is None:
                return None
            i_ids = set(row["interaction_ids"] or [])
            i_ids.update(connection.execute(
                sa.select(interactions.c.id).where(interactions.c.project == p, interactions.c.session_id == session_id)
            ).scalars())  # fmt: skip
            f_ids = set(row["feedback_ids"] or [])
            f_ids.update(connection.execute(
                sa.select(feedback.c.id).where(feedback.c.project == p, feedback.c.session_id == session_id)
            ).scalars())  # fmt: skip
            return row_to_session(row, sorted(i_ids), sorted(f_ids))

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Those of ``interaction_ids`` that are not stored in this project."""
        from ._sql_rows import sa
        from ._sql_schema import interactions

        wanted = list(dict.fromkeys(interaction_ids))
        found: set[str] = set()
        with self._connect() as connection:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                found.update(connection.execute(
                    sa.select(interactions.c.id).where(interactions.c.project == self.project,
                                                       interactions.c.id.in_(chunk))
                ).scalars())  # fmt: skip
        return set(wanted) - found

    # ------------------------------------------------------------------ iteration

    def _feedback_ids(self, connection: Any, interaction_ids: list[str]) -> dict[str, list[str]]:
        from ._sql_rows import sa
        from ._sql_schema import feedback_targets as t

        by_interaction: dict[str, list[str]] = {}
        if interaction_ids:
            # No ORDER BY: it would make SQLite walk the primary key instead of the interaction index.
            query = sa.select(t.c.interaction_id, t.c.feedback_id).where(
                t.c.project == self.project, t.c.interaction_id.in_(interaction_ids)
            )
            for interaction_id, feedback_id in connection.execute(query):
                by_interaction.setdefault(interaction_id, []).append(feedback_id)
            for ids in by_interaction.values():
                ids.sort()
        return by_interaction

    def _chunks(
        self, table: Any, conditions: list[Any], flt: InteractionFilter | FeedbackFilter,
        convert: Callable[[Any, list[Any]], list[Any]], sort: bool = False,
    ) -> Iterator[Any]:  # fmt: skip
        """Rows matching ``conditions`` in id order, read by keyset pages so memory stays bounded.

        ``sort``: the conditions keep few rows, so sort them rather than walk
        the primary key in id order (``id || ''`` sorts the same, and no index
        offers that order).
        """
        from ._sql_rows import sa

        order = table.c.id.concat("") if sort else table.c.id
        after, offset, remaining = flt.after_id, flt.offset, flt.limit
        while remaining is None or remaining > 0:
            size = _CHUNK if remaining is None else min(_CHUNK, remaining)
            query = sa.select(table).where(*conditions)
            if after is not None:
                query = query.where(table.c.id > after)
            query = query.order_by(order).limit(size)
            if offset:
                query = query.offset(offset)
            with self._connect() as connection:
                rows = connection.execute(query).mappings().all()
                records = convert(connection, rows)
            offset = 0
            yield from records
            if len(rows) < size:
                return
            after = rows[-1]["id"]
            if remaining is not None:
                remaining -= len(rows)

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter`` in id order, read 1,000 at a time."""
        from ._sql_rows import row_to_interaction
        from ._sql_schema import interactions

        def convert(connection: Any, rows: list[Any]) -> list[Interaction]:
            ids = self._feedback_ids(connection, [r["id"] for r in rows])
            return [row_to_interaction(r, ids.get(r["id"], [])) for r in rows]

        conditions, sort = self._interaction_plan(filter)
        return self._chunks(interactions, conditions, filter, convert, sort)

    def _interaction_plan(self, flt: InteractionFilter) -> tuple[list[Any], bool]:
        """The conditions of ``flt`` in the shape that suits the data, and whether the rows they keep are few.

        Cheap capped probes choose: a text search narrowed by the search
        index; a rating range checked per row when ratings in it are many;
        index filters (time range, user, ...) that keep few rows, which are then
        sorted rather than met by walking the id order (late, when ids follow
        time or the rows are rare).
        """
        from ._sql_filters import fewer_than, index_filter, interaction_conditions, many_ratings
        from ._sql_search import candidates, start_catch_up

        search_rows, per_row, few = None, False, False
        rated = flt.min_rating is not None or flt.max_rating is not None
        with self._connect() as connection:
            if flt.search is not None:
                search_rows = candidates(connection, flt.search)
            if rated:
                per_row = many_ratings(connection, self.project, flt)
                few = not per_row
            indexed = index_filter(flt)
            if not few and search_rows is None and indexed is not None:
                few = fewer_than(connection, interaction_conditions(self.project, indexed), _FEW)
        if search_rows is not None:
            start_catch_up(self)
        conditions = interaction_conditions(
            self.project, flt, search_rows=search_rows, rating_per_row=per_row, dialect=self.dialect
        )
        return conditions, search_rows is not None or few

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter`` in id order, read 1,000 at a time."""
        from ._sql_filters import feedback_conditions
        from ._sql_rows import row_to_feedback
        from ._sql_schema import feedback

        def convert(_connection: Any, rows: list[Any]) -> list[Feedback]:
            return [row_to_feedback(r) for r in rows]

        return self._chunks(feedback, feedback_conditions(self.project, filter), filter, convert)

    def count_interactions(self, filter: InteractionFilter | None = None) -> int:
        """How many interactions match ``filter`` (its limit, offset and after_id are ignored)."""
        from ._sql_filters import sa
        from ._sql_schema import interactions

        conditions, _ = self._interaction_plan(filter or InteractionFilter())
        with self._connect() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(interactions).where(*conditions)
            ).scalar_one())  # fmt: skip

    def count_feedback(self, filter: FeedbackFilter | None = None) -> int:
        """How many feedback records match ``filter`` (its limit, offset and after_id are ignored)."""
        from ._sql_filters import feedback_conditions, sa
        from ._sql_schema import feedback

        conditions = feedback_conditions(self.project, filter or FeedbackFilter())
        with self._connect() as connection:
            return int(connection.execute(
                sa.select(sa.func.count()).select_from(feedback).where(*conditions)
            ).scalar_one())  # fmt: skip

    # ------------------------------------------------------------------ aggregates

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """Aggregates over interactions and feedback whose timestamp is in [start_time, end_time), in SQL."""
        from ._sql_stats import feedback_stats

        if self._gate is None:  # PostgreSQL, or an in-memory database (one connection)
            with self._connect() as connection:
                return feedback_stats(connection, self.project, start_time, end_time)
        with self._snapshot_pair() as (first, second):
            return feedback_stats(first, self.project, start_time, end_time, helper=second)

    @contextlib.contextmanager
    def _snapshot_pair(self) -> Iterator[tuple[Any, Any]]:
        """Two SQLite read transactions on one snapshot (the second is None when they cannot be lined up).

        In WAL mode a read transaction's snapshot is fixed by its first read;
        both first reads happen while this process holds the write lock, so no
        commit comes between them. A read-only database cannot give the lock:
        then only the first connection is used.
        """
        sa = require("sqlalchemy", "sql")
        with self._connect() as first, self._connect() as second:
            try:
                with self._connect(write=True):
                    for connection in (first, second):
                        connection.exec_driver_sql("SELECT 1 FROM schema_migrations LIMIT 1").all()
            except sa.exc.OperationalError:
                yield first, None
                return
            yield first, second

    def timeseries(
        self,
        bucket: Literal["hour", "day"] = "day",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        model: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per time bucket and model: volumes, thumbs, average rating and latency percentiles.

        Each item: ``bucket`` (its start, a UTC datetime), ``model``, ``interactions``,
        ``feedback``, ``thumbs_up``, ``thumbs_down``, ``average_rating`` (1..5 or None),
        ``average_latency_ms``, ``p50_latency_ms``, ``p95_latency_ms`` (None without latencies).
        """
        from ._sql_stats import timeseries

        with self._connect() as connection:
            return timeseries(connection, self.project, bucket, start_time, end_time, model)

    def models(self) -> list[str]:
        """The distinct model names of this project's interactions, sorted."""
        from ._sql_rows import sa
        from ._sql_schema import interactions as i

        with self._connect() as connection:
            query = sa.select(i.c.model).where(i.c.project == self.project, i.c.model.is_not(None)).distinct()
            return sorted(connection.execute(query).scalars())


# SQLSTATE classes of a refusal of the data itself: data exception, integrity
# constraint violation, program limit exceeded (an index entry too large).
_REFUSAL_CLASSES = ("22", "23", "54")


def _write_error(exc: Exception, what: str) -> Exception:
    """The error a failed write raises: ValidationError when the data was refused (sending it again cannot
    help), StorageError otherwise (the database may be back on the next try)."""
    if _refuses_data(exc):
        return ValidationError("records", f"the database refused a record: {exc}")
    return StorageError(f"could not write {what}: {exc}")


def _refuses_data(exc: BaseException) -> bool:
    """Whether a write failed on the records themselves rather than on the database's availability."""
    import sqlite3

    if isinstance(exc, DATA_ERRORS):  # raised while building rows from the records, before the database
        return True
    original = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception
    sqlstate = getattr(original, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _REFUSAL_CLASSES
    return isinstance(original, sqlite3.DataError | sqlite3.IntegrityError)
