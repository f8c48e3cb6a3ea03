"""Fresh PostgreSQL schemas for benchmarks, dropped afterwards."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

from ._common import POSTGRES_DSN


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can)."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_DSN, connect_timeout=5):
            return None
    except Exception as exc:
        return f"PostgreSQL at {POSTGRES_DSN} is not reachable: {exc}"[:200]


def url_with_schema(name: str) -> str:
    """The benchmark database URL with ``search_path`` set to schema ``name``."""
    separator = "&" if "?" in POSTGRES_DSN else "?"
    return f"{POSTGRES_DSN}{separator}options={quote(f'-csearch_path={name}')}"


@contextmanager
def fresh_schema(label: str) -> Iterator[str]:
    """A database URL whose search_path is a new, empty schema; the schema is dropped on exit."""
    import psycopg

    name = f"bench_{label}_{os.getpid()}_{int(time.time())}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield url_with_schema(name)
    finally:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
