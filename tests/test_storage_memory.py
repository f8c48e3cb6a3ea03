"""MemoryStorage: what differs from the contract (bounded size, eviction)."""

from __future__ import annotations

import logging

import pytest

from rlhfkit._models import Feedback, FeedbackFilter, Interaction, InteractionFilter, RecordBatch
from rlhfkit.errors import ValidationError
from rlhfkit.storage.memory import MemoryStorage


def _interactions(n: int, prefix: str = "i") -> list[Interaction]:
    return [Interaction(id=f"{prefix}{k:03d}", prompt=f"p{k}") for k in range(n)]


def _thumb(id: str, interaction_id: str) -> Feedback:
    return Feedback(id=id, interaction_id=interaction_id, type="binary", data={"type": "binary", "value": "thumbs_up"})


def test_oldest_records_are_evicted_first_and_counted() -> None:
    """Past max_entries the first-stored records go, and evictions counts them."""
    storage = MemoryStorage(max_entries=5)
    storage.write(RecordBatch(interactions=_interactions(4)))
    storage.write(RecordBatch(feedback=[_thumb("f1", "i003"), _thumb("f2", "i003")]))
    assert storage.evictions == 1
    assert storage.get_interaction("i000") is None
    assert [i.id for i in storage.iter_interactions(InteractionFilter())] == ["i001", "i002", "i003"]
    assert len(storage) == 5
    storage.write(RecordBatch(interactions=_interactions(3, "j")))
    assert storage.evictions == 4
    assert [i.id for i in storage.iter_interactions(InteractionFilter())] == ["j000", "j001", "j002"]
    assert [f.id for f in storage.iter_feedback(FeedbackFilter())] == ["f1", "f2"]


def test_feedback_counts_towards_max_entries_and_eviction_drops_its_links() -> None:
    """Feedback records are entries too; an evicted feedback leaves its interaction's feedback_ids."""
    storage = MemoryStorage(max_entries=3)
    storage.write(RecordBatch(interactions=_interactions(1), feedback=[_thumb("f1", "i000")]))
    assert storage.get_interaction("i000").feedback_ids == ["f1"]
    storage.write(RecordBatch(feedback=[_thumb("f2", "i000"), _thumb("f3", "i000")]))
    assert storage.evictions == 1
    assert storage.get_interaction("i000") is None
    storage.write(RecordBatch(interactions=[Interaction(id="i100", prompt="p")], feedback=[_thumb("f4", "i100")]))
    assert storage.evictions == 3
    assert storage.get_interaction("i100").feedback_ids == ["f4"]
    assert storage.get_feedback("f2") is None and storage.get_feedback("f3") is not None


def test_eviction_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first eviction logs a warning on the rlhfkit logger; later ones stay quiet."""
    storage = MemoryStorage(max_entries=2)
    with caplog.at_level(logging.WARNING, logger="rlhfkit"):
        for k in range(5):
            storage.write(RecordBatch(interactions=[Interaction(id=f"x{k}", prompt="p")]))
    warnings = [r for r in caplog.records if r.name.startswith("rlhfkit") and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "max_entries=2" in warnings[0].getMessage()
    assert storage.evictions == 3


def test_duplicates_do_not_count_towards_the_limit() -> None:
    """Writing the same records again neither grows the store nor evicts."""
    storage = MemoryStorage(max_entries=3)
    batch = RecordBatch(interactions=_interactions(3))
    storage.write(batch)
    storage.write(batch)
    assert storage.evictions == 0 and len(storage) == 3


def test_max_entries_must_be_positive() -> None:
    """max_entries below 1 is refused, naming the field."""
    with pytest.raises(ValidationError) as info:
        MemoryStorage(max_entries=0)
    assert info.value.field == "max_entries"


def test_stored_records_do_not_change_when_the_caller_mutates_its_objects() -> None:
    """The storage keeps its own copy of an interaction's top-level fields."""
    storage = MemoryStorage()
    interaction = Interaction(id="a", prompt="p", response="r")
    storage.write(RecordBatch(interactions=[interaction]))
    interaction.response = "changed"
    assert storage.get_interaction("a").response == "r"
