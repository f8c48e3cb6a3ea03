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

__all__ = ["MIGRATIONS", "applied_versions", "m001_initial", "upgrade"]

logger = logging.getLogger("rlhfkit.storage.sql")

sa = schema.sa

# An arbitrary constant: the key of the PostgreSQL advisory lock held while migrating.
_PG_LOCK_KEY = 0x726C68666B6974


def m001_initial(connection: Any) -> None:
    """Create interactions, feedback, feedback_targets, sessions and api_keys with their indexes."""
    tables = [schema.interactions, schema.feedback, schema.feedback_targets, schema.sessions, schema.api_keys]
    schema.metadata.create_all(connection, tables=tables, checkfirst=True)


MIGRATIONS: list[tuple[int, str, Callable[[Any], None]]] = [
    (1, "initial", m001_initial),
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
