"""ZeroDB over HTTP: one request helper, and the sink that delivers spooled batches.

:class:`ZeroDBHttp` sends one request and classifies the answer the way the
delivery machinery expects (:mod:`rlhfkit._delivery`): connection errors,
timeouts, 408, 425, 429 and 5xx raise :class:`~rlhfkit._delivery.RetryLater`
(with the server's Retry-After); any other 4xx raises
:class:`~rlhfkit.errors.DeliveryError` carrying the server's ``detail``.

:class:`ZeroDBSink` is the :class:`~rlhfkit._delivery.Sink` of
:class:`~rlhfkit.storage.zerodb.ZeroDBStorage`. ZeroDB documents no multi-row
insert, so one spooled batch becomes one row request per record, at most
``max_in_flight`` at a time. Before inserting, the sink looks the batch's ids
up, so a batch delivered again (its reply was lost, a row of it was
throttled, the process restarted) inserts only the rows still missing.
Batching, retries, backoff and the spool stay in the sender.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import quote

from .._delivery import RetryLater, _retry_after
from ..errors import DeliveryError, require
from . import _zerodb_rows as rows_
from . import _zerodb_wire as wire

__all__ = ["RowsRefused", "ZeroDBHttp", "ZeroDBSink"]

logger = logging.getLogger("rlhfkit.storage.zerodb")

_ID_CHUNK = 500
_VECTORS_REMEMBERED = 100_000


class RowsRefused(DeliveryError):
    """ZeroDB refused ``records`` rows of a batch for good; the batch's other rows are stored."""

    def __init__(self, message: str, status_code: int | None, records: int) -> None:
        super().__init__(message, status_code=status_code)
        self.records = records


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return str(response.text[:300])
    detail = body.get(wire.DETAIL) if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:300]


_live: weakref.WeakSet[ZeroDBHttp] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A thread of the parent may have held the lock, or been building the
    # client, at the moment of the fork; that thread does not exist here.
    for http in list(_live):
        http._lock = threading.Lock()
        http._client = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class ZeroDBHttp:
    """One httpx client on ``base_url + path_prefix`` with the auth headers; re-created after fork."""

    def __init__(self, base_url: str, path_prefix: str, headers: dict[str, str], timeout_s: float, pool: int) -> None:
        self.root = base_url.rstrip("/") + ("/" + path_prefix.strip("/") if path_prefix.strip("/") else "")
        self.headers = headers
        self.timeout_s = timeout_s
        self.pool = pool
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        _live.add(self)

    def client(self) -> Any:
        """The httpx client of this process (made on first use, and again after fork)."""
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                httpx = require("httpx", "remote")
                limits = httpx.Limits(max_connections=self.pool, max_keepalive_connections=self.pool)
                self._client = httpx.Client(timeout=self.timeout_s, headers=self.headers, limits=limits)
                self._pid = os.getpid()
            return self._client

    def request(self, method: str, path: str, body: Any = None, *, missing_ok: bool = False) -> Any:
        """Send one request; the decoded JSON answer, or None for a 404 when ``missing_ok``."""
        httpx = require("httpx", "remote")
        try:
            response = self.client().request(method, self.root + path, json=body)
        except httpx.HTTPError as exc:  # refused, reset, timed out, ...
            raise RetryLater(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status < 300:
            return response.json() if response.content else None
        if status == 404 and missing_ok:
            return None
        detail = _detail(response)
        if status in (408, 425, 429) or status >= 500:
            retry_after = _retry_after(response.headers.get(wire.RETRY_AFTER_HEADER))
            raise RetryLater(f"{method} {path}: HTTP {status}: {detail}", retry_after)
        raise DeliveryError(f"ZeroDB refused {method} {path}: HTTP {status}: {detail}", status_code=status)

    def query(self, table_path: str, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every row matching ``filters``, paged through ``has_more``; nothing when the table is missing."""
        skip = 0
        for _ in range(1_000_000):
            body = {wire.FILTERS: filters, wire.LIMIT: wire.MAX_LIMIT, wire.SKIP: skip}
            page = self.request("POST", table_path, body, missing_ok=True)
            if page is None:
                return
            data = page.get(wire.DATA) or []
            yield from data
            if not page.get(wire.HAS_MORE) or not data:
                return
            skip += len(data)

    def close(self) -> None:
        """Close the connection pool (in the process that opened it)."""
        with self._lock:
            if self._client is not None and self._pid == os.getpid():
                self._client.close()
            self._client = None


class ZeroDBSink:
    """Deliver one spooled batch (``{"rows": [row_data, ...]}``) as concurrent row requests.

    Called only from the sender's thread. Raises
    :class:`~rlhfkit._delivery.RetryLater` when any request should be tried
    again (the batch is sent again later; rows already stored are skipped),
    and :class:`RowsRefused` when rows were refused for good, naming how many.
    ``project_id`` comes URL-quoted, as it goes in paths.
    """

    def __init__(
        self,
        http: ZeroDBHttp,
        *,
        project_id: str,
        table_name: str,
        vector_namespace: str,
        embedding: Callable[[str], Sequence[float]] | None,
        max_in_flight: int,
    ) -> None:
        self.http = http
        self.table_name = table_name
        self.vector_namespace = vector_namespace
        self.embedding = embedding
        self.max_in_flight = max_in_flight
        table = quote(table_name, safe="")
        self.tables_path = wire.TABLES_PATH.format(project_id=project_id)
        self.rows_path = wire.ROWS_PATH.format(project_id=project_id, table=table)
        self.query_path = wire.QUERY_PATH.format(project_id=project_id, table=table)
        self.row_path = wire.ROW_PATH.replace("{project_id}", project_id).replace("{table}", table)
        self.upsert_path = wire.VECTOR_UPSERT_PATH.format(project_id=project_id)
        self.vector_failures = 0
        self.embedding_failures = 0
        self._tables_ready = False
        self._vectors_done: set[str] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._closing = False

    # ------------------------------------------------------------------ the Sink method

    def send(self, body: bytes) -> None:
        """Store every row of the batch that is not stored yet, and upsert its vectors."""
        try:
            rows = json.loads(body)["rows"]
        except (ValueError, KeyError, TypeError) as exc:  # not ours, or damaged: keep it aside, never loop on it
            raise DeliveryError(f"spooled batch is not a ZeroDB batch: {exc}") from exc
        if not rows:
            return
        self.ensure_table()
        tasks: list[tuple[str, Any]] = []
        existing = self._existing(rows)
        for row in _unique(rows):
            found = existing.get((row[rows_.RECORD_TYPE], row[rows_.ID]))
            if found is None:
                tasks.append(("insert", row))
            elif row[rows_.RECORD_TYPE] == rows_.SESSION and found.get(wire.ROW_DATA) != row:
                tasks.append(("replace", (found[wire.ROW_ID], row)))
        if self.embedding is not None:
            tasks += [("vector", row) for row in rows if row[rows_.RECORD_TYPE] == rows_.INTERACTION
                      and row[rows_.ID] not in self._vectors_done]  # fmt: skip
        self._run(tasks)

    def ensure_table(self) -> None:
        """Create the records table unless this sink already saw it exist."""
        if self._tables_ready:
            return
        body = {
            wire.TABLE_NAME: self.table_name,
            wire.TABLE_DESCRIPTION: "rlhfkit interactions, feedback and sessions",
            wire.TABLE_SCHEMA: {wire.SCHEMA_FIELDS: dict(rows_.TABLE_FIELDS)},
        }
        try:
            self.http.request("POST", self.tables_path, body)
        except DeliveryError as exc:
            if exc.status_code not in wire.TABLE_EXISTS_STATUSES or "exist" not in str(exc).lower():
                raise
        self._tables_ready = True

    def close(self) -> None:
        """Start no more requests, let the worker threads end, and close the connection pool.

        Never waits for requests in flight: close(timeout) must return on time.
        """
        self._closing = True
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self.http.close()

    # ------------------------------------------------------------------ steps

    def _existing(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
        """The stored rows among the batch's ids, by (record_type, id); the first stored copy wins."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        ids = sorted({row[rows_.ID] for row in rows})
        for start in range(0, len(ids), _ID_CHUNK):
            filters = {rows_.ID: {wire.IN: ids[start : start + _ID_CHUNK]}}
            for stored in self.http.query(self.query_path, filters):
                data = stored.get(wire.ROW_DATA) or {}
                found.setdefault((str(data.get(rows_.RECORD_TYPE)), str(data.get(rows_.ID))), stored)
        return found

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.max_in_flight, thread_name_prefix="rlhfkit-zerodb")
            self._pool_pid = os.getpid()
        return self._pool

    def _run(self, tasks: list[tuple[str, Any]]) -> None:
        """Run ``tasks`` with at most ``max_in_flight`` in flight; stop starting new ones after a retryable failure."""
        retry: RetryLater | None = None
        refused: list[DeliveryError] = []
        pending: dict[Future[None], tuple[str, Any]] = {}
        queue = iter(tasks)
        pool = self._executor()
        while True:
            while retry is None and len(pending) < self.max_in_flight:
                task = next(queue, None)
                if task is None:
                    break
                try:
                    if self._closing:
                        raise RuntimeError("closing")
                    pending[pool.submit(self._do, *task)] = task
                except RuntimeError:  # closed while sending: the rest waits in the spool
                    retry = RetryLater("the storage is closing")
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, payload = pending.pop(future)
                try:
                    future.result()
                except RetryLater as exc:
                    retry = _later(retry, exc)
                except DeliveryError as exc:
                    if kind == "vector":
                        self.vector_failures += 1
                        logger.error("ZeroDB refused the vector of interaction %s: %s", payload[rows_.ID], exc)
                    else:
                        refused.append(exc)
        if retry is not None:
            raise retry
        if refused:
            first = refused[0]
            raise RowsRefused(
                f"{len(refused)} rows refused; first: {first}", status_code=first.status_code, records=len(refused)
            )

    def _do(self, kind: str, payload: Any) -> None:
        if kind == "insert":
            self._insert(payload)
        elif kind == "replace":
            row_id, row = payload
            self.http.request("PUT", self.row_path.format(row_id=quote(str(row_id), safe="")), {wire.ROW_DATA: row})
        else:
            self._upsert_vector(payload)

    def _insert(self, row: dict[str, Any]) -> None:
        try:
            self.http.request("POST", self.rows_path, {wire.ROW_DATA: row})
        except DeliveryError as exc:
            if exc.status_code != 404:
                raise
            self._tables_ready = False  # the table went away: create it again on the next attempt
            raise RetryLater(f"table {self.table_name} not found") from exc

    def _upsert_vector(self, row: dict[str, Any]) -> None:
        assert self.embedding is not None
        try:
            vector = [float(x) for x in self.embedding(row["prompt"])]
        except Exception:
            self.embedding_failures += 1
            logger.exception("the embedding function failed for interaction %s; no vector stored", row[rows_.ID])
            self._remember_vector(row[rows_.ID])
            return
        metadata = {k: row.get(k) for k in ("model", "provider", "session_id", "user_id") if row.get(k) is not None}
        metadata["interaction_id"] = row[rows_.ID]
        body = {
            wire.VECTOR_ID: row[rows_.ID],
            wire.VECTOR_EMBEDDING: vector,
            wire.DOCUMENT: row["prompt"],
            wire.METADATA: metadata,
            wire.NAMESPACE: self.vector_namespace,
        }
        self.http.request("POST", self.upsert_path, body)
        self._remember_vector(row[rows_.ID])

    def _remember_vector(self, interaction_id: str) -> None:
        if len(self._vectors_done) >= _VECTORS_REMEMBERED:
            self._vectors_done.clear()  # upserts are idempotent: forgetting costs a resend, never a duplicate
        self._vectors_done.add(interaction_id)


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (record_type, id): the first copy of a record, the last copy of a session."""
    seen: dict[tuple[str, str], int] = {}
    out: list[dict[str, Any]] = []
    for row in rows:
        key = (row[rows_.RECORD_TYPE], row[rows_.ID])
        if key not in seen:
            seen[key] = len(out)
            out.append(row)
        elif key[0] == rows_.SESSION:
            out[seen[key]] = row
    return out


def _later(current: RetryLater | None, new: RetryLater) -> RetryLater:
    """Keep the retry that asks to wait the longest (a Retry-After beats none)."""
    if current is None:
        return new
    if (new.retry_after_s or 0.0) > (current.retry_after_s or 0.0):
        return new
    return current
