"""SQLite checkpoints off the write path.

In WAL mode SQLite copies committed pages from the log into the database file
(a checkpoint, with an fsync) every 1,000 pages, inside whichever commit
crosses that mark: about a third of a bulk write's time went there. A
:class:`Checkpointer` thread runs passive checkpoints after writes instead
(they never block writers or readers, and release the GIL while they work),
and the writers' own automatic checkpoint is kept only as a backstop, at
:data:`BACKSTOP_PAGES`, for when the thread falls behind.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

__all__ = ["BACKSTOP_PAGES", "Checkpointer"]

logger = logging.getLogger("rlhfkit.storage.sql")

BACKSTOP_PAGES = 16_384
"""The WAL size, in pages (64 MB at 4 KB), past which a commit checkpoints by itself."""
_PAUSE_S = 0.05
"""Time between two checkpoints at most (a burst of commits needs one, not one each)."""


class Checkpointer:
    """Passive checkpoints of one SQLite engine's database, from a thread started by the first write."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.checkpoints = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._guard = threading.Lock()

    def wrote(self) -> None:
        """Note that a write committed: a checkpoint follows soon."""
        if self._thread is None or self._pid != os.getpid():
            try:
                self._start()
            except RuntimeError:  # no new threads while the interpreter exits: the backstop applies
                return
        self._wake.set()

    def _start(self) -> None:
        with self._guard:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked child starts its own thread
            self._stop.clear()
            thread = threading.Thread(target=self._run, name="rlhfkit-sqlite-checkpoint", daemon=True)
            thread.start()
            self._thread = thread

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            self._wake.clear()
            self.checkpoint()
            self._stop.wait(_PAUSE_S)

    def checkpoint(self) -> None:
        """One passive checkpoint now (a failure is logged: the writers' backstop still applies)."""
        try:
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            finally:
                raw.close()
        except Exception:
            logger.warning("background checkpoint failed", exc_info=True)

    def stop(self) -> None:
        """Stop the thread after one last checkpoint of what was written."""
        thread = self._thread
        if thread is None or self._pid != os.getpid():
            return
        self._stop.set()
        self._wake.set()
        thread.join(timeout=10)
        self._thread = None
