"""Fixtures of the collector tests: a collector on PostgreSQL under uvicorn, fresh projects."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rlhfkit.server import SQLKeyStore, create_app
from rlhfkit.storage.sql import SQLStorage
from tests._servers import UvicornThread
from tests.server._helpers import FaultyApp

SCHEMA = "rlhfkit_collector_tests"


@pytest.fixture(scope="session")
def pg_url(postgres_dsn: str) -> str:
    """The test PostgreSQL, in a schema of its own."""
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    separator = "&" if "?" in postgres_dsn else "?"
    return f"{postgres_dsn}{separator}options=-csearch_path%3D{SCHEMA}"


@pytest.fixture(scope="session")
def pg_storage(pg_url: str) -> Iterator[SQLStorage]:
    """One SQLStorage (PostgreSQL) shared by the collector tests; each test uses its own project."""
    storage = SQLStorage(pg_url)
    storage.initialize()
    yield storage
    storage.close()


@dataclass
class Collector:
    """A running collector: its URL, the fault wrapper and its storage."""

    server: UvicornThread
    faults: FaultyApp
    storage: SQLStorage
    keys: SQLKeyStore

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self) -> None:
        """Serve the same app again on the same port."""
        self.server = UvicornThread(self.faults, self.server.port).start()


@pytest.fixture(scope="session")
def _session_collector(pg_storage: SQLStorage) -> Iterator[Collector]:
    keys = SQLKeyStore(pg_storage.engine)
    faults = FaultyApp(create_app(storage=pg_storage, keys=keys))
    server = UvicornThread(faults).start()
    yield Collector(server, faults, pg_storage, keys)
    server.stop()


@pytest.fixture
def collector(_session_collector: Collector) -> Iterator[Collector]:
    """The shared collector on PostgreSQL, with its faults and counts reset."""
    _session_collector.faults.reset()
    yield _session_collector
    _session_collector.faults.reset()


@pytest.fixture
def own_collector(pg_storage: SQLStorage) -> Iterator[Collector]:
    """A collector of this test alone (to stop and restart)."""
    keys = SQLKeyStore(pg_storage.engine)
    faults = FaultyApp(create_app(storage=pg_storage, keys=keys))
    holder = Collector(UvicornThread(faults).start(), faults, pg_storage, keys)
    yield holder
    holder.server.stop()


@dataclass
class Project:
    """A fresh project with a read-write and a write-only key."""

    name: str
    key: str
    write_only_key: str
    storage: Any

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def project(pg_storage: SQLStorage) -> Project:
    """A project no other test uses, with its keys."""
    keys = SQLKeyStore(pg_storage.engine)
    name = f"test-{uuid.uuid4().hex[:12]}"
    return Project(
        name,
        keys.create(name, "tester"),
        keys.create(name, "browser", write_only=True),
        pg_storage.for_project(name),
    )
