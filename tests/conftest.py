"""Fixtures shared by every test module."""

from __future__ import annotations

import os

import pytest

from tests._servers import postgres_dsn_or_fail


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a reachable PostgreSQL; under CI=true an unreachable one fails the run."""
    return postgres_dsn_or_fail()


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> str:
    """A per-test directory under ./test-output for artefacts worth keeping (screenshots)."""
    path = os.path.join("test-output", request.node.name)
    os.makedirs(path, exist_ok=True)
    return path
