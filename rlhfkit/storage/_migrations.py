"""Numbered schema migrations, recorded in ``schema_migrations``.

Each migration is a function ``mNNN_name(connection)`` listed in
:data:`MIGRATIONS`; :func:`upgrade` runs those not yet recorded, in order, in
one transaction, holding a lock so that several processes (collector
replicas, app servers on one SQLite file) may call it at once.

A released migration is never edited: a schema change is a new function at
the end of the list (and the matching change to :mod:`._sql_schema`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import _sql_schema as schema

__all__ = [
    "MIGRATIONS",
    "applied_versions",
    "m001_initial",
    "m002_stats_tables", "m003_target_times",
    "m004_unbounded_strings",
    "m005_target_feedback_index",
    "m006_id_collation",
    "m007_search_index",
    "m008_postgres_search_index",
    "upgrade",
]

logger = logging.getLogger("rlhfkit.storage.sql")

sa = schema.sa

# An arbitrary constant: the key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK_KEY = 0x726C68666B6974


def m001_initial(connection: Any) -> None:
    """Create interactions, feedback, feedback_targets, sessions and api_keys with their indexes.

    The tables are created as :mod:`._sql_schema` declares them now, so on a new
    database the later migrations find their work done: each checks what exists.
    """
    tables = [schema.interactions, schema.feedback, schema.feedback_targets, schema.sessions, schema.api_keys]
    schema.metadata.create_all(connection, tables=tables, checkfirst=True)


def m002_stats_tables(connection: Any) -> None:
    """Tables and covering indexes that let feedback_stats aggregate without reading whole rows.

    Adds ``feedback_dimensions`` and ``feedback_pairs`` (filled from the feedback
    already stored), replaces the (project, model, timestamp) index of
    interactions by one that also covers latency, and adds two feedback indexes.
    """
    inspector = sa.inspect(connection)
    if "ix_interactions_project_model_timestamp" in {i["name"] for i in inspector.get_indexes("interactions")}:
        connection.execute(sa.text("DROP INDEX ix_interactions_project_model_timestamp"))
    for table, names in (
        (schema.interactions, {"ix_interactions_project_model_timestamp_latency"}),
        (schema.feedback, {"ix_feedback_project_stats", "ix_feedback_project_type_value"}),
    ):
        existing = {i["name"] for i in sa.inspect(connection).get_indexes(table.name)}
        for index in table.indexes:
            if index.name in names and index.name not in existing:
                index.create(connection)
    schema.metadata.create_all(connection, tables=[schema.feedback_dimensions, schema.feedback_pairs], checkfirst=True)
    postgres = connection.dialect.name == "postgresql"
    ignore, conflict = ("", " ON CONFLICT DO NOTHING") if postgres else (" OR IGNORE", "")
    if postgres:
        dimensions = "jsonb_each_text(f.data -> 'dimensions') AS d"
        score = "CAST(d.value AS DOUBLE PRECISION)"
    else:
        dimensions, score = "json_each(f.data, '$.dimensions') AS d", "d.value"
    connection.execute(sa.text(
        f"INSERT{ignore} INTO feedback_dimensions (project, feedback_id, dimension, score, timestamp) "
        f"SELECT f.project, f.id, d.key, {score}, f.timestamp FROM feedback AS f, {dimensions} "
        f"WHERE f.type = 'multi_dimensional'{conflict}"
    ))  # fmt: skip
    connection.execute(sa.text(
        f"INSERT{ignore} INTO feedback_pairs (project, feedback_id, preferred_id, alternative_id, timestamp, "
        "preferred_model, alternative_model) "
        "SELECT p.project, p.feedback_id, p.interaction_id, a.interaction_id, p.timestamp, ip.model, ia.model "
        "FROM feedback_targets AS p JOIN feedback_targets AS a ON a.project = p.project "
        "AND a.feedback_id = p.feedback_id AND a.role = 'alternative' "
        "LEFT JOIN interactions AS ip ON ip.project = p.project AND ip.id = p.interaction_id "
        "LEFT JOIN interactions AS ia ON ia.project = a.project AND ia.id = a.interaction_id "
        f"WHERE p.role = 'preferred'{conflict}"
    ))  # fmt: skip


def m003_target_times(connection: Any) -> None:
    """Give feedback_targets the interaction's timestamp, so "interactions with feedback" is one index scan."""
    columns = {c["name"] for c in sa.inspect(connection).get_columns("feedback_targets")}
    if "interaction_timestamp" not in columns:
        connection.execute(sa.text("ALTER TABLE feedback_targets ADD COLUMN interaction_timestamp BIGINT"))
        connection.execute(sa.text(
            "UPDATE feedback_targets SET interaction_timestamp = (SELECT i.timestamp FROM interactions AS i "
            "WHERE i.project = feedback_targets.project AND i.id = feedback_targets.interaction_id)"
        ))  # fmt: skip
    existing = {i["name"] for i in sa.inspect(connection).get_indexes("feedback_targets")}
    if "ix_feedback_targets_project_interaction" in existing:
        connection.execute(sa.text("DROP INDEX ix_feedback_targets_project_interaction"))
    for index in schema.feedback_targets.indexes:
        if index.name not in existing:
            index.create(connection)


def m004_unbounded_strings(connection: Any) -> None:
    """Lift the length limits of string columns (PostgreSQL enforces them; SQLite never did)."""
    if connection.dialect.name != "postgresql":
        return
    limited = connection.execute(sa.text(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND character_maximum_length IS NOT NULL AND table_name IN "
        "('interactions', 'feedback', 'feedback_targets', 'feedback_dimensions', 'feedback_pairs', 'sessions', "
        "'api_keys')"
    )).all()  # fmt: skip
    for table, column, collation in limited:
        collate = ' COLLATE "C"' if collation == "C" else ""
        connection.execute(sa.text(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE VARCHAR{collate}'))


def m005_target_feedback_index(connection: Any) -> None:
    """Index feedback_targets by (project, interaction_id, feedback_id): reading an interaction's feedback ids
    used a scan of the whole primary key on SQLite (265 ms instead of 4 ms per 1,000 interactions at 1M)."""
    existing = {i["name"] for i in sa.inspect(connection).get_indexes("feedback_targets")}
    for index in schema.feedback_targets.indexes:
        if index.name == "ix_feedback_targets_project_interaction_feedback" and index.name not in existing:
            index.create(connection)


def m006_id_collation(connection: Any) -> None:
    """On PostgreSQL, compare the id columns of feedback and feedback_targets with collation "C" like
    interactions.id, so joins between them use the indexes (a mismatch forced a sort of every target)."""
    if connection.dialect.name != "postgresql":
        return
    for table, column in (("feedback", "interaction_id"), ("feedback_targets", "feedback_id"),
                          ("feedback_targets", "interaction_id")):  # fmt: skip
        connection.execute(sa.text(f'ALTER TABLE {table} ALTER COLUMN "{column}" TYPE VARCHAR COLLATE "C"'))


def m007_search_index(connection: Any) -> None:
    """On SQLite, a trigram index of prompts and responses for text search, filled with the rows present.

    Kept off the write path (see :mod:`._sql_search`): later rows are indexed in
    bulk when searches need them. Indexing takes about a minute per million
    interactions.
    """
    if connection.dialect.name != "sqlite":
        return
    from ._sql_search import create_index, index_rows

    if create_index(connection):
        index_rows(connection)


def m008_postgres_search_index(connection: Any) -> None:
    """On PostgreSQL, a trigram index of prompts and responses for text search, filled with the rows present.

    Kept off the write path like SQLite's (see :mod:`._sql_search_pg`): new
    rows take a number from a sequence (``interactions.seq``, a column
    default) and are indexed in bulk, in that order, when searches need them.
    Without the pg_trgm extension (and no right to create it), a warning is
    logged and text search scans. Indexing takes about a minute per million
    interactions, during which writers wait.
    """
    if connection.dialect.name != "postgresql":
        return
    from ._sql_search_pg import create_index, number_rows

    number_rows(connection)
    create_index(connection)


MIGRATIONS: list[tuple[int, str, Callable[[Any], None]]] = [
    (1, "initial", m001_initial),
    (2, "stats_tables", m002_stats_tables),
    (3, "target_times", m003_target_times),
    (4, "unbounded_strings", m004_unbounded_strings),
    (5, "target_feedback_index", m005_target_feedback_index),
    (6, "id_collation", m006_id_collation),
    (7, "search_index", m007_search_index),
    (8, "postgres_search_index", m008_postgres_search_index),
]
"""(version, name, function), in the order they run."""


def applied_versions(connection: Any) -> set[int]:
    """The versions recorded in ``schema_migrations`` (empty when the table is missing)."""
    if not sa.inspect(connection).has_table("schema_migrations"):
        return set()
    return {row[0] for row in connection.execute(sa.select(schema.schema_migrations.c.version))}


def upgrade(engine: Any) -> list[int]:
    """Run the migrations not yet applied; return the versions run now (empty when up to date)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # BEGIN IMMEDIATE takes the write lock up front: a second process waits, then sees the result.
            connection = connection.execution_options(rlhfkit_write=True)
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            schema.metadata.create_all(connection, tables=[schema.schema_migrations], checkfirst=True)
            done = applied_versions(connection)
            ran = []
            for version, name, function in MIGRATIONS:
                if version in done:
                    continue
                logger.info("applying migration %03d_%s", version, name)
                function(connection)
                connection.execute(
                    schema.schema_migrations.insert().values(version=version, name=name, applied_at=datetime.now(UTC))
                )
                ran.append(version)
            return ran
