"""SQLStorage: what differs from the contract (schema, migrations, concurrency, SQL-only helpers)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlhfkit._models import Feedback, Interaction, InteractionFilter, RecordBatch
from rlhfkit.errors import ConfigurationError
from rlhfkit.storage import _sql_search
from rlhfkit.storage.sql import SQLStorage, normalize_url
from tests.storage_contract import T0, at, dataset, ids
from tests.test_storage_contract import drop_project

EXPECTED_SCHEMA = {
    "interactions": [
        "project", "id", "timestamp", "model", "provider", "user_id", "session_id", "latency", "prompt_tokens",
        "completion_tokens", "total_tokens", "has_error", "prompt", "response", "doc",
    ],
    "feedback": [
        "project", "id", "interaction_id", "type", "timestamp", "user_id", "session_id", "source", "model", "value",
        "rating_value", "max_rating", "sentiment", "data", "metadata",
    ],
    "feedback_targets": ["project", "feedback_id", "interaction_id", "role", "timestamp", "interaction_timestamp"],
    "feedback_dimensions": ["project", "feedback_id", "dimension", "score", "timestamp"],
    "feedback_pairs": [
        "project", "feedback_id", "preferred_id", "alternative_id", "timestamp", "preferred_model", "alternative_model",
    ],
    "sessions": ["project", "id", "user_id", "start_time", "end_time", "interaction_ids", "feedback_ids", "metadata"],
    "api_keys": ["id", "project", "name", "key_hash", "write_only", "created_at", "revoked_at"],
    "schema_migrations": ["version", "name", "applied_at"],
}  # fmt: skip

EXPECTED_INDEXES = {
    "interactions": {
        "ix_interactions_project_timestamp": ["project", "timestamp"],
        "ix_interactions_project_model_timestamp_latency": ["project", "model", "timestamp", "latency"],
        "ix_interactions_project_session": ["project", "session_id"],
        "ix_interactions_project_user": ["project", "user_id"],
    },
    "feedback": {
        "ix_feedback_project_interaction": ["project", "interaction_id"],
        "ix_feedback_project_type_timestamp": ["project", "type", "timestamp"],
        "ix_feedback_project_timestamp": ["project", "timestamp"],
        "ix_feedback_project_stats": ["project", "type", "model", "sentiment", "timestamp", "value"],
        "ix_feedback_project_type_value": ["project", "type", "value", "timestamp"],
    },
    "feedback_targets": {
        "ix_feedback_targets_project_interaction_times": [
            "project", "interaction_id", "timestamp", "interaction_timestamp",
        ],
        "ix_feedback_targets_project_interaction_feedback": ["project", "interaction_id", "feedback_id"],
    },
    "feedback_dimensions": {
        "ix_feedback_dimensions_project_dimension": ["project", "dimension", "timestamp", "score"],
    },
    "feedback_pairs": {
        "ix_feedback_pairs_project_timestamp": [
            "project", "timestamp", "preferred_model", "alternative_model", "preferred_id", "alternative_id",
        ],
    },
}


# The FTS5 search index of SQLite and its shadow tables (migration 7).
SEARCH_TABLES = [f"interactions_search{suffix}" for suffix in ("", "_config", "_data", "_docsize", "_idx")]


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> Iterator[SQLStorage]:
    """An initialised SQLite file storage."""
    storage = SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
    storage.initialize()
    yield storage
    storage.close()


@pytest.fixture
def pg_storage(postgres_dsn: str) -> Iterator[SQLStorage]:
    """An initialised PostgreSQL storage on a project of its own."""
    storage = SQLStorage(postgres_dsn, project=f"sql-{uuid.uuid4().hex[:12]}")
    storage.initialize()
    yield storage
    storage.close()
    drop_project(postgres_dsn, storage.project)


def _schema(storage: SQLStorage) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    import sqlalchemy as sa

    inspector = sa.inspect(storage.engine)
    tables = {t: [c["name"] for c in inspector.get_columns(t)] for t in EXPECTED_SCHEMA}
    indexes = {t: {i["name"]: i["column_names"] for i in inspector.get_indexes(t)} for t in EXPECTED_INDEXES}
    return tables, indexes


def test_migrations_create_exactly_the_expected_schema(tmp_path: Path) -> None:
    """A new SQLite database gets exactly these tables, columns and indexes, and records every migration."""
    import sqlalchemy as sa

    storage = SQLStorage(f"sqlite:///{tmp_path / 'new.db'}")
    assert storage.upgrade() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert storage.upgrade() == []
    assert sorted(sa.inspect(storage.engine).get_table_names()) == sorted([*EXPECTED_SCHEMA, *SEARCH_TABLES])
    tables, indexes = _schema(storage)
    assert tables == EXPECTED_SCHEMA
    assert indexes == EXPECTED_INDEXES
    with storage.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT version, name FROM schema_migrations").all()
    assert rows == [
        (1, "initial"), (2, "stats_tables"), (3, "target_times"), (4, "unbounded_strings"), (5, "target_feedback_index"),
        (6, "id_collation"), (7, "search_index"), (8, "postgres_search_index"),
    ]  # fmt: skip
    storage.close()


def test_postgres_schema_matches_and_uses_jsonb(pg_storage: SQLStorage) -> None:
    """On PostgreSQL the same columns and indexes exist (plus the search numbering), JSON columns are JSONB."""
    tables, indexes = _schema(pg_storage)
    # Migration 8: interactions.seq numbers rows for the search index (see _sql_search_pg).
    assert tables == {**EXPECTED_SCHEMA, "interactions": [*EXPECTED_SCHEMA["interactions"], "seq"]}
    assert indexes == {**EXPECTED_INDEXES, "interactions": {**EXPECTED_INDEXES["interactions"],
                                                            "ix_interactions_seq": ["seq"]}}  # fmt: skip
    with pg_storage.engine.connect() as connection:
        types = dict(connection.exec_driver_sql(
            "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND data_type = 'jsonb'"
        ).all())  # fmt: skip
    assert {"interactions.doc", "feedback.data", "feedback.metadata", "sessions.metadata"} <= set(types)


def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    """Two processes writing 40 batches each into one file: every row is there, none twice."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    SQLStorage(url).initialize()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_from_process, args=(url, n)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        assert connection.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM interactions").fetchone() == (2000, 2000)
        assert connection.execute("SELECT COUNT(*) FROM feedback").fetchone() == (2000,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def _write_from_process(url: str, worker: int) -> None:
    storage = SQLStorage(url)
    storage.initialize()
    for b in range(40):
        interactions = [Interaction(id=f"w{worker}-{b:03d}-{k:02d}", prompt="p", response="r") for k in range(25)]
        feedback = [
            Feedback(interaction_id=i.id, type="binary", data={"type": "binary", "value": "thumbs_up"})
            for i in interactions
        ]
        storage.write(RecordBatch(interactions=interactions, feedback=feedback))
        storage.write(RecordBatch(interactions=interactions))  # a retry: stored once
    storage.close()


def test_threads_writing_and_reading_one_sqlite_file(sqlite_storage: SQLStorage) -> None:
    """Six threads writing while another reads: all rows stored, no error."""
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for b in range(20):
                sqlite_storage.write(RecordBatch(interactions=[
                    Interaction(id=f"t{t}-{b:02d}-{k}", prompt="p") for k in range(10)
                ]))  # fmt: skip
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(20):
                list(sqlite_storage.iter_interactions(InteractionFilter(limit=50)))
                sqlite_storage.feedback_stats()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(6)] + [threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sqlite_storage.count_interactions() == 1200


def test_in_memory_sqlite_is_shared_by_threads() -> None:
    """sqlite:// is one database for every thread of the storage."""
    storage = SQLStorage("sqlite://")
    storage.initialize()
    thread = threading.Thread(target=storage.write, args=(RecordBatch(interactions=[Interaction(id="a", prompt="p")]),))
    thread.start()
    thread.join(timeout=10)
    assert storage.get_interaction("a") is not None


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_projects_do_not_see_each_other(backend: str, request: pytest.FixtureRequest) -> None:
    """for_project shares the engine but every read, count and stat is scoped to its project."""
    storage: SQLStorage = request.getfixturevalue("sqlite_storage" if backend == "sqlite" else "pg_storage")
    other = storage.for_project(f"{storage.project}-other")
    assert other.engine is storage.engine
    storage.write(dataset())
    other.write(RecordBatch(interactions=[Interaction(id="i01", prompt="someone else's", model="other")]))
    try:
        assert storage.get_interaction("i01").prompt == "What is the capital of France?"
        assert other.get_interaction("i01").prompt == "someone else's"
        assert other.get_interaction("i01").feedback_ids == []
        assert other.count_interactions() == 1 and storage.count_interactions() == 5
        assert other.feedback_stats().total_feedback == 0
        assert other.models() == ["other"]
        assert other.get_session("s1") is None
        assert other.missing_interactions(["i02"]) == {"i02"}
    finally:
        if backend == "postgres":
            drop_project(str(storage.url), other.project)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_count_models_and_timeseries(backend: str, request: pytest.FixtureRequest) -> None:
    """count_interactions honours filters; models lists names; timeseries gives per-day, per-model numbers."""
    storage: SQLStorage = request.getfixturevalue("sqlite_storage" if backend == "sqlite" else "pg_storage")
    storage.write(dataset())
    assert storage.count_interactions() == 5
    assert storage.count_interactions(InteractionFilter(has_feedback=True, limit=1)) == 4
    assert storage.count_interactions(InteractionFilter(search="PARIS")) == 1
    assert storage.models() == ["claude", "gpt-4"]
    days = storage.timeseries("day")
    assert [(d["bucket"], d["model"]) for d in days] == [(T0, "claude"), (T0, "gpt-4"), (at(24), "unknown")]
    claude, gpt, unknown = days
    assert (gpt["interactions"], gpt["feedback"], gpt["thumbs_up"], gpt["thumbs_down"]) == (2, 8, 1, 1)
    assert gpt["average_rating"] == pytest.approx(3.0)
    assert (gpt["average_latency_ms"], gpt["p50_latency_ms"], gpt["p95_latency_ms"]) == pytest.approx((200, 200, 290))
    assert (claude["interactions"], claude["feedback"]) == (2, 3)
    assert claude["average_rating"] == pytest.approx(1 + 4 * 6 / 9)
    assert claude["p95_latency_ms"] == pytest.approx(390)
    assert (unknown["interactions"], unknown["feedback"], unknown["thumbs_up"]) == (1, 1, 1)
    assert unknown["average_latency_ms"] is None and unknown["average_rating"] is None
    hours = storage.timeseries("hour", start_time=T0, end_time=at(2), model="gpt-4")
    assert [(h["bucket"], h["interactions"], h["feedback"]) for h in hours] == [(T0, 1, 4), (at(1), 1, 3)]


def test_postgres_bulk_write_is_idempotent(pg_storage: SQLStorage) -> None:
    """A large batch goes through COPY; written again (and with repeats inside) it is stored once."""
    interactions = [Interaction(id=f"b{k:05d}", prompt=f"p{k}", model="m", metadata={"k": k}) for k in range(3000)]
    feedback = [
        Feedback(id=f"fb{k:05d}", interaction_id=f"b{k:05d}", type="rating", data={"type": "rating", "value": 5})
        for k in range(3000)
    ]
    batch = RecordBatch(interactions=interactions + interactions[:10], feedback=feedback)
    pg_storage.write(batch)
    pg_storage.write(batch)
    assert pg_storage.count_interactions() == 3000
    stats = pg_storage.feedback_stats()
    assert stats.total_feedback == 3000 and stats.by_model["m"].average_rating == pytest.approx(5.0)
    assert pg_storage.get_interaction("b02999").metadata == {"k": 2999}


def test_postgres_batch_of_interactions_sent_again_with_new_ones_stores_the_new_ones(pg_storage: SQLStorage) -> None:
    """A batch of only interactions is one COPY; when some ids exist, the new ones are stored and the first copies kept."""
    first = [Interaction(id=f"c{k:03d}", prompt=f"first {k}") for k in range(100)]
    pg_storage.write(RecordBatch(interactions=first))
    again = [i.model_copy(update={"prompt": "second"}) for i in first[50:]]
    new = [Interaction(id=f"n{k:03d}", prompt=f"new {k}") for k in range(30)]
    pg_storage.write(RecordBatch(interactions=again + new))
    stored = {i.id: i.prompt for i in pg_storage.iter_interactions(InteractionFilter())}
    assert len(stored) == 130
    assert stored["c099"] == "first 99" and stored["n029"] == "new 29"


def test_postgres_connection_closed_while_idle_is_replaced(
    pg_storage: SQLStorage, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled connection the server closed while it sat idle is pinged, found dead and replaced before a write."""
    import psycopg

    from rlhfkit.storage import sql

    pg_storage.write(RecordBatch(interactions=[Interaction(id="before", prompt="p")]))
    with pg_storage.engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    monkeypatch.setattr(sql, "IDLE_PING_S", 0.0)
    pg_storage.write(RecordBatch(interactions=[Interaction(id="after", prompt="p")]))
    assert {i.id for i in pg_storage.iter_interactions(InteractionFilter())} == {"before", "after"}


def test_parallel_writes_by_dialect(sqlite_storage: SQLStorage, pg_storage: SQLStorage) -> None:
    """The collector writes to SQLite one batch at a time, to PostgreSQL several at once."""
    from rlhfkit.storage.sql import POSTGRES_PARALLEL_WRITES

    assert sqlite_storage.parallel_writes == 1
    assert pg_storage.parallel_writes == POSTGRES_PARALLEL_WRITES > 1


def test_feedback_written_before_its_interaction_still_knows_the_model(sqlite_storage: SQLStorage) -> None:
    """Feedback stored before its interaction is attributed to the interaction's model once it arrives."""
    sqlite_storage.write(RecordBatch(feedback=[
        Feedback(id="f", interaction_id="late", type="binary", data={"type": "binary", "value": "thumbs_up"})
    ]))  # fmt: skip
    sqlite_storage.write(RecordBatch(interactions=[Interaction(id="late", prompt="p", model="m")]))
    assert sqlite_storage.feedback_stats().by_model["m"].thumbs_up == 1


def test_database_urls() -> None:
    """postgresql:// and postgres:// use psycopg 3; an unknown scheme is a ConfigurationError."""
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(ConfigurationError):
        SQLStorage("mysql://u@h/db")


def test_db_upgrade_command(tmp_path: Path) -> None:
    """`rlhfkit db upgrade --db URL` migrates a new database, then reports it up to date."""
    from typer.testing import CliRunner

    from rlhfkit.cli import app

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    first = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert first.exit_code == 0, first.output
    assert "applied migrations: 001, 002, 003, 004" in first.output
    again = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert "up to date" in again.output
    status = CliRunner().invoke(app, ["db", "status", "--db", url])
    assert "001_initial: applied" in status.output


def test_a_version_1_database_is_migrated_with_its_data(tmp_path: Path) -> None:
    """A database left at migration 1, with data, upgrades to the latest schema and its stats stay right."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    storage = SQLStorage(url)
    storage.initialize()
    storage.write(dataset())
    expected = storage.feedback_stats()
    searches = {text: ids(storage.iter_interactions(InteractionFilter(search=text))) for text in ("PARIS", "cross", "%")}
    with storage.engine.begin() as connection:  # back to the shape and content of version 1
        for statement in (
            "DROP TABLE interactions_search",
            "DROP TABLE feedback_dimensions",
            "DROP TABLE feedback_pairs",
            "DROP INDEX ix_interactions_project_model_timestamp_latency",
            "DROP INDEX ix_feedback_project_stats",
            "DROP INDEX ix_feedback_project_type_value",
            "DROP INDEX ix_feedback_targets_project_interaction_times",
            "DROP INDEX ix_feedback_targets_project_interaction_feedback",
            "ALTER TABLE feedback_targets DROP COLUMN interaction_timestamp",
            "CREATE INDEX ix_interactions_project_model_timestamp ON interactions (project, model, timestamp)",
            "CREATE INDEX ix_feedback_targets_project_interaction ON feedback_targets (project, interaction_id, timestamp)",
            "DELETE FROM schema_migrations WHERE version > 1",
        ):
            connection.exec_driver_sql(statement)
    storage.close()
    upgraded = SQLStorage(url)
    assert upgraded.upgrade() == [2, 3, 4, 5, 6, 7, 8]
    tables, indexes = _schema(upgraded)
    assert tables == EXPECTED_SCHEMA and indexes == EXPECTED_INDEXES
    assert upgraded.feedback_stats() == expected
    with upgraded._connect() as connection:
        assert _sql_search.indexed_to(connection) == len(dataset().interactions)  # every row present is indexed
    assert {text: ids(upgraded.iter_interactions(InteractionFilter(search=text))) for text in searches} == searches
    assert searches["PARIS"] and searches["cross"]
    upgraded.close()


def test_postgres_refuses_nul_characters_naming_the_field(pg_storage: SQLStorage) -> None:
    """A NUL character (which PostgreSQL cannot store) refuses the whole batch with a ValidationError."""
    from rlhfkit.errors import ValidationError

    good = Interaction(id="good", prompt="fine")
    with pytest.raises(ValidationError) as info:
        pg_storage.write(RecordBatch(interactions=[good, Interaction(id="bad", prompt="a\x00b")]))
    assert info.value.field == "interactions[1].prompt"
    with pytest.raises(ValidationError) as info:
        pg_storage.write(RecordBatch(interactions=[good], feedback=[
            Feedback(interaction_id="good", type="text", data={"type": "text", "comment": "x\x00"})
        ]))  # fmt: skip
    assert info.value.field == "feedback[0].data"
    assert pg_storage.count_interactions() == 0


def test_sqlite_stats_read_one_snapshot_on_two_connections(sqlite_storage: SQLStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stats on a SQLite file read on two connections; a commit landing meanwhile is in neither's figures."""
    from rlhfkit.storage import _sql_stats

    first = Interaction(id="first", prompt="p", model="m")
    thumbs = {"type": "binary", "data": {"type": "binary", "value": "thumbs_up"}}
    sqlite_storage.write(RecordBatch(interactions=[first], feedback=[Feedback(interaction_id="first", **thumbs)]))
    real_counts = _sql_stats._interaction_counts
    threads: list[str] = []

    def counts_after_a_commit(connection: object, *args: object) -> object:
        threads.append(threading.current_thread().name)
        late = Interaction(id="late", prompt="p", model="m")
        sqlite_storage.write(RecordBatch(interactions=[late], feedback=[Feedback(interaction_id="late", **thumbs)]))
        return real_counts(connection, *args)

    monkeypatch.setattr(_sql_stats, "_interaction_counts", counts_after_a_commit)
    stats = sqlite_storage.feedback_stats()
    assert threads == ["rlhfkit-stats"]  # read on the second connection, in a thread
    assert (stats.total_interactions, stats.total_feedback, stats.interactions_with_feedback) == (1, 1, 1)
    monkeypatch.setattr(_sql_stats, "_interaction_counts", real_counts)
    again = sqlite_storage.feedback_stats()
    assert (again.total_interactions, again.total_feedback, again.interactions_with_feedback) == (2, 2, 2)


def test_sqlite_stats_without_the_write_lock_use_one_connection(
    sqlite_storage: SQLStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the write lock cannot be had (a read-only database), stats are read on one connection, in this thread."""
    import contextlib

    import sqlalchemy as sa

    from rlhfkit.storage import _sql_stats

    sqlite_storage.write(RecordBatch(interactions=[Interaction(id="a", prompt="p")]))
    real_connect = SQLStorage._connect

    @contextlib.contextmanager
    def read_only(self: SQLStorage, write: bool = False) -> Iterator[object]:
        if write:
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("readonly database"))
        with real_connect(self, write) as connection:
            yield connection

    real_counts = _sql_stats._interaction_counts
    threads: list[str] = []

    def counts(connection: object, *args: object) -> object:
        threads.append(threading.current_thread().name)
        return real_counts(connection, *args)

    monkeypatch.setattr(SQLStorage, "_connect", read_only)
    monkeypatch.setattr(_sql_stats, "_interaction_counts", counts)
    assert sqlite_storage.feedback_stats().total_interactions == 1
    assert threads == [threading.current_thread().name]
