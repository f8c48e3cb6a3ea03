"""The PostgreSQL search index (migration 8): what the migration indexes, and rows committed late are never lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from rlhfkit._models import Interaction, InteractionFilter, RecordBatch
from rlhfkit.storage import _sql_search, _sql_search_pg
from rlhfkit.storage._sql_rows import INTERACTION_COLUMNS, interaction_row
from rlhfkit.storage.sql import SQLStorage


@pytest.fixture
def schema_url(postgres_dsn: str) -> Iterator[str]:
    """A database URL whose search_path is a new, empty schema (dropped afterwards)."""
    name = f"search_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {name}")
    separator = "&" if "?" in postgres_dsn else "?"
    yield f"{postgres_dsn}{separator}options=-csearch_path%3D{name}"
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def storage(schema_url: str) -> Iterator[SQLStorage]:
    """An initialised storage in a schema of its own, holding 40 interactions (numbered 1 to 40), all indexed."""
    store = SQLStorage(schema_url)
    store.initialize()
    store.write(RecordBatch(interactions=[Interaction(id=f"a{k:02d}", prompt=f"Early bird {k}") for k in range(40)]))
    assert _sql_search_pg.catch_up(store, 1000) == 40
    yield store
    store.close()


def _ids(store: SQLStorage, search: str) -> list[str]:
    return [i.id for i in store.iter_interactions(InteractionFilter(search=search))]


def _state(store: SQLStorage) -> tuple[int, int]:
    """(the mark, how many rows the side table holds)."""
    with store._connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT count(*) FROM {_sql_search_pg.SEARCH_TABLE}").scalar_one()
        return _sql_search_pg.indexed_to(connection), int(rows)


def _open_writer(url: str, interaction_id: str, prompt: str) -> psycopg.Connection:
    """A connection with an open transaction that has inserted one interaction (not committed)."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    writer = psycopg.connect(conninfo)
    row = interaction_row("default", Interaction(id=interaction_id, prompt=prompt))
    with writer.cursor() as cursor, cursor.copy(f"COPY interactions ({', '.join(INTERACTION_COLUMNS)}) FROM STDIN") as copy:
        copy.write_row(row)
    return writer


def test_the_migration_indexes_the_rows_present_without_numbering_them(storage: SQLStorage, schema_url: str) -> None:
    """Rows stored before migration 8 keep a NULL seq, are all indexed by it, and a search narrows to them."""
    with storage.engine.begin() as connection:  # back to version 7, with the rows
        for statement in ("DROP TABLE interactions_search", "DROP TABLE interactions_search_state",
                          "ALTER TABLE interactions DROP COLUMN seq", "DELETE FROM schema_migrations WHERE version = 8"):
            connection.exec_driver_sql(statement)  # fmt: skip
    upgraded = SQLStorage(schema_url)
    assert upgraded.upgrade() == [8]
    with upgraded._connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM interactions WHERE seq IS NULL").scalar_one() == 40
        assert _sql_search.candidates(connection, "EARLY BIRD 3") is not None
        assert _sql_search.candidates(connection, "d 3") is None  # no three letters or digits in a row: scan
    assert _state(upgraded) == (0, 40)
    assert _ids(upgraded, "EARLY BIRD 3") == ["a03", "a30", "a31", "a32", "a33", "a34", "a35", "a36", "a37", "a38", "a39"]
    upgraded.write(RecordBatch(interactions=[Interaction(id="b1", prompt="Early bird, late row")]))
    assert _ids(upgraded, "bird, late") == ["b1"]  # above the mark: scanned
    assert _sql_search_pg.catch_up(upgraded, 1000) == 1  # the first number taken
    assert _state(upgraded) == (1, 41)
    assert _ids(upgraded, "bird, late") == ["b1"]
    upgraded.close()


def test_a_row_whose_transaction_is_open_during_catch_up_is_not_lost(
    storage: SQLStorage, schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up waits for a writer holding a lower number than rows already committed, then indexes both."""
    monkeypatch.setattr(_sql_search_pg, "LOCK_TIMEOUT_MS", 30_000)
    with _open_writer(schema_url, "late", "committed late") as writer:  # takes number 41, not committed
        _catch_up_around(storage, schema_url, writer)
    assert _state(storage) == (42, 42)
    assert _ids(storage, "committed late") == ["late"]
    with storage._connect() as connection:
        assert _sql_search_pg.waiting(connection) == 0  # found through the index, not the tail


def _catch_up_around(storage: SQLStorage, schema_url: str, writer: psycopg.Connection) -> None:
    """Commit a later row, start a catch-up, check it waits for ``writer``, then commit that and let it finish."""
    storage.write(RecordBatch(interactions=[Interaction(id="b1", prompt="committed early")]))  # number 42, committed
    marks: list[int] = []
    thread = threading.Thread(target=lambda: marks.append(_sql_search_pg.catch_up(storage, 1000)), daemon=True)
    thread.start()
    conninfo = schema_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as observer:
        deadline = time.monotonic() + 20
        while not observer.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'interactions'::regclass AND mode = 'ShareLock' "
            "AND NOT granted"
        ).fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the catch-up never waited for the open writer"
            time.sleep(0.02)
    assert thread.is_alive() and _state(storage) == (40, 40)  # it waits: nothing indexed past the open row
    writer.commit()
    thread.join(30)
    assert marks == [42]


def test_a_catch_up_that_cannot_get_the_table_gives_up_and_the_row_is_still_found(
    storage: SQLStorage, schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers holding the table past the lock timeout postpone the catch-up; the row waits above the mark."""
    monkeypatch.setattr(_sql_search_pg, "LOCK_TIMEOUT_MS", 50)
    with _open_writer(schema_url, "late", "committed late") as writer:
        storage.write(RecordBatch(interactions=[Interaction(id="b1", prompt="committed early")]))
        assert _sql_search_pg.catch_up(storage, 1000) == 40
        writer.commit()
    assert _ids(storage, "COMMITTED") == ["b1", "late"]
    assert _sql_search_pg.catch_up(storage, 1) == 42  # one number per transaction
    assert _state(storage) == (42, 42)


def test_a_second_catch_up_leaves_the_work_to_the_one_holding_the_mark(storage: SQLStorage) -> None:
    """index_rows returns None while another transaction holds the mark, and indexes nothing."""
    storage.write(RecordBatch(interactions=[Interaction(id="b1", prompt="one more")]))
    with storage._connect() as holder:
        holder.exec_driver_sql(f"SELECT indexed_to FROM {_sql_search_pg.STATE_TABLE} FOR UPDATE")
        with storage._connect() as other:
            assert _sql_search_pg.index_rows(other, 41) is None
    assert _state(storage) == (40, 40)


def test_many_rows_above_the_mark_are_indexed_in_the_background(
    storage: SQLStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past TAIL_ROWS waiting numbers, a search's start_catch_up indexes them in a thread, a batch at a time."""
    storage.write(RecordBatch(interactions=[Interaction(id=f"n{k:02d}", prompt=f"late arrival {k}") for k in range(30)]))
    assert _ids(storage, "arrival 2") == ["n02", *(f"n{k}" for k in range(20, 30))]
    monkeypatch.setattr(_sql_search, "TAIL_ROWS", 10)
    monkeypatch.setattr(_sql_search, "CATCH_UP_BATCH", 7)
    thread = _sql_search.start_catch_up(storage)
    assert thread is not None
    thread.join(30)
    assert _state(storage) == (70, 70)
    assert _sql_search.start_catch_up(storage) is None  # nothing left to index
    assert _ids(storage, "LATE ARRIVAL 2") == ["n02", *(f"n{k}" for k in range(20, 30))]


def test_without_pg_trgm_the_migration_warns_and_search_scans(
    schema_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When the extension cannot be created, rows are still numbered, no side table exists and search scans."""
    monkeypatch.setattr(_sql_search_pg, "EXTENSION", "rlhfkit_no_such_extension")
    store = SQLStorage(schema_url)
    with caplog.at_level("WARNING", logger="rlhfkit.storage.sql"):
        store.initialize()
    assert "no substring search index" in caplog.text
    store.write(RecordBatch(interactions=[Interaction(id="x", prompt="Needle in a haystack")]))
    with store._connect() as connection:
        assert not _sql_search_pg.has_index(connection)
        assert connection.exec_driver_sql("SELECT seq FROM interactions").scalar_one() == 1
        assert _sql_search.candidates(connection, "needle") is None
    assert _ids(store, "NEEDLE") == ["x"]
    assert _sql_search.start_catch_up(store) is None
    store.close()
