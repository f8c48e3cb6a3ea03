"""The storage contract (tests/storage_contract.py) run against every embedded backend.

Backends: memory, local JSONL (plain, and gzip with a tiny max_file_size so
that it rotates), SQLite (a file) and PostgreSQL (a fresh project per test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlhfkit.storage.base import Storage
from rlhfkit.storage.memory import MemoryStorage
from tests.storage_contract import StorageContract

BACKENDS = ["memory", "local", "local_gzip", "sqlite", "postgres"]


def drop_project(dsn: str, project: str) -> None:
    """Delete every row of ``project`` from the rlhfkit tables of a PostgreSQL database."""
    import psycopg

    with psycopg.connect(dsn) as connection:
        for table in ("feedback_targets", "feedback", "interactions", "sessions"):
            connection.execute(f"DELETE FROM {table} WHERE project = %s", (project,))


class TestStorageContract(StorageContract):
    """Every embedded backend honours the storage contract."""

    @pytest.fixture(params=BACKENDS)
    def storage_factory(
        self, request: pytest.FixtureRequest, tmp_path: Path
    ) -> Iterator[Callable[[], Storage]]:
        """A factory per backend; each call opens the same data again."""
        backend = request.param
        self.persistent = backend != "memory"
        if backend == "memory":
            memory = MemoryStorage()
            yield lambda: memory
        elif backend in {"local", "local_gzip"}:
            from rlhfkit.storage.local import LocalStorage

            gzip = backend == "local_gzip"
            yield lambda: LocalStorage(tmp_path / "data", compress=gzip, max_file_size_mb=0.0005 if gzip else 100.0)
        elif backend == "sqlite":
            from rlhfkit.storage.sql import SQLStorage

            yield lambda: SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
        else:
            from rlhfkit.storage.sql import SQLStorage

            dsn = request.getfixturevalue("postgres_dsn")
            project = f"contract-{uuid.uuid4().hex[:12]}"
            yield lambda: SQLStorage(dsn, project=project)
            drop_project(dsn, project)
