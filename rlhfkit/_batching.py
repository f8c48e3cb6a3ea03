"""The one batch processor: a bounded queue drained by a daemon worker.

Every background write in rlhfkit goes through :class:`BatchProcessor`; sinks
(storage backends) never batch on their own. Its promises:

- ``submit`` costs a deque append on the caller's thread and never does I/O.
  When the queue holds ``max_queue_size`` records the caller waits for room
  (back-pressure) instead of dropping anything.
- A batch whose export raises stays queued and is retried with backoff, so an
  accepted record is never lost while the process lives.
- A batch whose export fails on the data rather than on an outage (``export``
  raises :class:`~rlhfkit.errors.ValidationError`, or any ``ValueError``,
  ``TypeError``, ``AttributeError``, ``LookupError`` or ``ArithmeticError``) is
  split until the failing records are alone; the others are exported, and each
  refused one goes to ``on_refused`` and is counted in ``refused``, instead of
  holding up every record queued behind it. Anything else (``OSError``,
  :class:`~rlhfkit.errors.StorageError`...) is an outage: retried.
- ``flush(timeout_s)`` and ``shutdown(timeout_s)`` return how many records are
  still undelivered; they never hang past their timeout.
- At interpreter exit every live processor is flushed.
- After ``os.fork`` the child starts empty with its own worker; the records
  queued before the fork are delivered by the parent alone.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["DATA_ERRORS", "BatchProcessor", "export_isolating"]

log = logging.getLogger("rlhfkit.batching")

T = TypeVar("T")

_live: weakref.WeakSet[BatchProcessor[object]] = weakref.WeakSet()

_MAX_RETRY_DELAY_S = 30.0
# Failures of the records themselves (ValidationError is a ValueError): sending them again cannot help.
DATA_ERRORS = (ValueError, TypeError, AttributeError, LookupError, ArithmeticError)
_LINGER_S = 0.02


class BatchProcessor(Generic[T]):
    """Collect items and hand them to ``export`` in batches from a worker thread.

    ``export`` receives a list of at most ``max_export_size`` items. A flush is
    triggered when ``batch_size`` items are queued or ``flush_interval_s``
    elapsed; it exports everything queued at that moment. During a burst of
    submissions the export waits for the burst to end (see :meth:`_linger`).
    """

    def __init__(
        self,
        export: Callable[[Sequence[T]], None],
        *,
        batch_size: int = 50,
        flush_interval_s: float = 5.0,
        max_queue_size: int = 100_000,
        max_export_size: int = 5_000,
        exit_timeout_s: float = 30.0,
        name: str = "rlhfkit-batcher",
        on_refused: Callable[[T, Exception], None] | None = None,
    ) -> None:
        self._export = export
        self._on_refused = on_refused
        self.refused = 0
        self.batch_size = max(1, batch_size)
        self.flush_interval_s = flush_interval_s
        self.max_queue_size = max(self.batch_size, max_queue_size)
        self.max_export_size = max(1, max_export_size)
        self.exit_timeout_s = exit_timeout_s
        self.name = name
        self.failed_exports = 0
        self._init_state()
        _live.add(self)  # type: ignore[arg-type]
        os.register_at_fork(after_in_child=self._fork_hook())

    # -- state ---------------------------------------------------------------

    def _init_state(self) -> None:
        self._queue: deque[T] = deque()
        # submit() takes its slow path once the queue holds this many records: 0 until the
        # worker runs, batch_size while no flush is requested, the queue's capacity after, -1 once closed.
        self._check_at = 0
        self._in_flight = 0
        self._cond = threading.Condition(threading.Lock())
        self._flush_requested = False
        self._urgent = False
        self._closed = False
        self._worker: threading.Thread | None = None
        self._pid = os.getpid()

    def _fork_hook(self) -> Callable[[], None]:
        ref = weakref.ref(self)

        def hook() -> None:
            processor = ref()
            if processor is not None:
                processor._after_fork_in_child()

        return hook

    def _after_fork_in_child(self) -> None:
        # The parent owns (and will deliver) whatever was queued before the fork.
        self._init_state()

    # -- the caller's side ---------------------------------------------------

    @property
    def pending(self) -> int:
        """Records accepted but not yet exported."""
        return len(self._queue) + self._in_flight

    def submit(self, item: T) -> None:
        """Queue one item. Never does I/O; waits only when the queue is full."""
        queue = self._queue
        if len(queue) < self._check_at:  # the hot path: one comparison and an append
            queue.append(item)
        else:
            self._submit_slow(item)

    def _submit_slow(self, item: T) -> None:
        if self._closed:
            from .errors import ClosedError

            raise ClosedError("this logger is closed")
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            self._wait_for_room()
        queue.append(item)
        if self._worker is None:
            self._start_worker()
        with self._cond:
            if len(queue) >= self.batch_size and not self._flush_requested:
                self._flush_requested = True
                self._cond.notify_all()
            self._update_check_at()

    def _update_check_at(self) -> None:
        """Called with the lock held, whenever a flag it reads changes."""
        if self._closed or self._worker is None:
            self._check_at = -1 if self._closed else 0
        else:
            self._check_at = self.max_queue_size if self._flush_requested else self.batch_size

    def _wait_for_room(self) -> None:
        with self._cond:
            self._flush_requested = self._urgent = True
            self._update_check_at()
            self._cond.notify_all()
            while len(self._queue) >= self.max_queue_size and self._worker_alive():
                self._cond.wait(0.1)

    def _worker_alive(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def _start_worker(self) -> None:
        with self._cond:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._worker.start()

    def flush(self, timeout_s: float | None = None) -> int:
        """Export everything queued; return how many records remain after ``timeout_s``."""
        if self.pending == 0:
            return 0
        if self._worker is None:
            self._start_worker()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._flush_requested = self._urgent = True
            self._update_check_at()
            self._cond.notify_all()
            while self.pending and self._worker_alive():
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(0.05 if remaining is None else min(remaining, 0.05))
        return self.pending

    def shutdown(self, timeout_s: float | None = 30.0) -> int:
        """Flush, stop the worker, and return how many records remain undelivered."""
        remaining = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._update_check_at()
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=0.5 if remaining else 5.0)
        if remaining:
            log.error("%s: %d records could not be stored before shutdown", self.name, remaining)
        _live.discard(self)  # type: ignore[arg-type]
        return remaining

    # -- the worker ----------------------------------------------------------

    def _run(self) -> None:
        retry_delay = 0.0
        while True:
            with self._cond:
                if not self._queue and self._closed:
                    return
                if retry_delay:
                    self._cond.wait(retry_delay)
                elif not self._flush_requested and not self._closed:
                    self._cond.wait(self.flush_interval_s)
                if self._flush_requested and not self._urgent and not self._closed:
                    self._linger()
                self._flush_requested = self._urgent = False
                self._update_check_at()
            retry_delay = self._export_queued(retry_delay)

    def _linger(self) -> None:
        """Wait, lock held, while a burst of submissions goes on, before exporting a full batch.

        A burst (a batch or more queued per :data:`_LINGER_S`) is left to the
        caller's thread: exporting meanwhile would take the GIL from it for as
        long as the export runs. The wait ends when the queue grows slower,
        reaches half its capacity, a flush or close is asked for, or the flush
        interval has passed, so records still reach storage within that interval.
        """
        deadline = time.monotonic() + self.flush_interval_s
        half_full = self.max_queue_size // 2
        size = len(self._queue)
        while True:
            self._cond.wait(_LINGER_S)
            grown, size = len(self._queue) - size, len(self._queue)
            if (
                grown < self.batch_size
                or size >= half_full
                or self._urgent
                or self._closed
                or time.monotonic() >= deadline
            ):
                return

    def _export_queued(self, retry_delay: float) -> float:
        """Export what is queued in chunks; on failure put the chunk back and back off."""
        queue = self._queue
        while queue:
            size = min(len(queue), self.max_export_size)
            chunk = [queue.popleft() for _ in range(size)]
            self._in_flight = size
            try:
                export_isolating(self._export, chunk, self._refuse)
            except Exception:
                self.failed_exports += 1
                queue.extendleft(reversed(chunk))
                self._in_flight = 0
                retry_delay = min(_MAX_RETRY_DELAY_S, max(0.05, retry_delay * 2))
                log.exception(
                    "%s: storing %d records failed; retrying in %.2fs", self.name, size, retry_delay
                )
                with self._cond:
                    self._cond.notify_all()
                return retry_delay
            self._in_flight = 0
            with self._cond:
                self._cond.notify_all()
        return 0.0

    def _refuse(self, item: T, exc: Exception) -> None:
        self.refused += 1
        if self._on_refused is None:
            log.error("%s: the backend refused a record, which is not stored: %s (%r)", self.name, exc, item)
            return
        try:
            self._on_refused(item, exc)
        except Exception:
            log.exception("%s: on_refused failed", self.name)


def export_isolating(export: Callable[[list[T]], None], items: list[T], refuse: Callable[[T, Exception], None]) -> None:
    """Export ``items``; when that fails on the data (:data:`DATA_ERRORS`), split them until each
    failing item is alone, hand it to ``refuse``, and export the others. Any other error propagates.

    Exports must be idempotent (every backend's write is, on record ids): a half exported before
    its other half fails is exported again when the whole is retried.
    """
    try:
        export(items)
    except DATA_ERRORS as exc:
        if len(items) == 1:
            refuse(items[0], exc)
            return
        middle = len(items) // 2
        export_isolating(export, items[:middle], refuse)
        export_isolating(export, items[middle:], refuse)


@atexit.register
def _flush_all_at_exit() -> None:
    for processor in list(_live):
        if processor.pending and processor._pid == os.getpid():
            processor.shutdown(processor.exit_timeout_s)
