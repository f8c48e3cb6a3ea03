"""Group commit of the collector: concurrent batches share writes, and each is stored whole or not at all."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rlhfkit import Interaction, RecordBatch
from rlhfkit._models import InteractionFilter
from rlhfkit.errors import StorageError
from rlhfkit.server._combine import WriteCombiner
from rlhfkit.storage.memory import MemoryStorage


def _batch(*prompts: str) -> RecordBatch:
    return RecordBatch(interactions=[Interaction(prompt=p) for p in prompts])


class GatedStorage(MemoryStorage):
    """A MemoryStorage whose first write waits for a gate; it records each write's prompts, and refuses "bad"."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.writes: list[list[str]] = []

    def write(self, batch: RecordBatch) -> None:
        if not self.writes and not self.entered.is_set():
            self.entered.set()
            self.gate.wait(10)
        prompts = [i.prompt for i in batch.interactions]
        self.writes.append(prompts)
        if "bad" in prompts:
            raise StorageError("refused")
        super().write(batch)


def _write_while_first_is_held(
    storage: GatedStorage, batches: list[RecordBatch], combiner: WriteCombiner | None = None
) -> dict[int, Any]:
    """Write batches[0], then the rest from threads while the first write waits; each batch's outcome."""
    combiner = combiner or WriteCombiner()
    outcome: dict[int, Any] = {}

    def write(index: int) -> None:
        try:
            combiner.write(storage, batches[index])
            outcome[index] = "ok"
        except Exception as exc:
            outcome[index] = exc

    first = threading.Thread(target=write, args=(0,))
    first.start()
    assert storage.entered.wait(10)
    others = [threading.Thread(target=write, args=(i,)) for i in range(1, len(batches))]
    for t in others:
        t.start()
    while len(combiner._queues[id(storage)].pending) < len(others):  # all of them wait for the first write
        threading.Event().wait(0.001)
    storage.gate.set()
    for t in [first, *others]:
        t.join(10)
    return outcome


def test_batches_waiting_for_a_write_are_stored_in_one_write() -> None:
    """Batches that arrive during a write are written together once it ends, in arrival order."""
    storage = GatedStorage()
    outcome = _write_while_first_is_held(storage, [_batch("a"), _batch("b"), _batch("c", "d")])
    assert outcome == {0: "ok", 1: "ok", 2: "ok"}
    assert storage.writes[0] == ["a"]
    assert len(storage.writes) == 2
    assert sorted(storage.writes[1]) == ["b", "c", "d"]
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 4


def test_a_failed_combined_write_fails_only_the_batch_at_fault() -> None:
    """When a combined write fails, each batch is written alone: the bad one raises, the others are stored."""
    storage = GatedStorage()
    outcome = _write_while_first_is_held(storage, [_batch("a"), _batch("b"), _batch("bad"), _batch("c")])
    assert outcome[0] == outcome[1] == outcome[3] == "ok"
    assert isinstance(outcome[2], StorageError)
    stored = sorted(i.prompt for i in storage.iter_interactions(InteractionFilter()))
    assert stored == ["a", "b", "c"]


def test_a_combined_write_is_bounded_by_max_records() -> None:
    """No combined write holds more than max_records records, unless one batch alone is larger."""
    storage = GatedStorage()
    combiner = WriteCombiner(max_records=2)
    batches = [_batch("a"), _batch("b"), _batch("c"), _batch("d", "e", "f")]
    outcome = _write_while_first_is_held(storage, batches, combiner)
    assert set(outcome.values()) == {"ok"}
    assert all(len(w) <= 2 or w == ["d", "e", "f"] for w in storage.writes)
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 6
    assert combiner._queues == {}


def test_an_error_of_a_lone_write_reaches_its_caller() -> None:
    """A write with no company raises the storage's own error."""
    storage = GatedStorage()
    storage.gate.set()
    with pytest.raises(StorageError, match="refused"):
        WriteCombiner().write(storage, _batch("bad"))


def test_a_combined_write_stores_what_writing_each_batch_in_turn_stores(tmp_path: Any) -> None:
    """On SQLite, a combined write of batches sharing ids keeps the first copy, as separate writes do."""
    from rlhfkit import Feedback
    from rlhfkit._models import FeedbackFilter
    from rlhfkit.server._combine import _Job, _write_all
    from rlhfkit.storage.sql import SQLStorage

    first = Interaction(prompt="first copy")
    other = Interaction(prompt="other")
    thumbs = {"type": "binary", "data": {"type": "binary", "value": "thumbs_up"}}
    feedback = Feedback.model_validate({"interaction_id": first.id, **thumbs})
    batches = [
        RecordBatch(interactions=[first], feedback=[feedback]),
        RecordBatch(
            interactions=[first.model_copy(update={"prompt": "second copy"}), other],
            feedback=[feedback.model_copy(update={"interaction_id": other.id})],
        ),
    ]
    combined, separate = (
        SQLStorage(f"sqlite:///{tmp_path / 'a.db'}"),
        SQLStorage(f"sqlite:///{tmp_path / 'b.db'}"),
    )
    for storage in (combined, separate):
        storage.initialize()
    jobs = [_Job(b) for b in batches]
    _write_all(combined, jobs)
    assert all(job.done and job.error is None for job in jobs)
    for batch in batches:
        separate.write(batch)
    for storage in (combined, separate):
        assert {i.id: i.prompt for i in storage.iter_interactions(InteractionFilter())} == {
            first.id: "first copy",
            other.id: "other",
        }
        assert [f.interaction_id for f in storage.iter_feedback(FeedbackFilter())] == [first.id]
        storage.close()


class ParallelStorage(MemoryStorage):
    """A MemoryStorage taking ``parallel_writes`` writes at once; each write waits for a gate, counting writers."""

    def __init__(self, parallel_writes: int) -> None:
        super().__init__()
        self.parallel_writes = parallel_writes
        self.gate = threading.Event()
        self.inside = 0
        self.most_inside = 0
        self._count = threading.Lock()

    def write(self, batch: RecordBatch) -> None:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.gate.wait(10)
        with self._count:
            self.inside -= 1
        super().write(batch)


@pytest.mark.parametrize("parallel_writes", [1, 3])
def test_a_storage_gets_as_many_writes_at_once_as_it_takes(parallel_writes: int) -> None:
    """Up to ``parallel_writes`` writes run together; the batches waiting meanwhile are combined, none lost."""
    storage = ParallelStorage(parallel_writes)
    combiner = WriteCombiner()
    threads = [threading.Thread(target=combiner.write, args=(storage, _batch(f"p{k}"))) for k in range(8)]
    for t in threads:
        t.start()
    deadline = threading.Event()
    for _ in range(2000):  # until the writers allowed are in and the other batches wait
        with combiner._cond:
            queue = combiner._queues.get(id(storage))
            waiting = len(queue.pending) if queue else 0
        if storage.inside == parallel_writes and waiting == 8 - parallel_writes:
            break
        deadline.wait(0.005)
    assert storage.inside == parallel_writes
    storage.gate.set()
    for t in threads:
        t.join(10)
    assert storage.most_inside == parallel_writes
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 8
    assert combiner._queues == {}
