"""The capture worker: turns finished calls into records, off the caller's thread.

One daemon thread (woken every 50 ms) drains the deque the hot path appends
to: it builds :class:`~rlhfkit.Interaction` records, runs instrumentors and
middleware, updates the metrics, fires callbacks and events, keeps records in
the bounded buffer and delivers them in batches to the destinations. Reading
methods call :meth:`Worker.process` first, so they see every finished call.
On the worker the GIL is released every :data:`_SLICE_S` of work, so that a
caller thread waking up from I/O never waits a whole switch interval behind it,
and the worker's rounds wait while callers are busy making calls back to back
(see :meth:`Worker.callers_busy`): the records are built in the pauses, not
while a caller needs the GIL.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._models import ContextData, Feedback, Interaction
from ..errors import ValidationError
from ._buffer import Destination, LoggerDestination, RecordBuffer, StorageDestination
from ._build import interaction_from_call, interaction_from_captured
from ._calls import Call
from ._capture import CapturedCall
from ._chain import AsyncRunner, Instrumentor, Middleware, run_chain
from ._config import InstrumentationConfig
from ._context import process_context
from ._metrics import MetricsTracker

__all__ = ["EVENTS", "Accepted", "Worker"]

logger = logging.getLogger("rlhfkit.instrument")

EVENTS = ("interaction-captured", "feedback-captured", "error-captured", "buffer-full", "flushed")
_POLL_S = 0.05
# The longest the worker holds the GIL between two releases while records are
# waiting. A release (time.sleep(0)) is what lets a caller thread that woke up
# from I/O take the GIL at once, but it costs tens of microseconds of CPU, more
# than building a record: releasing after every record doubled the worker's cost.
_SLICE_S = 0.0002
# The worker's rounds wait while callers are busy: until no call has finished for
# _QUIET_S, unless _DEFER_MAX items are pending or the oldest finished _DEFER_MAX_S ago.
_QUIET_S = 0.005
_DEFER_MAX = 64
_DEFER_MAX_S = 0.5


def _release_gil() -> None:
    time.sleep(0)


class Accepted:
    """A record that already went through the chain on the caller's thread (capture_interaction)."""

    __slots__ = ("record",)

    def __init__(self, record: Interaction) -> None:
        self.record = record


class Worker:
    """The record path of one instrumentation: pending calls → records → buffer → destinations."""

    def __init__(
        self, config: InstrumentationConfig, rlhf_logger: Any = None, storage_backend: Any = None
    ) -> None:
        self.config = config
        self.destinations: list[Destination] = self._make_destinations(rlhf_logger, storage_backend)
        self.pending: deque[Any] = deque()
        self.submit = self.pending.append
        self.lock = threading.RLock()
        self._in_process = False
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.stopped = False
        self.buffer = RecordBuffer(config.max_buffer_size)
        self.metrics = MetricsTracker()
        self.instrumentors: list[Instrumentor] = []
        self.middleware: list[Middleware] = []
        self.handlers: dict[str, list[Callable[[Any], Any]]] = {event: [] for event in EVENTS}
        self.runner = AsyncRunner()
        self._base_context: ContextData | None = None
        self._next_flush = time.monotonic() + config.flush_interval_s
        self.thread: threading.Thread | None = None
        self.start()

    def _make_destinations(self, rlhf_logger: Any, storage_backend: Any) -> list[Destination]:
        cfg = self.config
        destinations: list[Destination] = []
        if rlhf_logger is not None:
            if not callable(getattr(rlhf_logger, "log_record", None)):
                raise ValidationError("logger", "must be an RLHFLogger (with log_record)", rlhf_logger)
            destinations.append(LoggerDestination(rlhf_logger))
        if storage_backend is not None:
            if not callable(getattr(storage_backend, "write", None)):
                raise ValidationError(
                    "storage_backend", "must implement the Storage protocol (write)", storage_backend
                )
            destinations.append(StorageDestination(lambda: storage_backend))
        elif cfg.storage == "local":

            def local() -> Any:
                from ..storage.local import LocalStorage

                return LocalStorage(data_dir=cfg.data_dir or "./rlhf-data")

            destinations.append(StorageDestination(local))
        elif cfg.storage == "remote":

            def remote() -> Any:
                from ..storage.remote import RemoteStorage

                return RemoteStorage(cfg.remote_endpoint or "", api_key=cfg.api_key, spool_dir=cfg.spool_dir)

            destinations.append(StorageDestination(remote))
        return destinations

    def start(self) -> None:
        """Start the daemon thread."""
        self.thread = threading.Thread(target=self._run, name="rlhfkit-instrumentation", daemon=True)
        self.thread.start()

    def after_fork(self) -> None:
        """In a forked child: fresh lock, events and thread."""
        # The parent still owns (and delivers) what was pending when it forked.
        self.lock = threading.RLock()
        self._in_process = False
        self.pending.clear()
        self.buffer.undelivered.clear()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.runner = AsyncRunner()
        if not self.stopped:
            self.start()

    def _run(self) -> None:
        stop, wake = self.stop_event, self.wake
        while not stop.is_set():
            wake.wait(_POLL_S)
            wake.clear()
            try:
                while self.pending and not stop.is_set() and not self.callers_busy():
                    self.process(until_busy=True)
                if self.destinations and time.monotonic() >= self._next_flush:
                    with self.lock:
                        self.deliver(everything=True)
            except Exception:
                logger.exception("rlhfkit instrumentation worker failed a round")

    def callers_busy(self) -> bool:
        """Whether a call finished less than :data:`_QUIET_S` ago, and the pending ones may wait longer.

        A thread that just finished a call is likely busy with the next one: the
        worker leaves it the GIL, up to :data:`_DEFER_MAX` pending items or
        :data:`_DEFER_MAX_S` of waiting. (While a caller waits on a slow model,
        no call finishes and the worker goes ahead.)
        """
        pending = self.pending
        try:
            newest, oldest = pending[-1], pending[0]
        except IndexError:
            return False
        if type(newest) is not Call or newest.t_end is None or len(pending) >= _DEFER_MAX:
            return False
        now = time.perf_counter()
        if now - newest.t_end >= _QUIET_S:
            return False
        return not (type(oldest) is Call and oldest.t_end is not None and now - oldest.t_end >= _DEFER_MAX_S)

    def process(self, until_busy: bool = False) -> None:
        """Turn every pending call into a record (under the lock; re-entrant calls return at once).

        With ``until_busy`` (the worker's own rounds), stop early, leaving the
        rest pending, once :meth:`callers_busy`.
        """
        with self.lock:
            if self._in_process:
                return
            self._in_process = True
            try:
                pending = self.pending
                # On the worker, let go of the GIL every slice, so a caller
                # thread waking up from I/O never waits a whole switch interval.
                on_worker = threading.current_thread() is self.thread
                clock = time.perf_counter
                release_at = clock() + _SLICE_S
                while pending:
                    self._handle(pending.popleft())
                    if on_worker and clock() >= release_at:
                        if until_busy and self.callers_busy():
                            return
                        time.sleep(0)
                        release_at = clock() + _SLICE_S
                if self.destinations and self.buffer.undelivered:
                    only_logger = all(isinstance(d, LoggerDestination) for d in self.destinations)
                    self.deliver(everything=only_logger)
            finally:
                self._in_process = False

    def context_base(self) -> ContextData:
        """The process's side of the context, computed once."""
        if self._base_context is None:
            cfg = self.config
            self._base_context = process_context(
                app_version=cfg.app_version, environment=cfg.environment, custom=cfg.custom_context
            )
        return self._base_context

    def _handle(self, item: Any) -> None:
        try:
            if type(item) is Call:
                if item.error is not None and not self.config.capture_errors:
                    return
                base = self.context_base() if self.config.collect_context else None
                result = self.chain(interaction_from_call(item, base, self.config.capture_metrics))
                if result is not None:
                    self.accept(result)
                return
            if isinstance(item, Feedback):
                self.accept_feedback(item)
                return
            if isinstance(item, Accepted):
                self.accept(item.record)
                return
            if isinstance(item, Call | CapturedCall):
                if item.error is not None and not self.config.capture_errors:
                    return
                base = self.context_base() if self.config.collect_context else None
                build = interaction_from_call if isinstance(item, Call) else interaction_from_captured
                interaction = build(item, base, self.config.capture_metrics)  # type: ignore[arg-type]
                result = self.chain(interaction)
                if result is not None:
                    self.accept(result)
        except Exception:
            self.metrics.pipeline_errors += 1
            logger.exception("rlhfkit could not build a captured record")

    def chain(self, interaction: Interaction) -> Interaction | None:
        """``interaction`` after the instrumentors and middleware, or None when dropped."""
        if not self.instrumentors and not self.middleware:
            return interaction

        def count_error() -> None:
            self.metrics.pipeline_errors += 1

        return run_chain(
            interaction, list(self.instrumentors), list(self.middleware), self.runner, count_error
        )

    def accept(self, interaction: Interaction) -> None:
        """Keep, count and announce an interaction; make room first when the buffer is full."""
        buffer, config = self.buffer, self.config
        if buffer.full:
            self._on_full()
        buffer.add_interaction(interaction, bool(self.destinations))
        self.metrics.interaction(interaction, config.capture_usage_patterns)
        callback = config.on_interaction_captured
        if callback is not None:
            self.call(callback, interaction)
        handlers = self.handlers
        if handlers["interaction-captured"]:
            self.emit("interaction-captured", interaction)
        if handlers["error-captured"] and interaction.error is not None:
            self.emit("error-captured", interaction)

    def accept_feedback(self, feedback: Feedback) -> None:
        """Keep, count and announce a feedback record."""
        if self.buffer.full:
            self._on_full()
        self.buffer.add(feedback, deliverable=bool(self.destinations))
        self.metrics.feedback_for(feedback.interaction_id)
        self.call(self.config.on_feedback_captured, feedback)
        self.emit("feedback-captured", feedback)

    def _on_full(self) -> None:
        snapshot = list(self.buffer.interactions.values())
        self.emit("buffer-full", snapshot)
        self.call(self.config.on_buffer_full, snapshot)
        self.deliver(everything=True)
        evicted, dropped = self.buffer.let_go()
        self.metrics.evicted += evicted
        self.metrics.dropped += dropped

    def deliver(self, everything: bool) -> None:
        """Hand undelivered records to the destinations (only full batches unless ``everything``)."""
        self._next_flush = time.monotonic() + self.config.flush_interval_s
        # A batch holds the GIL for a while (serialising, then writing): on the
        # worker, let a waiting caller thread run before each one.
        pause = _release_gil if threading.current_thread() is self.thread else None
        delivered, failures = self.buffer.deliver(self.destinations, self.config.batch_size, everything, pause)
        self.metrics.failed_uploads += failures
        if delivered:
            self.emit("flushed", delivered)

    def call(self, callback: Callable[[Any], Any] | None, payload: Any) -> None:
        """Call a user callback (awaiting a coroutine on the runner); its failures are logged."""
        if callback is None:
            return
        try:
            result = callback(payload)
            if inspect.isawaitable(result):
                self.runner.run(result)
        except Exception:
            logger.exception("rlhfkit callback %r failed", callback)

    def emit(self, event: str, payload: Any) -> None:
        """Call every handler of ``event``."""
        handlers = self.handlers[event]
        if not handlers:
            return
        for handler in list(handlers):
            self.call(handler, payload)

    def flush(self, timeout_s: float) -> int:
        """Process what is pending and deliver every buffered record; the number still undelivered."""
        deadline = time.monotonic() + timeout_s
        if not self.lock.acquire(timeout=timeout_s):
            return len(self.buffer.undelivered) + len(self.pending)
        try:
            self.process()
            self.deliver(everything=True)
            remaining = len(self.buffer.undelivered)
        finally:
            self.lock.release()
        for destination in self.destinations:
            target = (
                getattr(destination, "storage", None) if isinstance(destination, StorageDestination) else None
            )
            if isinstance(destination, LoggerDestination):
                target = destination.logger
            flush = getattr(target, "flush", None)
            if callable(flush):
                try:
                    left = flush(max(0.0, deadline - time.monotonic()))
                    remaining += left if isinstance(left, int) else 0
                except Exception:
                    logger.exception("rlhfkit could not flush a destination")
        return remaining

    def stop(self) -> None:
        """Stop the thread, close the destinations and the async runner."""
        self.stopped = True
        self.stop_event.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=2)
        for destination in self.destinations:
            try:
                destination.close()
            except Exception:
                logger.exception("rlhfkit could not close a destination")
        self.runner.close()
        for handlers in self.handlers.values():
            handlers.clear()
        self.instrumentors.clear()
        self.middleware.clear()
