"""Prompt embeddings upserted to ZeroDB's vectors API, and search_similar over them."""

from __future__ import annotations

import string
from collections.abc import Callable

import pytest

from rlhfkit._models import Interaction, RecordBatch
from rlhfkit.errors import ConfigurationError, ValidationError
from rlhfkit.storage.zerodb import ZeroDBStorage
from tests.zerodb.emulator import EmulatorServer

Make = Callable[..., ZeroDBStorage]


def letters(text: str) -> list[float]:
    """A toy embedding: how often each letter a..z occurs (similar words, similar vectors)."""
    lowered = text.lower()
    return [float(lowered.count(c)) for c in string.ascii_lowercase]


PROMPTS = {
    "capital": "What is the capital of France?",
    "joke": "Tell me a joke about chickens",
    "zebra": "zzz buzz fizz jazz",
}


def interactions() -> RecordBatch:
    """Three interactions whose prompts have distinct letter profiles."""
    return RecordBatch(interactions=[
        Interaction(id=key, prompt=prompt, response="...", model="gpt-4", session_id="s") for key, prompt in PROMPTS.items()
    ])  # fmt: skip


def test_prompts_are_upserted_and_found_by_similarity(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """Each interaction's prompt vector lands in the vector namespace; the nearest prompt comes first."""
    storage = make_storage(shared, project, embedding=letters, vector_table_name="rlhf_vec_test")
    storage.write(interactions())
    assert storage.flush(timeout_s=10) == 0
    space = shared.emulator.vectors[(project, "rlhf_vec_test")]
    assert sorted(space) == ["capital", "joke", "zebra"]
    assert space["joke"]["document"] == PROMPTS["joke"]
    assert space["joke"]["vector_metadata"] == {"interaction_id": "joke", "model": "gpt-4", "session_id": "s"}
    hits = storage.search_similar("what is the capital city of France", top_k=2)
    assert [h["interaction_id"] for h in hits] == ["capital", "joke"]
    assert hits[0]["similarity"] > hits[1]["similarity"]
    assert hits[0]["interaction"].prompt == PROMPTS["capital"]
    assert hits[0]["document"] == PROMPTS["capital"]
    only_close = storage.search_similar("buzz the jazz fizz", top_k=3, similarity_threshold=0.9)
    assert [h["interaction_id"] for h in only_close] == ["zebra"]


def test_a_replayed_batch_upserts_vectors_without_duplicates(
    shared: EmulatorServer, project: str, make_storage: Make
) -> None:
    """Writing the same interactions again (a new storage, as after a restart) keeps one vector and one row per id."""
    for _ in range(2):
        storage = make_storage(shared, project, embedding=letters)
        storage.write(interactions())
        assert storage.close(timeout_s=10) == 0
    assert sorted(shared.emulator.vectors[(project, "rlhf_vectors")]) == ["capital", "joke", "zebra"]
    assert len(shared.emulator.rows(project, "rlhf_feedback")) == 3


def test_an_embedding_that_fails_stores_the_row_without_a_vector(
    shared: EmulatorServer, project: str, make_storage: Make
) -> None:
    """A raising embedding function never blocks the record: the row is stored, the failure counted."""

    def picky(text: str) -> list[float]:
        if "joke" in text:
            raise RuntimeError("embedding service down")
        return letters(text)

    storage = make_storage(shared, project, embedding=picky)
    storage.write(interactions())
    assert storage.flush(timeout_s=10) == 0
    assert storage.embedding_failures == 1 and storage.failed_uploads == 0
    assert sorted(shared.emulator.vectors[(project, "rlhf_vectors")]) == ["capital", "zebra"]
    assert storage.get_interaction("joke") is not None


def test_throttled_vector_upserts_are_retried(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """429s on the vectors API are retried like row inserts; every vector arrives."""
    shared.emulator.fail_next(4, 429, route="upsert_vector", retry_after="0")
    storage = make_storage(shared, project, embedding=letters)
    storage.write(interactions())
    assert storage.flush(timeout_s=10) == 0
    assert shared.emulator.faulted["upsert_vector"] == 4
    assert sorted(shared.emulator.vectors[(project, "rlhf_vectors")]) == ["capital", "joke", "zebra"]


def test_search_similar_needs_an_embedding_and_text(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """Without an embedding function search_similar says how to configure one; empty text is refused."""
    with pytest.raises(ConfigurationError, match="embedding"):
        make_storage(shared, project).search_similar("hello")
    with pytest.raises(ValidationError) as info:
        make_storage(shared, project, embedding=letters).search_similar("  ")
    assert info.value.field == "text"


def test_logger_search_similar_goes_through_zerodb_vectors(shared: EmulatorServer, project: str, tmp_path) -> None:
    """RLHFLogger.search_similar on a ZeroDB logger with an embedding finds the nearest logged prompt;
    the spec's camelCase config keys are accepted."""
    from rlhfkit import StorageBackend, create_rlhf_logger

    zerodb = {"projectId": project, "apiKey": "test-key", "baseUrl": shared.url, "vectorTableName": "rlhf_logger_vec",
              "embedding": letters, "spoolDir": str(tmp_path / "spool"), "initialBackoffS": 0.01}  # fmt: skip
    with create_rlhf_logger(backend=StorageBackend.ZERODB, backend_config={"zerodb": zerodb}) as logger:
        ids = {key: logger.log_interaction(prompt, "...", model="gpt-4") for key, prompt in PROMPTS.items()}
        assert logger.flush(10) == 0
        assert logger.storage.flush(timeout_s=10) == 0  # type: ignore[attr-defined]
        hits = logger.search_similar("what is the capital city of France", top_k=1)
        assert [h["interaction_id"] for h in hits] == [ids["capital"]]
        with pytest.raises(ValidationError):
            logger.search_similar("", top_k=1)
