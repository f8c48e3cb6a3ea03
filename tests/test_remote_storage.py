"""RemoteStorage as a Storage: reads through the collector, URL handling, and the logger's REMOTE backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlhfkit import create_rlhf_logger
from rlhfkit._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    InteractionFilter,
    RecordBatch,
    StorageBackend,
)
from rlhfkit.errors import ConfigurationError
from rlhfkit.storage.base import Storage
from rlhfkit.storage.remote import RemoteStorage, _split_url
from tests.server import _fixtures
from tests.server._fixtures import Collector, Project
from tests.server._helpers import interactions

pg_url = _fixtures.pg_url
pg_storage = _fixtures.pg_storage
_session_collector = _fixtures._session_collector
collector = _fixtures.collector
project = _fixtures.project


def _thumbs(interaction_id: str) -> Feedback:
    return Feedback(interaction_id=interaction_id, type="binary", data={"type": "binary", "value": "thumbs_up"})


def test_remote_storage_reads_back_what_it_wrote(collector: Collector, project: Project, tmp_path: Path) -> None:
    """Records written through RemoteStorage read back through it: by id, filtered, paged, in stats and sessions."""
    storage = RemoteStorage(collector.url, api_key=project.key, spool_dir=tmp_path / "spool")
    assert isinstance(storage, Storage)
    many = interactions(620, "paged", model="m-1")
    other = interactions(3, "other", model="m-2", session_id="sess-r")
    rating = Feedback(interaction_id=other[0].id, type="rating", data={"type": "rating", "value": 5, "max_rating": 5})
    md = Feedback(interaction_id=other[1].id, type="multi_dimensional",
                  data={"type": "multi_dimensional", "dimensions": {"a": 4.0}})
    session = FeedbackSession(id="sess-r", interaction_ids=[i.id for i in other])
    storage.write(RecordBatch(interactions=many + other))
    storage.write(RecordBatch(feedback=[_thumbs(many[0].id), rating, md], sessions=[session]))
    assert storage.flush(timeout_s=30) == 0
    fetched = storage.get_interaction(many[0].id)
    assert fetched is not None and fetched.prompt == many[0].prompt and len(fetched.feedback_ids) == 1
    assert storage.get_interaction("missing") is None
    assert storage.get_feedback(rating.id) == rating
    assert storage.get_feedback(md.id) == md
    assert storage.get_session("sess-r").interaction_ids == [i.id for i in other]  # type: ignore[union-attr]
    assert [i.id for i in storage.iter_interactions(InteractionFilter(models=["m-1"]))] == sorted(i.id for i in many)
    assert all(i.session_id is None for i in storage.iter_interactions(InteractionFilter(models=["m-1"], limit=5)))
    assert len(list(storage.iter_interactions(InteractionFilter(limit=505)))) == 505
    assert [f.id for f in storage.iter_feedback(FeedbackFilter(types=["rating"]))] == [rating.id]
    stats = storage.feedback_stats()
    assert (stats.total_interactions, stats.total_feedback, stats.rating.count) == (623, 3, 1)
    assert storage.missing_interactions(["anything"]) == set()
    assert storage.close(timeout_s=5) == 0


def test_logger_with_remote_backend_delivers_everything(collector: Collector, project: Project, tmp_path: Path) -> None:
    """An RLHFLogger configured with StorageBackend.REMOTE stores every interaction and feedback in the collector."""
    logger = create_rlhf_logger(
        backend=StorageBackend.REMOTE,
        backend_config={"remote": {"url": collector.url, "api_key": project.key, "spool_dir": str(tmp_path / "s")}},
        batch_size=25,
    )
    ids = [logger.log_interaction(f"question {n}", f"answer {n}", model="m") for n in range(100)]
    for iid in ids[:10]:
        logger.log_binary_feedback(iid, True)
    assert logger.close(timeout_s=30) == 0
    assert project.storage.count_interactions(InteractionFilter()) == 100
    assert project.storage.count_feedback() == 10


def test_url_forms() -> None:
    """A bare address posts to /v1/interactions/batch; a URL with a path is posted to as given."""
    assert _split_url("http://c:8484") == ("http://c:8484/v1/interactions/batch", "http://c:8484")
    assert _split_url("http://c:8484/") == ("http://c:8484/v1/interactions/batch", "http://c:8484")
    assert _split_url("https://c/v1/interactions/batch") == ("https://c/v1/interactions/batch", "https://c")
    assert _split_url("https://api.example.com/rlhf") == ("https://api.example.com/rlhf", "https://api.example.com/rlhf")
    with pytest.raises(ConfigurationError):
        RemoteStorage("collector:8484")


def test_full_ingest_url_is_used_as_given(collector: Collector, project: Project, tmp_path: Path) -> None:
    """remote_endpoint style: a URL ending in /v1/interactions/batch delivers there."""
    storage = RemoteStorage(f"{collector.url}/v1/interactions/batch", api_key=project.key, spool_dir=tmp_path / "s")
    storage.write(RecordBatch(interactions=interactions(7)))
    assert storage.close(timeout_s=20) == 0
    assert project.storage.count_interactions(InteractionFilter()) == 7


def test_wrong_key_is_a_failed_upload_not_a_retry_loop(collector: Collector, project: Project, tmp_path: Path) -> None:
    """A 401 (bad key) is not retried but counted and kept under failed/; retry_failed with a good key delivers it."""
    storage = RemoteStorage(collector.url, api_key="rk_wrong", spool_dir=tmp_path / "s", max_backoff_s=0.2)
    storage.write(RecordBatch(interactions=interactions(4)))
    assert storage.close(timeout_s=20) == 0
    assert storage.failed_uploads == 4
    assert len(list((tmp_path / "s" / "failed").iterdir())) == 1
    fixed = RemoteStorage(collector.url, api_key=project.key, spool_dir=tmp_path / "s", max_backoff_s=0.2)
    assert fixed.retry_failed() == 4
    assert fixed.close(timeout_s=20) == 0
    assert project.storage.count_interactions(InteractionFilter()) == 4
    assert list((tmp_path / "s" / "failed").iterdir()) == []
