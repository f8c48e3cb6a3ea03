"""Fixtures of the ZeroDB tests: one shared emulator server, a fresh project per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rlhfkit.storage.zerodb import ZeroDBStorage
from tests.zerodb.emulator import EmulatorServer, ZeroDBEmulator

FAST: dict[str, Any] = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0, "read_wait_s": 60.0}
"""Tiny backoffs so that retries happen within a test's few seconds."""


@pytest.fixture(scope="session")
def _shared_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer(ZeroDBEmulator())
    yield server
    server.stop()


@pytest.fixture
def shared(_shared_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The shared emulator, with scripted faults and their counts cleared before and after the test."""
    em = _shared_server.emulator
    em.faults.clear()
    em.faulted.clear()
    em.slow_inserts = 0
    yield _shared_server
    em.faults.clear()
    em.slow_inserts = 0


@pytest.fixture
def own_server() -> Iterator[EmulatorServer]:
    """An emulator server of this test alone (to stop, restart or slow down)."""
    server = EmulatorServer(ZeroDBEmulator())
    yield server
    server.stop()


@pytest.fixture
def project() -> str:
    """A fresh project id, so tests on the shared emulator never see each other's rows."""
    return f"proj-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_storage(tmp_path: Path) -> Iterator[Callable[..., ZeroDBStorage]]:
    """Build ZeroDBStorage objects with tiny backoffs on a per-test spool; all closed at the end."""
    opened: list[ZeroDBStorage] = []

    def make(server: EmulatorServer, project: str, **options: Any) -> ZeroDBStorage:
        settings: dict[str, Any] = {"api_key": "test-key", "base_url": server.url,
                                    "spool_dir": tmp_path / "spool", **FAST}  # fmt: skip
        settings.update(options)
        storage = ZeroDBStorage(project, **settings)
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close(timeout_s=0)
