"""The storage contract (tests/storage_contract.py) run against RemoteStorage and a real collector on PostgreSQL.

Two cases differ by design and are restated here: ``missing_interactions`` of
a RemoteStorage is always empty (a remote look-up would put a network round
trip on the caller's thread; the collector refuses feedback about unknown
interactions itself), so the restart case checks everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlhfkit._models import Feedback, FeedbackFilter, InteractionFilter, RecordBatch
from rlhfkit.storage.base import Storage
from rlhfkit.storage.remote import RemoteStorage
from tests.server import _fixtures
from tests.server._fixtures import Collector, Project
from tests.storage_contract import StorageContract, dataset

pg_url = _fixtures.pg_url
pg_storage = _fixtures.pg_storage
_session_collector = _fixtures._session_collector
collector = _fixtures.collector
project = _fixtures.project


class TestRemoteContract(StorageContract):
    """RemoteStorage honours the storage contract through the collector (reads see the storage's own writes)."""

    @pytest.fixture
    def storage_factory(self, collector: Collector, project: Project, tmp_path: Path) -> Callable[[], Storage]:
        """A factory opening a RemoteStorage on the same project and spool at each call."""
        return lambda: RemoteStorage(collector.url, api_key=project.key, spool_dir=tmp_path / "spool", max_backoff_s=0.3)

    def test_missing_interactions_names_only_unknown_ids(self, filled: Storage) -> None:
        """Remote: missing_interactions is always empty; the collector refuses feedback about unknown ids instead."""
        assert filled.missing_interactions(["i01", "x1"]) == set()
        orphan = Feedback(interaction_id="x1", type="binary", data={"type": "binary", "value": "thumbs_up"})
        filled.write(RecordBatch(feedback=[orphan]))
        assert filled.flush(timeout_s=20) == 0  # type: ignore[attr-defined]
        assert filled.failed_uploads == 1  # type: ignore[attr-defined]
        assert filled.get_feedback(orphan.id) is None

    def test_everything_is_read_back_after_a_restart(
        self, storage_factory: Callable[[], Storage], filled: Storage
    ) -> None:
        """Closing and opening the storage again loses nothing."""
        before_i = list(filled.iter_interactions(InteractionFilter()))
        before_f = list(filled.iter_feedback(FeedbackFilter()))
        before_stats = filled.feedback_stats()
        before_session = filled.get_session("s1")
        assert filled.close() == 0  # type: ignore[func-returns-value]
        reopened = storage_factory()
        reopened.initialize()
        try:
            assert list(reopened.iter_interactions(InteractionFilter())) == before_i
            assert list(reopened.iter_feedback(FeedbackFilter())) == before_f
            assert reopened.feedback_stats() == before_stats
            assert reopened.get_session("s1") == before_session
            reopened.write(dataset())
            assert len(list(reopened.iter_feedback(FeedbackFilter()))) == 12
        finally:
            reopened.close()
