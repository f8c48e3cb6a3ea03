"""The storage Protocol: the one interface every backend implements.

A backend stores :class:`~rlhfkit.RecordBatch` objects and reads them back.
Writes are idempotent on record ids: a batch written twice is stored once
(the later copy of a session replaces the earlier one, since sessions grow).
Batching, retries and spooling live in the logger and the remote sender, never
in a backend.

Reads return records in id order, which is creation order. ``feedback_ids`` of
an interaction is filled on read from the stored feedback.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RecordBatch,
)

__all__ = ["Storage"]


@runtime_checkable
class Storage(Protocol):
    """What a storage backend must do. Implementations are passed in, not looked up."""

    def initialize(self) -> None:
        """Create what is missing (tables, directories). Safe to call twice."""

    def write(self, batch: RecordBatch) -> None:
        """Store every record of ``batch``; idempotent on record ids. Raise on failure."""

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id (``feedback_ids`` filled), or None."""

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The session with this id, its interaction and feedback ids filled, or None."""

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Those of ``interaction_ids`` that are not stored."""

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter`` in id order, streamed (never all in memory)."""

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter`` in id order, streamed."""

    def feedback_stats(
        self, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> FeedbackStats:
        """Aggregates over interactions and feedback whose timestamp is in [start, end)."""

    def close(self) -> int | None:
        """Release connections and file handles. Safe to call twice.

        Backends that deliver in the background (REMOTE, ZeroDB) may take a
        ``timeout_s`` argument and return how many records remain undelivered.
        """
