"""MemoryStorage: records in dictionaries, for tests and development.

Nothing survives the process. The store is bounded: past ``max_entries``
records the oldest are evicted first (see :class:`MemoryStorage`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from datetime import datetime

from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RecordBatch,
)
from ..analytics._stats import (
    compute_stats,
    feedback_targets,
    matches_feedback,
    matches_interaction,
    paginate,
)
from ..errors import ValidationError

__all__ = ["MemoryStorage"]

logger = logging.getLogger("rlhfkit.storage.memory")


class MemoryStorage:
    """Keeps interactions, feedback and sessions in memory.

    ``max_entries`` bounds the number of interactions plus feedback records held
    (sessions are not counted: they are few and small). When a write takes the
    count above it, the records stored first are evicted first, whatever their
    kind, until the count is back to ``max_entries``. :attr:`evictions` counts
    evicted records, and the first eviction logs a warning.

    Example::

        storage = MemoryStorage(max_entries=1000)
        storage.write(RecordBatch(interactions=[Interaction(prompt="hi", response="hello")]))
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValidationError("max_entries", "must be at least 1", max_entries)
        self.max_entries = max_entries
        self.evictions = 0
        """How many interactions and feedback records were evicted to stay within max_entries."""
        self._lock = threading.RLock()
        self._interactions: dict[str, Interaction] = {}
        self._feedback: dict[str, Feedback] = {}
        self._sessions: dict[str, FeedbackSession] = {}
        self._targets: dict[str, set[str]] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._warned = False

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Nothing to create; present for the Protocol."""

    def close(self) -> None:
        """Nothing to release; the records stay readable."""

    def __len__(self) -> int:
        """Interactions plus feedback records held."""
        return len(self._order)

    # ------------------------------------------------------------------ writes

    def write(self, batch: RecordBatch) -> None:
        """Store the batch; records whose id is already stored are ignored, sessions replaced."""
        with self._lock:
            for interaction in batch.interactions:
                if interaction.id not in self._interactions:
                    self._interactions[interaction.id] = interaction.model_copy(update={"feedback_ids": []})
                    self._order[("i", interaction.id)] = None
            for fb in batch.feedback:
                if fb.id not in self._feedback:
                    self._feedback[fb.id] = fb
                    self._order[("f", fb.id)] = None
                    for target in feedback_targets(fb):
                        self._targets.setdefault(target, set()).add(fb.id)
            for session in batch.sessions:
                self._sessions[session.id] = session
            self._evict()

    def _evict(self) -> None:
        evicted = 0
        while len(self._order) > self.max_entries:
            (kind, record_id), _ = self._order.popitem(last=False)
            evicted += 1
            if kind == "i":
                del self._interactions[record_id]
                continue
            fb = self._feedback.pop(record_id)
            for target in feedback_targets(fb):
                ids = self._targets.get(target)
                if ids is not None:
                    ids.discard(record_id)
                    if not ids:
                        del self._targets[target]
        if evicted:
            self.evictions += evicted
            if not self._warned:
                self._warned = True
                logger.warning(
                    "memory storage is full (max_entries=%d): the oldest records are being evicted", self.max_entries
                )

    # ------------------------------------------------------------------ reads

    def _filled(self, interaction: Interaction) -> Interaction:
        return interaction.model_copy(update={"feedback_ids": sorted(self._targets.get(interaction.id, ()))})

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id, ``feedback_ids`` filled, or None."""
        with self._lock:
            interaction = self._interactions.get(interaction_id)
            return None if interaction is None else self._filled(interaction)

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        return self._feedback.get(feedback_id)

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The session with this id, with the ids of its interactions and feedback, or None."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            interaction_ids = set(session.interaction_ids)
            interaction_ids.update(i.id for i in self._interactions.values() if i.session_id == session_id)
            feedback_ids = set(session.feedback_ids)
            feedback_ids.update(f.id for f in self._feedback.values() if f.session_id == session_id)
            return session.model_copy(
                update={"interaction_ids": sorted(interaction_ids), "feedback_ids": sorted(feedback_ids)}
            )

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Those of ``interaction_ids`` that are not stored."""
        return {iid for iid in interaction_ids if iid not in self._interactions}

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter`` in id order (a snapshot taken when iteration starts)."""
        with self._lock:
            snapshot = [self._interactions[k] for k in sorted(self._interactions)]
            targets = {k: sorted(v) for k, v in self._targets.items()}
            feedback = dict(self._feedback)

        def matching() -> Iterator[Interaction]:
            for interaction in snapshot:
                ids = targets.get(interaction.id, [])
                if matches_interaction(interaction, filter, (feedback[fid] for fid in ids if fid in feedback)):
                    yield interaction.model_copy(update={"feedback_ids": ids})

        return paginate(matching(), filter)

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter`` in id order (a snapshot taken when iteration starts)."""
        with self._lock:
            snapshot = [self._feedback[k] for k in sorted(self._feedback)]
            models = {k: i.model for k, i in self._interactions.items()}
        return paginate(
            (f for f in snapshot if matches_feedback(f, filter, models.get(f.interaction_id))), filter
        )

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """Aggregates over interactions and feedback whose timestamp is in [start_time, end_time)."""
        with self._lock:
            interactions = list(self._interactions.values())
            feedback = list(self._feedback.values())
        return compute_stats(interactions, feedback, start_time, end_time)
