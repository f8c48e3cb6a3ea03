"""A queue for SQLite's write lock that hands it on as soon as it is free.

SQLite lets one writer in at a time; the others wait in its busy handler,
which sleeps between tries (1 ms, then 2, 5, 10 ... up to 100 ms). With
several processes writing one file (``rlhfkit serve --workers N``, or
several app processes) most of the time went to those sleeps: two collector
workers stored fewer batches than one. A :class:`WriteGate` makes writers
queue on an ``flock`` of a small side file (``<database>-writer``) before
they begin their transaction; the kernel wakes the next one the moment the
lock is released, so the processes prepare their batches in parallel and
write one after the other without sleeping. SQLite's own locking still
guards the data: a writer that does not use the gate (another program, a
migration) is waited for by the busy handler as before.

Where ``flock`` is missing (Windows) or the side file cannot be created (a
read-only directory), the gate lets everyone through and SQLite's busy
handler does the queueing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator

__all__ = ["WriteGate"]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_gates: weakref.WeakSet[WriteGate] = weakref.WeakSet()


class WriteGate:
    """Writers of one SQLite file, in this process and others, pass one at a time."""

    def __init__(self, database_path: str) -> None:
        self.path = database_path + "-writer"
        self._threads = threading.Lock()  # flock does not exclude threads sharing one descriptor
        self._fd: int | None = None
        self._unavailable = fcntl is None
        _gates.add(self)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate for the block (a transaction that writes)."""
        with self._threads:
            fd = self._open()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)  # releases the GIL while it waits
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _open(self) -> int | None:
        if self._fd is None and not self._unavailable:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                self._unavailable = True
        return self._fd

    def _after_fork(self) -> None:
        # The child gets its own descriptor (a lock belongs to an open file, which fork shares)
        # and a fresh thread lock (another thread may have held the parent's at the fork).
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._threads = threading.Lock()

    def close(self) -> None:
        """Close the side file's descriptor (the file stays, for the other processes)."""
        with self._threads:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _reset_after_fork() -> None:
    for gate in list(_gates):
        gate._after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)
