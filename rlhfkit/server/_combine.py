"""Group commit: concurrent ingest requests to one storage share one write.

While as many writes to a storage as it takes at once are in progress
(``parallel_writes``: one on SQLite, a few on PostgreSQL), batches that
arrive for the same storage wait; when a write ends, one waiting request
writes all of them as one :class:`~rlhfkit.RecordBatch` (one transaction,
one commit), and each request returns when the write holding its batch has
ended. Under load this turns many small commits into fewer larger ones; on
SQLite it keeps the threads of one process from queueing on the database's
write lock (whose busy handler sleeps between tries), and on PostgreSQL a
second write lets the server store one batch while this process reads the
next.

Every batch is stored whole or not at all, as if it had been written alone:
records keep their order (the first copy of an id wins), and when a combined
write fails each batch is written again on its own, so that a request only
fails for its own records.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from .._models import RecordBatch
from ..storage.base import Storage

__all__ = ["WriteCombiner"]

logger = logging.getLogger("rlhfkit.server")


@dataclass
class _Job:
    batch: RecordBatch
    done: bool = False
    error: BaseException | None = None


@dataclass
class _Queue:
    pending: list[_Job] = field(default_factory=list)
    writing: int = 0


class WriteCombiner:
    """Writes batches to storages, combining the batches that wait for the same storage.

    ``max_records`` bounds a combined write (a batch larger than that is
    still written whole, alone).
    """

    def __init__(self, max_records: int = 5_000) -> None:
        self.max_records = max_records
        self._cond = threading.Condition()
        self._queues: dict[int, _Queue] = {}

    def write(self, storage: Storage, batch: RecordBatch) -> None:
        """Store ``batch`` in ``storage``, possibly in one transaction with other waiting batches."""
        job = _Job(batch)
        key = id(storage)
        limit = max(1, getattr(storage, "parallel_writes", 1))
        with self._cond:
            queue = self._queues.setdefault(key, _Queue())
            queue.pending.append(job)
        while not job.done:
            jobs = self._lead(queue, job, limit)
            if jobs:
                try:
                    _write_all(storage, jobs)
                finally:
                    self._release(key, queue, jobs)
        if job.error is not None:
            raise job.error

    def _lead(self, queue: _Queue, job: _Job, limit: int) -> list[_Job]:
        """Wait until ``job`` is written by another thread (then ``[]``) or this one may write (the jobs to write)."""
        with self._cond:
            while queue.writing >= limit and not job.done:
                self._cond.wait()
            if job.done:
                return []
            queue.writing += 1
            return self._take(queue)

    def _release(self, key: int, queue: _Queue, jobs: list[_Job]) -> None:
        with self._cond:
            for job in jobs:
                if not job.done:  # the write was interrupted by a BaseException
                    job.error = RuntimeError("the write holding this batch was interrupted")
                    job.done = True
            queue.writing -= 1
            if not queue.pending and not queue.writing:
                del self._queues[key]
            self._cond.notify_all()

    def _take(self, queue: _Queue) -> list[_Job]:
        """The oldest waiting jobs, up to ``max_records`` (at least one)."""
        size = 0
        count = 0
        for job in queue.pending:
            size += len(job.batch)
            if count and size > self.max_records:
                break
            count += 1
        jobs = queue.pending[:count]
        del queue.pending[:count]
        return jobs


def _write_all(storage: Storage, jobs: list[_Job]) -> None:
    if len(jobs) == 1:
        _write_one(storage, jobs[0])
        return
    combined = RecordBatch.model_construct(
        interactions=[i for job in jobs for i in job.batch.interactions],
        feedback=[f for job in jobs for f in job.batch.feedback],
        sessions=[s for job in jobs for s in job.batch.sessions],
    )
    try:
        storage.write(combined)
    except Exception:
        logger.warning(
            "a combined write of %d batches failed; writing them one by one", len(jobs), exc_info=True
        )
        for job in jobs:
            _write_one(storage, job)
    else:
        for job in jobs:
            job.done = True


def _write_one(storage: Storage, job: _Job) -> None:
    try:
        storage.write(job.batch)
    except Exception as exc:
        job.error = exc
    finally:
        job.done = True
