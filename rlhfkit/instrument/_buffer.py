"""The bounded buffer of captured records and their delivery (worker side, under the instrumentation's lock).

Records stay in the buffer (for :meth:`get_interactions` and the metrics)
until room is needed; undelivered ones are written to the destinations in
batches of ``batch_size``. When the buffer reaches ``max_buffer_size`` the
instrumentation emits ``buffer-full``, calls ``on_buffer_full``, flushes, and
then lets go of what was delivered; a record it could not deliver and must let
go of is counted in ``dropped_records`` and logged, never dropped silently.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any, Protocol

from .._batching import DATA_ERRORS, export_isolating
from .._models import Feedback, Interaction, RecordBatch

__all__ = ["Destination", "LoggerDestination", "RecordBuffer", "StorageDestination"]

logger = logging.getLogger("rlhfkit.instrument")

Record = Interaction | Feedback


class Destination(Protocol):
    """Where delivered records go. ``deliver`` raises when the records were not taken."""

    def deliver(self, records: list[Record]) -> None:
        """Take ``records`` or raise."""

    def close(self) -> None:
        """Release resources."""


class LoggerDestination:
    """Records handed to an :class:`rlhfkit.RLHFLogger` (its batching, its backend)."""

    def __init__(self, rlhf_logger: Any) -> None:
        self.logger = rlhf_logger
        self.rejected = 0

    def deliver(self, records: list[Record]) -> None:
        """``logger.log_record`` each record; a record the logger refuses is counted, not retried.

        An instrumentor or middleware may have left a record the logger cannot
        take (a wrong type, say): it is refused alone, never holding up the rest.
        """
        for record in records:
            try:
                self.logger.log_record(record)
            except DATA_ERRORS:
                self.rejected += 1
                logger.exception("the RLHFLogger refused record %s; counted in dropped_records", record.id)

    def close(self) -> None:
        """The logger belongs to the caller: left open."""


class StorageDestination:
    """Records written as :class:`~rlhfkit.RecordBatch` objects to a storage backend built on first use."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._storage: Any = None
        self.rejected = 0

    @property
    def storage(self) -> Any:
        """The backend, created (and initialised) on first use."""
        if self._storage is None:
            storage = self._factory()
            init = getattr(storage, "initialize", None)
            if callable(init):
                init()
            self._storage = storage
        return self._storage

    def deliver(self, records: list[Record]) -> None:
        """One ``write`` of every record; a record the backend refuses is set aside, counted and logged.

        Such a record (an instrumentor that put a lone surrogate in it, say)
        would otherwise make every write of its batch fail, again and again.
        """
        export_isolating(lambda some: self.storage.write(_batch(some)), records, self._reject)

    def _reject(self, record: Record, exc: Exception) -> None:
        self.rejected += 1
        logger.error("record %s cannot be stored, counted in dropped_records: %s", record.id, exc)

    def close(self) -> None:
        """Close the backend if it was opened."""
        if self._storage is not None:
            self._storage.close()


def _batch(records: list[Record]) -> RecordBatch:
    return RecordBatch(
        interactions=[r for r in records if isinstance(r, Interaction)],
        feedback=[r for r in records if isinstance(r, Feedback)],
    )


class RecordBuffer:
    """Interactions and feedback kept in memory, with the ids not yet delivered."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.interactions: OrderedDict[str, Interaction] = OrderedDict()
        self.feedback: OrderedDict[str, Feedback] = OrderedDict()
        self.undelivered: deque[Record] = deque()

    def __len__(self) -> int:
        return len(self.interactions) + len(self.feedback)

    def add(self, record: Record, deliverable: bool) -> None:
        """Keep ``record``; queue it for delivery when there is a destination."""
        if isinstance(record, Interaction):
            self.interactions[record.id] = record
        else:
            self.feedback[record.id] = record
            target = self.interactions.get(record.interaction_id)
            if target is not None and record.id not in target.feedback_ids:
                target.feedback_ids.append(record.id)
        if deliverable:
            self.undelivered.append(record)

    def add_interaction(self, interaction: Interaction, deliverable: bool) -> None:
        """:meth:`add` of an interaction."""
        self.interactions[interaction.id] = interaction
        if deliverable:
            self.undelivered.append(interaction)

    @property
    def full(self) -> bool:
        """Whether the buffer holds ``max_size`` records or more."""
        return len(self) >= self.max_size

    def deliver(
        self,
        destinations: list[Destination],
        batch_size: int,
        everything: bool,
        before_batch: Callable[[], Any] | None = None,
    ) -> tuple[list[Record], int]:
        """Hand undelivered records to every destination in batches; (delivered, failed batches).

        With ``everything`` false only full batches go. A failed batch stays
        queued and stops this round. ``before_batch`` is called before each batch.
        """
        delivered: list[Record] = []
        failures = 0
        while self.undelivered and (everything or len(self.undelivered) >= batch_size):
            if before_batch is not None:
                before_batch()
            batch = [self.undelivered[i] for i in range(min(batch_size, len(self.undelivered)))]
            try:
                for destination in destinations:
                    destination.deliver(batch)
            except Exception:
                logger.exception("rlhfkit could not deliver %d records; they stay queued", len(batch))
                failures += 1
                break
            for _ in batch:
                self.undelivered.popleft()
            delivered.extend(batch)
        return delivered, failures

    def let_go(self) -> tuple[int, int]:
        """Make room once full: forget the oldest delivered records (down to half), then the oldest undelivered.

        Returns (evicted delivered, dropped undelivered).
        """
        pending = {id(r) for r in self.undelivered}
        evicted = 0
        keep = self.max_size // 2
        for store in (self.interactions, self.feedback):
            for key in [k for k, r in store.items() if id(r) not in pending]:
                if len(self) <= keep:
                    break
                del store[key]
                evicted += 1
        dropped = 0
        while len(self) >= self.max_size and self.undelivered:
            record = self.undelivered.popleft()
            store = self.interactions if isinstance(record, Interaction) else self.feedback
            if store.pop(record.id, None) is not None:
                dropped += 1
        if dropped:
            logger.warning(
                "rlhfkit buffer full and undeliverable: %d records dropped (counted in metrics)", dropped
            )
        return evicted, dropped

    def clear(self) -> None:
        """Forget every record held for reading; undelivered ones stay queued for delivery."""
        self.interactions.clear()
        self.feedback.clear()
