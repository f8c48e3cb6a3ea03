"""Lossless delivery: an on-disk spool and the background sender that empties it.

Every remote backend (the rlhfkit collector, ZeroDB) hands finished batches to
one :class:`Sender`. The sender writes each batch to its spool directory (one
fsync'd file per batch) and returns; a daemon thread posts the files in order
through a :class:`Sink` and deletes each one only once the service accepted it.

Spool layout::

    spool_dir/
      p-<pid>-<token>/          one directory per live sender, locked (flock) by it
        <time_ns>-<seq>-<records>.batch
      failed/                   batches the service refused (4xx): kept, never deleted

A file name sorts in creation order and carries its record count, so replay is
in order and the pending count needs no reading. A sender that starts finds the
directories whose lock nobody holds (their process died or closed) and adopts
their files. After ``os.fork`` the child gets its own directory and thread; the
parent's files stay with the parent.

Failures are classified by the sink: :class:`RetryLater` (connection errors,
timeouts, 429, 5xx; exponential backoff with jitter, honouring Retry-After)
or :class:`~rlhfkit.errors.DeliveryError` (refused for good: moved to
``failed/`` and counted in ``failed_uploads``; a sink that stored part of the
batch sets ``records`` on the error to the number it refused).
"""

from __future__ import annotations

import atexit
import fcntl
import gzip
import logging
import os
import random
import secrets
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from .errors import DeliveryError, StorageError, require

__all__ = ["HttpSink", "RetryLater", "Sender", "Sink", "SpooledDelivery"]

logger = logging.getLogger("rlhfkit.delivery")

_SUFFIX = ".batch"
_FAILED = "failed"
_LOCK = ".lock"


class RetryLater(Exception):
    """A sink could not deliver now; try again later (after ``retry_after_s`` when known)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Sink(Protocol):
    """Where a sender delivers batches: one method, called from the sender's thread."""

    def send(self, body: bytes) -> None:
        """Deliver one spooled batch body.

        Return when the service accepted it; raise :class:`RetryLater` for a
        transient failure or :class:`~rlhfkit.errors.DeliveryError` when the
        service refused it for good.
        """


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpSink:
    """POST each batch as JSON to one URL with httpx, optionally gzip-compressed.

    Connection errors, timeouts, 408, 425, 429 and 5xx raise :class:`RetryLater`
    (with the server's Retry-After); any other 4xx raises
    :class:`~rlhfkit.errors.DeliveryError` carrying the server's message.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        compress: bool = False,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self.compress = compress
        self._client: Any = None
        self._pid = os.getpid()

    def _http(self) -> Any:
        if self._client is None or self._pid != os.getpid():
            httpx = require("httpx", "remote")
            self._client = httpx.Client(timeout=self.timeout_s, headers=self.headers)
            self._pid = os.getpid()
        return self._client

    def send(self, body: bytes) -> None:
        """POST ``body``; classify the outcome as delivered, retry later, or refused."""
        httpx = require("httpx", "remote")
        headers = {"Content-Type": "application/json"}
        if self.compress:
            body = gzip.compress(body, compresslevel=5)
            headers["Content-Encoding"] = "gzip"
        try:
            response = self._http().post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:  # connection refused, reset, timeout, ...
            raise RetryLater(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status < 300:
            return
        message = response.text[:500]
        if status in (408, 425, 429) or status >= 500:
            raise RetryLater(f"HTTP {status}: {message}", _retry_after(response.headers.get("Retry-After")))
        raise DeliveryError(f"HTTP {status} from {self.url}: {message}", status_code=status)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None


_live: weakref.WeakSet[Sender] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for sender in list(_live):
        sender._reinit_after_fork()


def _flush_all_at_exit() -> None:
    # Exit handlers run last-registered first, so this one may run before
    # those of the loggers and instrumentations: ask them to hand over what
    # they hold now, so that it is delivered before the process ends.
    for module_name in ("rlhfkit.instrument._core", "rlhfkit._batching"):
        hook = getattr(sys.modules.get(module_name), "_flush_all_at_exit", None)
        if hook is not None:
            try:
                hook()
            except Exception:
                logger.exception("flushing %s at exit failed", module_name)
    # Flush, not close: anything handed over later is still spooled, and sent
    # by the next process on the same spool directory.
    for sender in list(_live):
        try:
            remaining = sender.flush(timeout_s=sender.exit_timeout_s)
            if remaining:
                logger.warning("%d records not yet delivered stay in the spool %s", remaining, sender.root)
        except Exception:
            logger.exception("flushing the sender at exit failed")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_flush_all_at_exit)


class Sender:
    """Spool batches to disk and deliver them through ``sink`` from a daemon thread.

    ``submit`` only touches local disk; delivery, retries and replay happen on
    the sender's own thread. ``pending`` counts records not yet delivered,
    ``failed_uploads`` records refused by the service (kept under ``failed/``),
    ``spool_full_drops`` records refused because the spool reached
    ``max_spool_bytes`` (the batches of every live sender on the directory
    count; ``failed/`` does not).

    Example::

        sender = Sender(HttpSink("http://collector:8484/v1/interactions/batch"), "/var/spool/app")
        sender.submit(b'{"interactions": [...]}', records=100)
        remaining = sender.close(timeout_s=5)
    """

    def __init__(
        self,
        sink: Sink,
        spool_dir: str | os.PathLike[str],
        *,
        max_spool_bytes: int = 1024 * 1024 * 1024,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        max_retry_after_s: float = 300.0,
        adopt_interval_s: float = 5.0,
        exit_timeout_s: float = 2.0,
        name: str = "rlhfkit-sender",
    ) -> None:
        self.sink = sink
        self.root = Path(spool_dir)
        self.max_spool_bytes = max_spool_bytes
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.adopt_interval_s = adopt_interval_s
        self.exit_timeout_s = exit_timeout_s
        self.name = name
        self.failed_uploads = 0
        self.failed_batches = 0
        self.spool_full_drops = 0
        self.delivered = 0
        self.last_error: str | None = None
        self._closed = False
        self._setup()
        _live.add(self)

    # ------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = False
        self._seq = 0
        self._pending_records = 0
        self._pending_bytes = 0
        self._other_bytes = 0
        self._lock_fd: int | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / _FAILED).mkdir(exist_ok=True)
        self.dir = self._claim_own_dir()
        self._adopt_orphans()

    def _claim_own_dir(self) -> Path:
        # Built under a temporary name and renamed once locked, so that no
        # other process ever sees this directory without its lock held.
        token = secrets.token_hex(4)
        tmp = self.root / f".new-{os.getpid()}-{token}"
        tmp.mkdir()
        fd = os.open(tmp / _LOCK, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        final = self.root / f"p-{os.getpid()}-{token}"
        os.rename(tmp, final)
        self._lock_fd = fd
        return final

    def _reinit_after_fork(self) -> None:
        # The child inherited the parent's lock descriptor: close it without
        # unlocking (the parent still holds the lock) and start afresh.
        if self._lock_fd is not None:
            try:
                os.close(self._lock_fd)
            except OSError:
                pass
        self.failed_uploads = self.failed_batches = self.spool_full_drops = self.delivered = 0
        if self._closed:
            self._lock_fd = None
            return
        try:
            self._setup()
        except Exception:
            logger.exception("the sender could not set itself up after fork; records will be refused")
            self._closed = True

    def _adopt_orphans(self) -> None:
        """Move the files of directories no live sender holds into ours, and recount."""
        other = 0
        for entry in sorted(self.root.glob("p-*")):
            if entry == self.dir or not entry.is_dir():
                continue
            try:
                fd = os.open(entry / _LOCK, os.O_RDWR)
            except OSError:
                other += _dir_bytes(entry)
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    other += _dir_bytes(entry)
                    continue
                moved = 0
                for path in entry.iterdir():
                    if path.name.endswith(_SUFFIX):
                        os.rename(path, self.dir / path.name)
                        moved += 1
                    elif path.name != _LOCK:
                        path.unlink(missing_ok=True)  # an unacknowledged partial write
                os.unlink(entry / _LOCK)
                entry.rmdir()
                if moved:
                    logger.info("adopted %d spooled batches left by %s", moved, entry.name)
            except FileNotFoundError:
                pass  # another sender adopted it first
            except OSError:
                logger.exception("could not adopt spool directory %s", entry)
            finally:
                os.close(fd)
        self._remove_abandoned_claims()
        _fsync_dir(self.dir)
        with self._cond:
            records = size = 0
            for path in self.dir.glob(f"*{_SUFFIX}"):
                records += _records_of(path)
                size += _size(path)
            self._pending_records = records
            self._pending_bytes = size
            self._other_bytes = other
            if records:
                self._cond.notify_all()

    def _remove_abandoned_claims(self) -> None:
        """Remove half-built directories of senders that died while claiming one (they hold no batches)."""
        for entry in self.root.glob(".new-*"):
            try:
                if time.time() - entry.stat().st_mtime < 60:  # a claim takes microseconds: leave young ones
                    continue
                fd = os.open(entry / _LOCK, os.O_RDWR)
            except FileNotFoundError:
                shutil.rmtree(entry, ignore_errors=True)
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(entry, ignore_errors=True)
            except OSError:
                pass  # being claimed right now
            finally:
                os.close(fd)

    # ------------------------------------------------------------------ the caller's side

    @property
    def pending(self) -> int:
        """Records spooled by this sender and not yet delivered."""
        return self._pending_records

    def submit(self, body: bytes, records: int) -> None:
        """Spool one batch body holding ``records`` records; returns after the fsync.

        Raises :class:`~rlhfkit.errors.StorageError` (and counts the records in
        ``spool_full_drops``) when the spool is full or the disk refuses.
        """
        if self._closed:
            from .errors import ClosedError

            raise ClosedError("the sender is closed")
        with self._cond:
            if self._pending_bytes + self._other_bytes + len(body) > self.max_spool_bytes:
                self.spool_full_drops += records
                logger.error(
                    "spool %s is full (%d bytes max): %d records refused (%d so far)",
                    self.root, self.max_spool_bytes, records, self.spool_full_drops,
                )
                raise StorageError(f"spool {self.root} is full: {records} records refused")
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid():07d}{self._seq:09d}-{records}{_SUFFIX}"
        tmp = self.dir / f".{name}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            with self._cond:  # the rename and the count change together (see _recount)
                os.rename(tmp, self.dir / name)
                self._pending_records += records
                self._pending_bytes += len(body)
                self._cond.notify_all()
            _fsync_dir(self.dir)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.spool_full_drops += records
            logger.error("could not spool %d records to %s: %s", records, self.dir, exc)
            raise StorageError(f"could not spool {records} records: {exc}") from exc
        self._ensure_thread()

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for every spooled record to be delivered; return how many remain."""
        self._ensure_thread()
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cond:
            while self._pending_records > 0 and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
            return self._pending_records

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what can be delivered within ``timeout_s``, stop, and return the records left.

        What is left stays in the spool; the next sender on the same
        directory (in this or a later process) delivers it.
        """
        if self._closed:
            return self._pending_records
        deadline = time.monotonic() + max(0.0, timeout_s)
        remaining = self.flush(timeout_s)
        with self._cond:
            self._stop = True
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()) + 0.5)
        if hasattr(self.sink, "close"):
            try:
                self.sink.close()
            except Exception:
                logger.exception("closing the sink failed")
        if self._lock_fd is not None and (thread is None or not thread.is_alive()):
            if self._pending_records == 0:  # nothing left: remove the directory while still holding it
                shutil.rmtree(self.dir, ignore_errors=True)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        _live.discard(self)
        return remaining

    def retry_failed(self) -> int:
        """Queue the batches kept under ``failed/`` again (after fixing a key, say); return their records."""
        if self._closed:
            from .errors import ClosedError

            raise ClosedError("the sender is closed")
        records = 0
        with self._cond:
            for path in sorted((self.root / _FAILED).glob(f"*{_SUFFIX}")):
                try:
                    size = path.stat().st_size
                    os.rename(path, self.dir / path.name)
                except OSError:
                    continue
                records += _records_of(path)
                self._pending_records += _records_of(path)
                self._pending_bytes += size
            self._cond.notify_all()
        if records:
            _fsync_dir(self.dir)
            self._ensure_thread()
        return records

    # ------------------------------------------------------------------ the sender's thread

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` unless stopped; True when stopping."""
        with self._cond:
            if not self._stop:
                self._cond.wait(seconds)
            return self._stop

    def _run(self) -> None:
        attempt = 0
        last_adopt = time.monotonic()
        while True:
            with self._cond:
                if self._stop:
                    return
            if time.monotonic() - last_adopt > self.adopt_interval_s:
                last_adopt = time.monotonic()
                try:
                    self._adopt_orphans()
                except Exception:
                    logger.exception("scanning the spool for orphaned batches failed")
            files = sorted(self.dir.glob(f"*{_SUFFIX}"))
            if not files:
                with self._cond:
                    idle = self._pending_records == 0
                    if idle and not self._stop:
                        self._cond.wait(self.adopt_interval_s)
                if not idle:  # the count disagrees with the disk (files removed by hand): recount
                    self._adopt_orphans()
                    last_adopt = time.monotonic()
                continue
            for path in files:
                delay = self._deliver(path, attempt)
                if delay is None:
                    attempt = 0
                    continue
                attempt += 1
                if self._wait(delay):
                    return
                break

    def _deliver(self, path: Path, attempt: int) -> float | None:
        """Send one file; None when done with it, else the seconds to wait before retrying."""
        records = _records_of(path)
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            self.sink.send(body)
        except RetryLater as exc:
            self.last_error = str(exc)
            if exc.retry_after_s is not None:
                delay = min(exc.retry_after_s, self.max_retry_after_s)
            else:
                delay = random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2**attempt))
            logger.debug("delivery of %s postponed %.2fs: %s", path.name, delay, exc)
            if attempt == 3:
                logger.warning("delivery keeps failing (%s); records stay in the spool %s", exc, self.root)
            return max(delay, 0.01)
        except DeliveryError as exc:
            # A sink that stores records one by one may have stored part of the
            # batch: its error then says in ``records`` how many were refused.
            refused = getattr(exc, "records", None)
            refused = records if not isinstance(refused, int) else max(0, min(refused, records))
            self.last_error = str(exc)
            self.failed_uploads += refused
            self.delivered += records - refused
            self.failed_batches += 1
            target = self.root / _FAILED / path.name
            logger.error("%d records refused by the service, batch kept in %s: %s", refused, target, exc)
            self._forget(path, len(body), records, move_to=target)
            return None
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("the sink raised unexpectedly; retrying later")
            return random.uniform(0, min(self.max_backoff_s, self.initial_backoff_s * 2**attempt)) + 0.01
        self.delivered += records
        self._forget(path, len(body), records)
        return None

    def _forget(self, path: Path, size: int, records: int, move_to: Path | None = None) -> None:
        with self._cond:
            try:
                if move_to is not None:
                    os.rename(path, move_to)
                else:
                    path.unlink()
            except FileNotFoundError:
                return
            self._pending_records = max(0, self._pending_records - records)
            self._pending_bytes = max(0, self._pending_bytes - size)
            self._cond.notify_all()


def _records_of(path: Path) -> int:
    try:
        return int(path.name[: -len(_SUFFIX)].rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _dir_bytes(directory: Path) -> int:
    return sum(_size(p) for p in directory.glob(f"*{_SUFFIX}"))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SpooledDelivery:
    """The counters and ``flush`` of a storage backend that delivers through a :class:`Sender`.

    Mixed into the REMOTE and ZeroDB backends, which set ``self.sender``.
    """

    sender: Sender

    @property
    def pending(self) -> int:
        """Records written and not yet accepted by the service."""
        return self.sender.pending

    @property
    def delivered(self) -> int:
        """Records the service accepted (a replayed record counts once more)."""
        return self.sender.delivered

    @property
    def failed_uploads(self) -> int:
        """Records the service refused (a 4xx other than 408/425/429); ``last_error`` says why."""
        return self.sender.failed_uploads

    @property
    def spool_full_drops(self) -> int:
        """Records refused by ``write`` because the spool was full."""
        return self.sender.spool_full_drops

    @property
    def last_error(self) -> str | None:
        """The last delivery failure, with the service's message."""
        return self.sender.last_error

    def flush(self, timeout_s: float = 10.0) -> int:
        """Wait up to ``timeout_s`` for delivery; return how many records remain undelivered."""
        return self.sender.flush(timeout_s)
