"""ZeroDBStorage: records as rows of a ZeroDB NoSQL table, built to ZeroDB's documented REST API.

::

    storage = ZeroDBStorage("my-project-id", api_key="...", spool_dir="/var/spool/rlhf")
    storage.write(RecordBatch(interactions=[...]))      # local disk only; sent in the background
    storage.search_similar("capital of France")          # with embedding=... configured
    remaining = storage.close(timeout_s=5)               # records still undelivered (kept in the spool)

Writes go through the same :class:`~rlhfkit._delivery.Sender` as the REMOTE
backend: ``write`` spools the batch and returns; the sender's thread posts its
rows (:class:`~rlhfkit.storage._zerodb_client.ZeroDBSink`, up to
``max_in_flight`` at a time), retries 429 / 5xx / timeouts / connection errors
with backoff honouring Retry-After, keeps batches ZeroDB refused (other 4xx)
under ``<spool>/failed``, and replays the spool after a restart.

Decisions where ZeroDB's documents are silent:

* One table (``table_name``) holds interactions, feedback and sessions, told
  apart by a ``record_type`` column (see :mod:`rlhfkit.storage._zerodb_rows`).
* Record ids stay in ``row_data.id``; the service's ``row_id`` is never ours.
  Idempotency comes from looking the batch's ids up before inserting, so a
  batch sent again inserts only what is missing. Reads keep the first stored
  copy of an id should two processes ever race to insert the same record.
* The query endpoint documents no sort, so reads filter on the service what
  it can (type, ids, users, sessions, models, time), then match, sort by id
  and page in Python with the helpers every plain-Python backend shares.
  Every condition is checked again in Python, so a service that ignored the
  ``filters`` body would make reads slower, never wrong.
* Tables are created by the sender before its first delivery, not in
  :meth:`ZeroDBStorage.initialize`: constructing a logger never waits on the
  network. Reading a table that does not exist yet reads nothing.
* Reads first wait up to ``read_wait_s`` for this storage's own pending writes,
  so a process reads what it wrote.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from .._delivery import RetryLater, Sender, SpooledDelivery
from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    FeedbackType,
    Interaction,
    InteractionFilter,
    RatingData,
    RecordBatch,
)
from ..analytics._stats import (
    compute_stats,
    feedback_targets,
    matches_feedback,
    matches_feedback_summary,
    matches_interaction,
    needs_feedback,
)
from ..errors import ConfigurationError, StorageError, ValidationError, require
from . import _zerodb_rows as rows_
from . import _zerodb_wire as wire
from ._zerodb_client import ZeroDBHttp, ZeroDBSink
from .remote import _default_spool_dir

__all__ = ["ZeroDBStorage"]

logger = logging.getLogger("rlhfkit.storage.zerodb")

_ID_CHUNK = 500
_HOLD_ROWS = 10_000
"""Matching records kept in memory while a read sorts them; past this only ids are kept."""

R = TypeVar("R", Interaction, Feedback)


class ZeroDBStorage(SpooledDelivery):
    """A :class:`~rlhfkit.storage.base.Storage` on ZeroDB (AINative Studio's hosted database).

    ``api_key`` is sent as ``X-API-Key`` (default ``RLHFKIT_ZERODB_API_KEY``,
    then ``ZERODB_API_KEY``); ``jwt`` as ``Authorization: Bearer``
    (default ``RLHFKIT_ZERODB_JWT``). ``base_url`` defaults to
    ``RLHFKIT_ZERODB_URL`` or ``https://api.ainative.studio``; ``path_prefix``
    to ``/v1`` (some ZeroDB documents say ``/api/v1``). ``spool_dir`` defaults
    to ``RLHFKIT_SPOOL_DIR`` or ``~/.cache/rlhfkit/spool``, one subdirectory
    per project and table.

    ``embedding`` (a callable ``text -> list[float]``) turns on vectors: each
    interaction's prompt is embedded by the sender's thread and upserted into
    the namespace ``vector_table_name``, and :meth:`search_similar` works.

    Attributes: ``pending`` (records not yet delivered), ``failed_uploads``
    (records ZeroDB refused, with the reason in ``last_error``),
    ``spool_full_drops``, ``delivered``, ``vector_failures`` and
    ``embedding_failures``.
    """

    def __init__(
        self,
        project_id: str,
        api_key: str | None = None,
        jwt: str | None = None,
        table_name: str = "rlhf_feedback",
        vector_table_name: str = "rlhf_vectors",
        base_url: str | None = None,
        path_prefix: str = wire.DEFAULT_PATH_PREFIX,
        embedding: Callable[[str], Sequence[float]] | None = None,
        max_in_flight: int = 8,
        spool_dir: str | os.PathLike[str] | None = None,
        timeout_s: float = 10.0,
        *,
        max_spool_mb: float = 1024,
        initial_backoff_s: float = 0.2,
        max_backoff_s: float = 10.0,
        max_retry_after_s: float = 300.0,
        read_wait_s: float = 5.0,
    ) -> None:
        if not isinstance(project_id, str) or not project_id.strip():
            raise ValidationError("project_id", "a ZeroDB project id is required", project_id)
        for name, value in (("table_name", table_name), ("vector_table_name", vector_table_name)):
            if not isinstance(value, str) or not value.strip() or "/" in value:
                raise ValidationError(name, "must be a non-empty name without '/'", value)
        if max_in_flight < 1:
            raise ValidationError("max_in_flight", "must be at least 1", max_in_flight)
        for name, number in (("timeout_s", timeout_s), ("max_spool_mb", max_spool_mb)):
            if number <= 0:
                raise ValidationError(name, "must be positive", number)
        if read_wait_s < 0:
            raise ValidationError("read_wait_s", "must not be negative", read_wait_s)
        if embedding is not None and not callable(embedding):
            raise ValidationError("embedding", "must be a callable text -> list[float]", embedding)
        require("httpx", "remote")  # a missing extra fails here, not in the sender
        api_key = api_key or os.environ.get("RLHFKIT_ZERODB_API_KEY") or os.environ.get("ZERODB_API_KEY")
        jwt = jwt or os.environ.get("RLHFKIT_ZERODB_JWT")
        if not api_key and not jwt:
            raise ConfigurationError(
                "ZeroDB needs api_key (or RLHFKIT_ZERODB_API_KEY / ZERODB_API_KEY) or jwt (RLHFKIT_ZERODB_JWT)"
            )
        self.project_id = project_id
        self.table_name = table_name
        self.vector_table_name = vector_table_name
        self.base_url = (base_url or os.environ.get("RLHFKIT_ZERODB_URL") or wire.DEFAULT_BASE_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValidationError("base_url", "must start with http:// or https://", self.base_url)
        self.path_prefix = path_prefix
        self.embedding = embedding
        self.read_wait_s = read_wait_s
        headers: dict[str, str] = {}
        if api_key:
            headers[wire.API_KEY_HEADER] = api_key
        if jwt:
            headers[wire.JWT_HEADER] = wire.JWT_SCHEME + jwt
        # One client (thread-safe) for the sender's row requests and the caller's reads.
        self._http = ZeroDBHttp(self.base_url, path_prefix, headers, timeout_s, pool=max_in_flight + 2)
        self.sink = ZeroDBSink(
            self._http,
            project_id=quote(project_id, safe=""),
            table_name=table_name,
            vector_namespace=vector_table_name,
            embedding=embedding,
            max_in_flight=max_in_flight,
        )
        # Built now, in the caller's thread: httpx imports httpcore when its first client is
        # made, and an import cut short by os.fork in another thread deadlocks the child.
        self._http.client()
        address = f"zerodb:{self._http.root}/projects/{project_id}/{table_name}"
        self.spool_dir = Path(spool_dir) if spool_dir is not None else _default_spool_dir(address)
        self.sender = Sender(
            self.sink,
            self.spool_dir,
            max_spool_bytes=int(max_spool_mb * 1024 * 1024),
            initial_backoff_s=initial_backoff_s,
            max_backoff_s=max_backoff_s,
            max_retry_after_s=max_retry_after_s,
            name="rlhfkit-zerodb-sender",
        )
        self._query_path = self.sink.query_path
        self._search_path = wire.VECTOR_SEARCH_PATH.format(project_id=quote(project_id, safe=""))

    # ------------------------------------------------------------------ counters

    @property
    def vector_failures(self) -> int:
        """Vector upserts ZeroDB refused for good (their rows are stored)."""
        return self.sink.vector_failures

    @property
    def embedding_failures(self) -> int:
        """Interactions whose prompt the embedding function failed on (stored without a vector)."""
        return self.sink.embedding_failures

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Nothing to do here: the sender creates the table before its first delivery."""

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what can be delivered within ``timeout_s``, stop, and return the records left.

        Records left stay in the spool; the next ZeroDBStorage on the same
        spool directory sends them.
        """
        remaining = self.sender.close(timeout_s)
        self._http.close()
        if remaining:
            logger.warning("%d records not yet stored in ZeroDB remain in the spool %s", remaining, self.spool_dir)
        return remaining

    def retry_failed(self) -> int:
        """Queue the batches ZeroDB refused (kept under ``<spool>/failed``) again; return their records.

        Rows of those batches that were stored are not inserted twice. Use it
        after fixing what was refused, e.g. from a storage opened on the same
        ``spool_dir`` with the right key.
        """
        return self.sender.retry_failed()

    # ------------------------------------------------------------------ writes

    def write(self, batch: RecordBatch) -> None:
        """Spool ``batch`` for delivery (local disk only); raises StorageError when the spool is full."""
        if len(batch) == 0:
            return
        body = json.dumps({"rows": rows_.encode_batch(batch)}, separators=(",", ":")).encode()
        self.sender.submit(body, records=len(batch))

    # ------------------------------------------------------------------ reading rows

    def _settle(self) -> None:
        """Give this storage's own pending writes up to ``read_wait_s`` to land, so reads see them."""
        if self.sender.pending and self.read_wait_s > 0:
            left = self.sender.flush(self.read_wait_s)
            if left:
                logger.warning("reading from ZeroDB while %d written records are still undelivered", left)

    def _rows(self, kind: str, filters: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """The ``row_data`` of every row of ``kind`` matching ``filters``."""
        query = {rows_.RECORD_TYPE: {wire.EQ: kind}, **(filters or {})}
        try:
            for row in self._http.query(self._query_path, query):
                data = row.get(wire.ROW_DATA)
                if isinstance(data, dict) and data.get(rows_.RECORD_TYPE) == kind:
                    yield data
        except RetryLater as exc:
            raise StorageError(f"ZeroDB at {self._http.root} is not answering: {exc}") from exc

    def _records(self, kind: str, filters: dict[str, Any] | None = None) -> Iterator[Any]:
        """Decoded records of ``kind``; of two rows with one id, the first stored (the one a session update replaces)."""
        seen: set[str] = set()
        for data in self._rows(kind, filters):
            record_id = str(data.get(rows_.ID))
            if record_id in seen:
                continue
            seen.add(record_id)
            try:
                yield rows_.decode(data)
            except ValueError:
                logger.warning("skipping a ZeroDB row that is not a valid %s: id %r", kind, record_id)

    def _by_ids(self, kind: str, ids: Iterable[str]) -> dict[str, Any]:
        wanted = sorted(set(ids))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), _ID_CHUNK):
            for record in self._records(kind, {rows_.ID: {wire.IN: wanted[start : start + _ID_CHUNK]}}):
                found.setdefault(record.id, record)
        return found

    def _feedback_index(self) -> dict[str, list[tuple[str, FeedbackType, float | None]]]:
        """Per interaction id: (feedback id, type, rating value) of the feedback about it, in id order."""
        index: dict[str, list[tuple[str, FeedbackType, float | None]]] = {}
        for fb in self._records(rows_.FEEDBACK):
            rating = fb.data.value if isinstance(fb.data, RatingData) else None
            for target in feedback_targets(fb):
                index.setdefault(target, []).append((fb.id, fb.type, rating))
        for entries in index.values():
            entries.sort(key=lambda entry: entry[0])
        return index

    # ------------------------------------------------------------------ single records

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id, ``feedback_ids`` filled, or None."""
        self._settle()
        found = self._by_ids(rows_.INTERACTION, [interaction_id]).get(interaction_id)
        if found is None:
            return None
        direct = self._records(rows_.FEEDBACK, {"interaction_id": {wire.EQ: interaction_id}})
        compared = self._records(rows_.FEEDBACK, {"type": {wire.EQ: FeedbackType.COMPARATIVE.value}})
        ids = {fb.id for fb in (*direct, *compared) if interaction_id in feedback_targets(fb)}
        return found.model_copy(update={"feedback_ids": sorted(ids)})  # type: ignore[no-any-return]

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        self._settle()
        return self._by_ids(rows_.FEEDBACK, [feedback_id]).get(feedback_id)

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The session with this id, with the ids of its interactions and feedback, or None."""
        self._settle()
        session = self._by_ids(rows_.SESSION, [session_id]).get(session_id)
        if session is None:
            return None
        same = {"session_id": {wire.EQ: session_id}}
        interaction_ids = set(session.interaction_ids)
        interaction_ids.update(i.id for i in self._records(rows_.INTERACTION, same) if i.session_id == session_id)
        feedback_ids = set(session.feedback_ids)
        feedback_ids.update(f.id for f in self._records(rows_.FEEDBACK, same) if f.session_id == session_id)
        return session.model_copy(  # type: ignore[no-any-return]
            update={"interaction_ids": sorted(interaction_ids), "feedback_ids": sorted(feedback_ids)}
        )

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Those of ``interaction_ids`` that are not stored.

        When ZeroDB cannot answer, nothing is reported missing (with a
        warning): feedback is accepted and spooled rather than refused because
        the service is down.
        """
        wanted = set(interaction_ids)
        if not wanted:
            return set()
        self._settle()
        try:
            return wanted - set(self._by_ids(rows_.INTERACTION, wanted))
        except StorageError as exc:
            logger.warning("cannot check interaction ids against ZeroDB, accepting them: %s", exc)
            return set()

    # ------------------------------------------------------------------ iteration

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter`` in id order, ``feedback_ids`` filled."""
        self._settle()
        index = self._feedback_index()
        plain = filter.model_copy(update={"has_feedback": None, "feedback_types": None,
                                          "min_rating": None, "max_rating": None})  # fmt: skip

        def keep(interaction: Interaction) -> bool:
            if not matches_interaction(interaction, plain):
                return False
            if needs_feedback(filter):
                summary = [(kind, rating) for _, kind, rating in index.get(interaction.id, [])]
                return matches_feedback_summary(summary, filter)
            return True

        filters = _common_filters(filter)
        if filter.models is not None:
            filters["model"] = {wire.IN: list(filter.models)}
        if filter.provider is not None:
            filters["provider"] = {wire.EQ: filter.provider}
        for interaction in self._sorted(rows_.INTERACTION, filters, keep, filter):
            yield interaction.model_copy(update={"feedback_ids": [fid for fid, _, _ in index.get(interaction.id, [])]})

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter`` in id order."""
        self._settle()
        of_model: set[str] = set()
        if filter.model is not None:
            same = {"model": {wire.EQ: filter.model}}
            of_model = {i.id for i in self._records(rows_.INTERACTION, same) if i.model == filter.model}

        def keep(fb: Feedback) -> bool:
            return matches_feedback(fb, filter, filter.model if fb.interaction_id in of_model else None)

        filters = _common_filters(filter)
        if filter.types is not None:
            filters["type"] = {wire.IN: [t.value for t in filter.types]}
        if filter.source is not None:
            filters["source"] = {wire.EQ: filter.source}
        yield from self._sorted(rows_.FEEDBACK, filters, keep, filter)

    def _sorted(
        self, kind: str, filters: dict[str, Any], keep: Callable[[R], bool], filter: InteractionFilter | FeedbackFilter
    ) -> Iterator[R]:
        """Matching records of ``kind`` in id order, after_id / offset / limit applied.

        Bodies are held while there are at most ``_HOLD_ROWS`` matches; past
        that only ids are, and the page is fetched again by id.
        """
        held: dict[str, R] | None = {}
        ids: list[str] = []
        for record in self._records(kind, filters):
            if not keep(record):
                continue
            ids.append(record.id)
            if held is not None:
                held[record.id] = record
                if len(held) > _HOLD_ROWS:
                    held = None
        ids.sort()
        if filter.after_id is not None:
            ids = [i for i in ids if i > filter.after_id]
        stop = None if filter.limit is None else filter.offset + filter.limit
        ids = ids[filter.offset : stop]
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            found = held if held is not None else self._by_ids(kind, chunk)
            for record_id in chunk:
                if record_id in found:
                    yield found[record_id]

    # ------------------------------------------------------------------ stats and vectors

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """Aggregates over interactions and feedback whose timestamp is in [start_time, end_time)."""
        self._settle()
        window = _time_filters(start_time, end_time)
        interactions = list(self._records(rows_.INTERACTION, window))
        feedback = list(self._records(rows_.FEEDBACK, window))
        known = {i.id for i in interactions}
        outside = {t for fb in feedback for t in feedback_targets(fb)} - known
        models = {iid: i.model for iid, i in self._by_ids(rows_.INTERACTION, outside).items()} if outside else {}
        return compute_stats(interactions, feedback, start_time, end_time, model_of=models.get)

    def search_similar(
        self, text: str, top_k: int = 5, similarity_threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """Stored interactions whose prompts are nearest to ``text`` (needs ``embedding``).

        Returns up to ``top_k`` dicts, nearest first: ``interaction_id``,
        ``similarity`` (None when the service sends no score), ``document``
        (the prompt), ``metadata``, and ``interaction`` (the stored
        :class:`~rlhfkit.Interaction`, or None when its row is missing).
        """
        if self.embedding is None:
            raise ConfigurationError("search_similar needs an embedding function: ZeroDBStorage(..., embedding=...)")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("text", "must be a non-empty string", text)
        if top_k < 1:
            raise ValidationError("top_k", "must be at least 1", top_k)
        body: dict[str, Any] = {
            wire.QUERY_VECTOR: [float(x) for x in self.embedding(text)],
            wire.TOP_K: top_k,
            wire.NAMESPACE: self.vector_table_name,
        }
        if similarity_threshold is not None:
            body[wire.SIMILARITY_THRESHOLD] = similarity_threshold
        try:
            answer = self._http.request("POST", self._search_path, body, missing_ok=True) or {}
        except RetryLater as exc:
            raise StorageError(f"ZeroDB vector search failed: {exc}") from exc
        results = []
        for hit in (answer.get(wire.SEARCH_RESULTS) or [])[:top_k]:
            metadata: dict[str, Any] = next((hit[k] for k in wire.RESULT_METADATA if isinstance(hit.get(k), dict)), {})
            score = next((hit[k] for k in wire.RESULT_SCORE if isinstance(hit.get(k), int | float)), None)
            results.append({
                "interaction_id": metadata.get("interaction_id") or hit.get(wire.VECTOR_ID),
                "similarity": score,
                "document": hit.get(wire.DOCUMENT),
                "metadata": metadata,
            })  # fmt: skip
        stored = self._by_ids(rows_.INTERACTION, [r["interaction_id"] for r in results if r["interaction_id"]])
        for result in results:
            result["interaction"] = stored.get(result["interaction_id"])
        return results


def _time_filters(start_time: datetime | None, end_time: datetime | None) -> dict[str, Any]:
    bounds: dict[str, int] = {}
    if start_time is not None:
        bounds[wire.GTE] = rows_.micros(start_time)
    if end_time is not None:
        bounds[wire.LT] = rows_.micros(end_time)
    return {rows_.TS: bounds} if bounds else {}


def _common_filters(filter: InteractionFilter | FeedbackFilter) -> dict[str, Any]:
    """The server-side part of a filter both record kinds share (Python checks everything again)."""
    filters = _time_filters(filter.start_time, filter.end_time)
    ids = filter.ids
    if ids is not None:
        filters[rows_.ID] = {wire.IN: list(ids)}
    elif filter.after_id is not None:
        filters[rows_.ID] = {wire.GT: filter.after_id}
    if filter.user_id is not None:
        filters["user_id"] = {wire.EQ: filter.user_id}
    if filter.session_id is not None:
        filters["session_id"] = {wire.EQ: filter.session_id}
    return filters
