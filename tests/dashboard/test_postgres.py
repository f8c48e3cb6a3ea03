"""The interactions table's queries on the real PostgreSQL select what the storage's own filters do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from rlhfkit._config import RLHFConfig
from rlhfkit._demo_data import populate_demo
from rlhfkit._logger import RLHFLogger
from rlhfkit._models import Interaction, InteractionFilter
from rlhfkit.server.dashboard import _queries, _table
from rlhfkit.storage.sql import SQLStorage

CASES: list[dict[str, Any]] = [
    {},
    {"models": ["gpt-4o"]},
    {"feedback_types": ["rating"]},
    {"feedback_types": ["comparative", "text"]},
    {"min_rating": 4, "max_rating": 5},
    {"has_feedback": True, "models": ["claude-sonnet-4"]},
    {"has_feedback": False},
    {"search": "PARIS"},
    {"errors_only": True},
    {"user_id": "user-1", "feedback_types": ["binary"]},
]


@pytest.fixture(scope="module")
def storage(postgres_dsn: str) -> Iterator[SQLStorage]:
    """A fresh project on the test database with one round of demo data and a failed call."""
    store = SQLStorage(postgres_dsn, project=f"dashboard-{uuid.uuid4().hex[:12]}")
    store.initialize()
    logger = RLHFLogger(RLHFConfig(), storage=store)
    populate_demo(logger, rounds=1)
    logger.log_record(Interaction(prompt="Too long", model="gpt-4o", error={"type": "Timeout", "message": "slow"}))
    assert logger.close(timeout_s=10) == 0
    yield store
    store.close()


def _all_pages(storage: SQLStorage, flt: InteractionFilter) -> list[str]:
    seen: list[str] = []
    keys: list[tuple[Any, str]] = []
    page = _queries.interaction_page(storage, flt, size=4)
    for _ in range(100):
        seen += [r.id for r in page.rows]
        keys += [(r.timestamp, r.id) for r in page.rows]
        if page.older is None:
            break
        page = _queries.interaction_page(storage, flt, before=page.older, size=4)
    assert keys == sorted(keys, reverse=True)
    return seen


@pytest.mark.parametrize("plan", ["walk", "from-feedback-ids"])
def test_every_filter_pages_through_exactly_the_storage_selection(
    storage: SQLStorage, plan: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, both query plans page newest first through the same interactions as ``iter_interactions``, none twice."""
    monkeypatch.setattr(_table, "NARROW", 1 if plan == "walk" else 10**9)
    monkeypatch.setattr(_table, "WALK_STEP", 5)
    monkeypatch.setattr(_table, "SCAN_WINDOW", 10)
    for case in CASES:
        flt = InteractionFilter(**case)
        seen = _all_pages(storage, flt)
        expected = {i.id for i in storage.iter_interactions(flt)}
        assert len(seen) == len(set(seen)) and set(seen) == expected, case
