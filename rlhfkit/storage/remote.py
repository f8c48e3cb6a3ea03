"""RemoteStorage: records sent to an rlhfkit collector, losslessly.

``write`` spools the batch to local disk and returns; a background
:class:`~rlhfkit._delivery.Sender` posts it to the collector's
``/v1/interactions/batch`` with retries, and replays what is left after a
restart. Reads call the collector's GET endpoints.

Example::

    storage = RemoteStorage("http://collector:8484", api_key="rk_...", spool_dir="/var/spool/rlhf")
    storage.write(RecordBatch(interactions=[...]))
    remaining = storage.close(timeout_s=5)   # records still undelivered (kept in the spool)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._delivery import HttpSink, Sender, SpooledDelivery
from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RecordBatch,
    utc_now,
)
from ..errors import ConfigurationError, StorageError, ValidationError, require

__all__ = ["RemoteStorage", "batch_bodies"]

logger = logging.getLogger("rlhfkit.storage.remote")

INGEST_PATH = "/v1/interactions/batch"
_PAGE = 500


def batch_bodies(batch: RecordBatch, max_bytes: int = 4 * 1024 * 1024) -> Iterator[tuple[bytes, int]]:
    """The JSON bodies of ``POST /v1/interactions/batch`` for ``batch``, with their record counts.

    Each body is the spec's ``{sessionId, interactions, timestamp}`` plus our
    ``feedback`` and ``sessions`` lists, records in rlhfkit's own field names.
    A batch whose JSON exceeds ``max_bytes`` is split (interactions first,
    so feedback never precedes the interactions it is about); a single
    record larger than that travels alone.
    """
    # The collector gives sessionId to interactions without one: only send it when all share it.
    shared = {i.session_id for i in batch.interactions}
    session_id = shared.pop() if len(shared) == 1 else None
    head = b'{"sessionId":' + json.dumps(session_id).encode()
    tail = b',"timestamp":' + str(int(utc_now().timestamp() * 1000)).encode() + b"}"
    pieces: list[tuple[str, bytes]] = [
        *(("interactions", i.model_dump_json(exclude_defaults=True).encode()) for i in batch.interactions),
        *(("feedback", f.model_dump_json(exclude={"data": {"weighted_score"}}).encode()) for f in batch.feedback),
        *(("sessions", s.model_dump_json().encode()) for s in batch.sessions),
    ]
    group: list[tuple[str, bytes]] = []
    size = len(head) + len(tail) + 64
    for kind, piece in pieces:
        if group and size + len(piece) + 1 > max_bytes:
            yield _assemble(head, tail, group), len(group)
            group, size = [], len(head) + len(tail) + 64
        group.append((kind, piece))
        size += len(piece) + 1
    if group:
        yield _assemble(head, tail, group), len(group)


def _assemble(head: bytes, tail: bytes, group: list[tuple[str, bytes]]) -> bytes:
    parts = [head]
    for kind in ("interactions", "feedback", "sessions"):
        items = [piece for k, piece in group if k == kind]
        parts.append(b',"' + kind.encode() + b'":[' + b",".join(items) + b"]")
    parts.append(tail)
    return b"".join(parts)


def _split_url(url: str) -> tuple[str, str]:
    """(ingest URL, base URL for reads) from what the user configured."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(f"remote url must be http(s)://host[:port][/path], got {url!r}")
    path = parts.path.rstrip("/")
    if not path:
        base = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        return base + INGEST_PATH, base
    ingest = urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))
    base_path = path[: -len(INGEST_PATH)] if path.endswith(INGEST_PATH) else path
    return ingest, urlunsplit((parts.scheme, parts.netloc, base_path, "", ""))


def _default_spool_dir(ingest_url: str) -> Path:
    root = os.environ.get("RLHFKIT_SPOOL_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rlhfkit", "spool"
    )
    return Path(root) / hashlib.sha256(ingest_url.encode()).hexdigest()[:16]


class RemoteStorage(SpooledDelivery):
    """A :class:`~rlhfkit.storage.base.Storage` backed by an rlhfkit collector.

    ``url`` is the collector's address (``http://collector:8484``); a URL with
    a path (the instrumentation's ``remote_endpoint``) is posted to as given,
    and reads go to that path's prefix (without ``/v1/interactions/batch``).
    ``api_key`` defaults to ``RLHFKIT_API_KEY``; ``spool_dir`` to
    ``RLHFKIT_SPOOL_DIR`` or ``~/.cache/rlhfkit/spool``, one subdirectory per
    collector URL. Batches above ``max_batch_bytes`` of JSON are sent as
    several requests (the collector refuses bodies above 10 MB by default).

    Reads first wait (up to ``timeout_s``) for this storage's pending records
    to be delivered, so that they see its own writes.

    Attributes: ``pending`` (records not yet delivered), ``failed_uploads``
    (records the collector refused; kept under ``<spool>/failed``),
    ``spool_full_drops`` (records refused because the spool was full).
    ``missing_interactions`` always returns an empty set: the collector
    checks feedback targets itself and refuses a batch that names an unknown
    interaction.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        timeout_s: float = 10.0,
        max_spool_mb: float = 1024,
        compress: bool = False,
        max_backoff_s: float = 10.0,
        max_batch_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        if timeout_s <= 0:
            raise ValidationError("timeout_s", "must be positive", timeout_s)
        if max_spool_mb <= 0:
            raise ValidationError("max_spool_mb", "must be positive", max_spool_mb)
        if max_batch_bytes < 1024:
            raise ValidationError("max_batch_bytes", "must be at least 1024", max_batch_bytes)
        self.url = url
        self.max_batch_bytes = max_batch_bytes
        self.ingest_url, self.base_url = _split_url(url)
        self.api_key = api_key if api_key is not None else os.environ.get("RLHFKIT_API_KEY")
        self.timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self.spool_dir = Path(spool_dir) if spool_dir is not None else _default_spool_dir(self.ingest_url)
        require("httpx", "remote")
        sink = HttpSink(self.ingest_url, headers=self._headers, timeout_s=timeout_s, compress=compress)
        self.sender = Sender(
            sink,
            self.spool_dir,
            max_spool_bytes=int(max_spool_mb * 1024 * 1024),
            max_backoff_s=max_backoff_s,
            name="rlhfkit-remote-sender",
        )
        self._client: Any = None
        self._client_pid = 0

    # ------------------------------------------------------------------ counters

    def retry_failed(self) -> int:
        """Send the batches the collector refused again (kept under ``<spool>/failed``); return their records."""
        return self.sender.retry_failed()

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Nothing to create: the spool directory exists from construction."""

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what can be delivered within ``timeout_s``, stop, and return the records left.

        Records left stay in the spool and are sent by the next RemoteStorage
        on the same spool directory.
        """
        remaining = self.sender.close(timeout_s)
        if self._client is not None and self._client_pid == os.getpid():
            self._client.close()
        self._client = None
        if remaining:
            logger.warning("%d records not yet delivered remain in the spool %s", remaining, self.spool_dir)
        return remaining

    # ------------------------------------------------------------------ writes

    def write(self, batch: RecordBatch) -> None:
        """Spool ``batch`` for delivery (local disk only); raises StorageError when the spool is full.

        A batch larger than ``max_batch_bytes`` is spooled as several bodies, so
        that none exceeds the collector's body limit.
        """
        for body, records in batch_bodies(batch, self.max_batch_bytes):
            self.sender.submit(body, records=records)

    # ------------------------------------------------------------------ reads

    def _http(self) -> Any:
        if self._client is None or self._client_pid != os.getpid():
            httpx = require("httpx", "remote")
            self._client = httpx.Client(base_url=self.base_url, headers=self._headers, timeout=self.timeout_s)
            self._client_pid = os.getpid()
        return self._client

    def _get(self, path: str, params: Any = None) -> Any:
        httpx = require("httpx", "remote")
        if self.sender.pending:  # read your own writes, when the collector takes them in time
            self.sender.flush(self.timeout_s)
        try:
            response = self._http().get(path, params=params)
        except httpx.HTTPError as exc:
            raise StorageError(f"collector {self.base_url} unreachable: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            raise StorageError(f"GET {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id (``feedback_ids`` filled), or None."""
        body = self._get(f"/v1/interactions/{_quote(interaction_id)}")
        return None if body is None else Interaction.model_validate(body["interaction"])

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        return next(self.iter_feedback(FeedbackFilter(ids=[feedback_id], limit=1)), None)

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The session with this id, or None."""
        body = self._get(f"/v1/sessions/{_quote(session_id)}")
        return None if body is None else FeedbackSession.model_validate(body)

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Always empty: the collector refuses feedback about unknown interactions itself."""
        return set()

    def _pages(self, path: str, filter: InteractionFilter | FeedbackFilter) -> Iterator[dict[str, Any]]:
        params = filter_params(filter)
        total = filter.limit
        seen = 0
        while True:
            page = _PAGE if total is None else min(_PAGE, total - seen)
            if page <= 0:
                return
            params["limit"] = page
            body = self._get(path, params=params)
            if body is None:
                return
            for item in body["data"]:
                seen += 1
                yield item
            cursor = body.get("next_cursor")
            if not cursor:
                return
            params["after_id"] = cursor
            params.pop("offset", None)

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter``, paged from the collector in id order."""
        for item in self._pages("/v1/interactions", filter):
            yield Interaction.model_validate(item)

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter``, paged from the collector in id order."""
        for item in self._pages("/v1/feedback", filter):
            item.get("data", {}).pop("weighted_score", None)
            yield Feedback.model_validate(item)

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """The collector's ``GET /v1/stats`` for [start_time, end_time)."""
        params = {k: v.isoformat() for k, v in (("start_time", start_time), ("end_time", end_time)) if v}
        body = self._get("/v1/stats", params=params)
        return FeedbackStats.model_validate(_strip_computed(body or {}))


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def filter_params(filter: InteractionFilter | FeedbackFilter) -> dict[str, Any]:
    """``filter`` as query parameters of the collector (lists repeated, times ISO 8601)."""
    params: dict[str, Any] = {}
    for name, value in filter.model_dump(exclude_none=True, exclude_defaults=True).items():
        if isinstance(value, datetime):
            params[name] = value.isoformat()
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, list):
            params[name] = [str(v.value if hasattr(v, "value") else v) for v in value]
        elif hasattr(value, "value"):
            params[name] = value.value
        else:
            params[name] = value
    return params


def _strip_computed(stats: dict[str, Any]) -> dict[str, Any]:
    """Drop the computed fields the server adds, which the model refuses as input."""
    stats = dict(stats)
    stats.pop("feedback_rate", None)
    for key, computed in (("binary", "ratio"), ("comparative", "win_rate_by_model")):
        if isinstance(stats.get(key), dict):
            stats[key] = {k: v for k, v in stats[key].items() if k != computed}
    return stats
