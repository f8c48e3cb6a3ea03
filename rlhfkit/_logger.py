"""RLHFLogger and AsyncRLHFLogger: validate → session → batcher → storage.

A log call validates its input on the caller's thread (a refused call raises a
:class:`~rlhfkit.errors.ValidationError` naming the field and stores nothing),
then hands the record to the batch processor, whose worker writes it to the
storage backend. Reads flush pending writes first, so a logger always reads
what it has written.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from ._batching import BatchProcessor
from ._config import RLHFConfig, create_storage
from ._limits import SAFE_INDEXED_CHARS, SAFE_MODEL_CHARS, check_record, plain_metadata, plain_texts
from ._models import (
    AnalyticsResult,
    BinaryFeedback,
    ExportFormat,
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RecordBatch,
    Sentiment,
    TokenUsage,
    _new_id_at,
    _TrustedBuilder,
    _utc_from_ns,
    new_id,
    utc_now,
)
from .errors import ClosedError, ConfigurationError, NotFoundError, ValidationError, from_pydantic
from .storage.base import Storage

__all__ = ["AsyncRLHFLogger", "RLHFLogger", "create_rlhf_logger"]

log = logging.getLogger("rlhfkit")

Record = Interaction | Feedback | FeedbackSession
R = TypeVar("R")

PlainInteraction = tuple[
    str, int, str, str, str | None, float | None, int | None, int | None, int | None,
    str | None, str | None, dict[str, Any] | None,
]  # fmt: skip
"""An interaction checked by hand on log_interaction's fast path, queued as it is.

(id, time_ns, prompt, response, model, latency, prompt tokens, completion
tokens, total tokens as given, user_id, session_id, metadata or None). A tuple
of immutable values, so the garbage collector stops scanning it after its
first pass however long the queue grows; the worker turns it into the
Interaction that validating the same call would give (:func:`_plain_interaction`).
"""

Queued = Record | PlainInteraction

_KNOWN_IDS_KEPT = 200_000
# Ids remembered past _KNOWN_IDS_KEPT before the oldest are dropped, all at once.
_KNOWN_IDS_SLACK = 20_000
_INTERACTIONS = _TrustedBuilder(Interaction, (
    "id", "prompt", "response", "model", "latency", "token_usage", "model_params", "context",
    "user_id", "session_id", "metadata", "timestamp",
))  # fmt: skip
_USAGE = _TrustedBuilder(TokenUsage, ("prompt", "completion", "total"))
_USAGE_NO_TOTAL = _TrustedBuilder(TokenUsage, ("prompt", "completion"))  # prompt and completion both 0


def _plain_interaction(record: PlainInteraction) -> Interaction:
    """The Interaction of a fast-path record: what ``Interaction.model_validate`` gives for the call."""
    (rid, time_ns, prompt, response, model, latency, p, c, t, user_id, session_id, meta) = record  # fmt: skip
    usage = None
    if p is not None:
        # TokenUsage fills a missing or zero total with prompt + completion, and then counts it as set.
        builder = _USAGE if t is not None or p or c else _USAGE_NO_TOTAL
        u = builder.values()
        u["prompt"], u["completion"] = p, c
        u["total"] = t or p + c  # type: ignore[operator]
        usage = builder.build(u)
    v = _INTERACTIONS.values()
    v["id"], v["prompt"], v["response"], v["model"] = rid, prompt, response, model
    v["latency"] = latency if type(latency) is not int else float(latency)
    v["token_usage"], v["model_params"], v["context"] = usage, {}, []
    v["user_id"], v["session_id"] = user_id, session_id
    v["metadata"] = {} if meta is None else meta
    v["timestamp"] = _utc_from_ns(time_ns)
    return _INTERACTIONS.build(v)


def _log_refused(record: Queued, exc: Exception) -> None:
    """Keep a refused record in the log, whole, so that it can be recovered by hand."""
    if type(record) is tuple:
        record = _plain_interaction(record)
    log.error("the storage backend refused %s, which is not stored: %s; the record: %s",
              type(record).__name__, exc, record.model_dump_json())  # type: ignore[union-attr]


def _write_records(storage: Storage) -> Callable[[Sequence[Queued]], None]:
    def export(records: Sequence[Queued]) -> None:
        batch = RecordBatch()
        interactions, feedback, sessions = batch.interactions, batch.feedback, batch.sessions
        for record in records:
            if type(record) is tuple:
                interactions.append(_plain_interaction(record))
            elif isinstance(record, Interaction):
                interactions.append(record)
            elif isinstance(record, Feedback):
                feedback.append(record)
            else:
                sessions.append(record)  # type: ignore[arg-type]
        storage.write(batch)

    return export


class RLHFLogger:
    """Log interactions and the five kinds of feedback; read stats, analytics and exports.

    Example::

        with create_rlhf_logger(backend=StorageBackend.SQLITE,
                                backend_config={"sqlite": {"path": "rlhf.db"}}) as logger:
            iid = logger.log_interaction("What is 2+2?", "4", model="gpt-4o")
            logger.log_binary_feedback(iid, BinaryFeedback.THUMBS_UP)
            print(logger.get_feedback_stats().feedback_rate)

    Safe to share between threads. ``close()`` (or leaving the ``with`` block)
    stores everything pending; so does interpreter exit.
    """

    def __init__(self, config: RLHFConfig | None = None, *, storage: Storage | None = None) -> None:
        self.config = config or RLHFConfig()
        if self.config.debug:
            log.setLevel(logging.DEBUG)
        self._storage = storage if storage is not None else create_storage(self.config)
        self._initialized = False
        self._closed = False
        self._lock = threading.RLock()
        self._known_ids: dict[str, None] = {}
        self._session: FeedbackSession | None = None
        self._session_key: tuple[str, list[str]] | None = None  # (id, interaction_ids) of _session
        self._session_last_activity = 0.0
        self._batcher: BatchProcessor[Queued] | None = None
        if self.config.enable_batching:
            self._batcher = BatchProcessor(
                _write_records(self._storage),
                batch_size=self.config.batch_size,
                flush_interval_s=self.config.batch_flush_interval_s,
                max_queue_size=self.config.max_queue_size,
                exit_timeout_s=self.config.close_timeout_s,
                on_refused=_log_refused,
            )

    # -- lifecycle -----------------------------------------------------------

    @property
    def storage(self) -> Storage:
        """The storage backend this logger writes to."""
        return self._storage

    @property
    def refused_records(self) -> int:
        """Accepted records that the backend then refused, each logged at ERROR with its JSON.

        Every record is checked against what all backends can store when it is
        logged, so this stays 0 unless a backend refuses something more (a
        custom backend's own rule, say); the records queued with it are stored.
        """
        return 0 if self._batcher is None else self._batcher.refused

    def initialize(self) -> None:
        """Prepare the storage backend (tables, directories). Called on first use anyway."""
        with self._lock:
            if not self._initialized:
                self._storage.initialize()
                self._initialized = True
                log.debug("logger initialized on %s", type(self._storage).__name__)

    def __enter__(self) -> RLHFLogger:
        self.initialize()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def flush(self, timeout_s: float | None = None) -> int:
        """Store everything pending; return how many records remain after ``timeout_s``."""
        if self._batcher is None:
            return 0
        remaining = self._batcher.flush(timeout_s)
        if remaining:
            log.warning("flush: %d records are not stored yet", remaining)
        return remaining

    def close(self, timeout_s: float | None = None) -> int:
        """End the session, store everything pending, release the backend.

        Returns how many records could not be stored within ``timeout_s``
        (default: the config's ``close_timeout_s``).
        """
        if self._closed:
            return 0
        timeout = self.config.close_timeout_s if timeout_s is None else timeout_s
        if self._session is not None:
            self.end_session()
        remaining = self._batcher.shutdown(timeout) if self._batcher is not None else 0
        self._closed = True
        closer = getattr(self._storage, "close", None)
        if closer is not None:
            try:
                result = closer(timeout) if _accepts_timeout(closer) else closer()
                if isinstance(result, int):
                    remaining += result
            except Exception:
                log.exception("closing the storage backend failed")
        return remaining

    # -- writing -------------------------------------------------------------

    def log_interaction(
        self,
        prompt: str,
        response: str,
        *,
        model: str | None = None,
        model_params: Mapping[str, Any] | None = None,
        latency: float | None = None,
        token_usage: Mapping[str, int] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        context: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        id: str | None = None,
        timestamp: datetime | None = None,
        **extra: Any,
    ) -> str:
        """Log one exchange with a model and return its id.

        ``latency`` is in milliseconds; ``context`` holds the earlier messages
        of the conversation (``{"role", "content"}``); extra keyword arguments
        are kept in ``metadata``.
        """
        settings = self.config.__dict__  # the fields, read without pydantic's attribute hook (hot path)
        time_ns = _time_ns()
        if id is None and settings["auto_generate_ids"]:
            record_id = _new_id_at(time_ns)
        else:
            record_id = self._record_id(id, "interaction")
        if self._closed or (user_id is None and not settings["allow_anonymous"]):
            self._identity(user_id, session_id)  # raises the right error
        meta = (
            self._metadata(metadata, extra) if (metadata or extra or settings["default_metadata"]) else None
        )
        p = c = t = None
        if (
            type(prompt) is not str
            or type(response) is not str
            or context
            or model_params
            or timestamp is not None
            or not (model is None or type(model) is str)
            or not (latency is None or (type(latency) in _NUMBERS and 0 <= latency < _MAX_FLOAT))
            or not (user_id is None or type(user_id) is str)
            or not (session_id is None or type(session_id) is str)
            or len(record_id) > 200
            or not prompt.strip()
            or not plain_texts(record_id, prompt, response, model, user_id, session_id)
            or (model is not None and len(model) > SAFE_MODEL_CHARS)
            or (user_id is not None and len(user_id) > SAFE_INDEXED_CHARS)
            or (session_id is not None and len(session_id) > SAFE_INDEXED_CHARS)
            or not (meta is None or plain_metadata(meta))
            or (
                token_usage is not None
                and (
                    type(token_usage) is not dict
                    or not _plain_usage(p := token_usage.get("prompt"), c := token_usage.get("completion"),
                                        t := token_usage.get("total"), len(token_usage))
                )
            )
        ):  # fmt: skip
            return self._log_validated(record_id, time_ns, prompt, response, model, model_params, latency,
                                       token_usage, user_id, session_id, context, meta, timestamp)  # fmt: skip
        # Checked by hand, several µs cheaper than pydantic: queue a tuple, the worker builds the model
        # (_plain_interaction). This is the hot path, so _accept's steps are inlined.
        if not self._initialized:
            self.initialize()
        known = self._known_ids
        known[record_id] = None
        if len(known) > _KNOWN_IDS_KEPT + _KNOWN_IDS_SLACK:
            self._forget_oldest()
        current = self._session_key
        if session_id is None and (current is not None or settings["enable_session_tracking"]):
            now = _monotonic()
            if current is not None and now - self._session_last_activity <= settings["session_timeout_s"]:
                self._session_last_activity = now
            else:
                session = self._active_session(user_id)
                current = (session.id, session.interaction_ids)
            session_id = current[0]
        if current is not None and session_id == current[0]:
            current[1].append(record_id)
        record = (record_id, time_ns, prompt, response, model, latency, p, c, t, user_id, session_id, meta)
        if self._batcher is not None:
            self._batcher.submit(record)
        else:
            self._store(record)
        return record_id

    def _log_validated(
        self,
        record_id: str,
        time_ns: int,
        prompt: Any,
        response: Any,
        model: Any,
        model_params: Any,
        latency: Any,
        token_usage: Any,
        user_id: Any,
        session_id: Any,
        context: Any,
        meta: dict[str, Any] | None,
        timestamp: Any,
    ) -> str:
        """log_interaction's general path: pydantic validates the call."""
        fields: dict[str, Any] = {
            "id": record_id, "prompt": prompt, "response": response, "model": model, "latency": latency,
            "token_usage": token_usage, "model_params": _mapping(model_params, "model_params"),
            "context": _sequence(context, "context"),
            "user_id": user_id, "session_id": session_id, "metadata": meta or {},
            "timestamp": _utc_from_ns(time_ns) if timestamp is None else timestamp,
        }  # fmt: skip
        try:
            interaction = Interaction.model_validate(fields)
        except PydanticValidationError as exc:
            raise from_pydantic(exc) from None
        return self._accept(interaction)

    def log_binary_feedback(
        self, interaction_id: str, value: BinaryFeedback | bool | str, **options: Any
    ) -> str:
        """Log a thumbs up (``BinaryFeedback.THUMBS_UP`` or True) or down; return the feedback id."""
        if isinstance(value, bool):
            value = BinaryFeedback.THUMBS_UP if value else BinaryFeedback.THUMBS_DOWN
        return self._log_feedback(interaction_id, {"type": "binary", "value": value}, options)

    def log_rating(
        self,
        interaction_id: str,
        rating: float,
        comment: str | None = None,
        *,
        max_rating: int = 5,
        **options: Any,
    ) -> str:
        """Log a rating from 1 to ``max_rating`` with an optional comment; return the feedback id."""
        data = {"type": "rating", "value": rating, "max_rating": max_rating, "comment": comment}
        return self._log_feedback(interaction_id, data, options)

    def log_text_feedback(
        self, interaction_id: str, comment: str, sentiment: Sentiment | str | None = None, **options: Any
    ) -> str:
        """Log a free-text comment, optionally with its sentiment; return the feedback id."""
        return self._log_feedback(
            interaction_id, {"type": "text", "comment": comment, "sentiment": sentiment}, options
        )

    def log_multi_dimensional_feedback(
        self,
        interaction_id: str,
        dimensions: Mapping[str, float],
        *,
        weights: Mapping[str, float] | None = None,
        overall_comment: str | None = None,
        max_score: float = 5,
        **options: Any,
    ) -> str:
        """Log scores on several dimensions (e.g. accuracy, clarity), optionally weighted."""
        data = {
            "type": "multi_dimensional",
            "dimensions": _mapping(dimensions, "dimensions", required=True),
            "weights": None if weights is None else _mapping(weights, "weights"),
            "overall_comment": overall_comment,
            "max_score": max_score,
        }
        return self._log_feedback(interaction_id, data, options)

    def log_comparative_feedback(
        self,
        preferred_id: str,
        alternative_ids: Sequence[str],
        *,
        reason: str | None = None,
        confidence: float | None = None,
        confidence_level: float | None = None,
        **options: Any,
    ) -> str:
        """Log that ``preferred_id`` was better than each of ``alternative_ids``.

        ``confidence`` (the spec's ``confidence_level``) is between 0 and 1.
        """
        if isinstance(alternative_ids, str):
            alternative_ids = [alternative_ids]
        data = {
            "type": "comparative",
            "preferred_id": preferred_id,
            "alternative_ids": _sequence(alternative_ids, "alternative_ids"),
            "reason": reason,
            "confidence": confidence if confidence is not None else confidence_level,
        }
        return self._log_feedback(preferred_id, data, options)

    def log_record(self, record: Interaction | Feedback) -> str:
        """Log a record built elsewhere (the auto-instrumentation uses this); return its id.

        Feedback is checked against the stored interactions like any other.
        """
        if not isinstance(record, Interaction | Feedback):
            raise ValidationError(
                "record", f"expected an Interaction or a Feedback, got {type(record).__name__}"
            )
        # Checked again: a model can be built without validation, or changed after it.
        try:
            record = type(record).model_validate(record.__dict__)
        except PydanticValidationError as exc:
            raise from_pydantic(exc) from None
        if isinstance(record, Feedback):
            self._check_interactions_exist(record.interaction_ids())
        self._identity(record.user_id, record.session_id)
        return self._accept(record)

    def _log_feedback(self, interaction_id: str, data: dict[str, Any], options: dict[str, Any]) -> str:
        feedback_id = self._record_id(options.pop("id", None), "feedback")
        timestamp = options.pop("timestamp", None)
        user_id, session_id = self._identity(options.pop("user_id", None), options.pop("session_id", None))
        fields = {
            "id": feedback_id,
            "interaction_id": interaction_id,
            "type": data["type"],
            "data": data,
            "user_id": user_id,
            "session_id": session_id,
            "source": options.pop("source", None),
            "timestamp": utc_now() if timestamp is None else timestamp,
            "metadata": self._metadata(options.pop("metadata", None), options),
        }
        try:
            feedback = Feedback.model_validate(fields)
        except PydanticValidationError as exc:
            raise _feedback_error(exc) from None
        self._check_interactions_exist(feedback.interaction_ids())
        return self._accept(feedback)

    # -- the write path ------------------------------------------------------

    def _record_id(self, given: str | None, kind: str) -> str:
        if given is not None:
            if not isinstance(given, str) or not given:
                raise ValidationError("id", "must be a non-empty string", given)
            return given
        if not self.config.auto_generate_ids:
            raise ValidationError("id", f"{kind.capitalize()} ID required when auto_generate_ids is disabled")
        return new_id()

    def _metadata(self, metadata: Mapping[str, Any] | None, extra: Mapping[str, Any]) -> dict[str, Any]:
        if metadata is not None and not isinstance(metadata, Mapping):
            raise ValidationError("metadata", "must be a mapping", metadata)
        if not (self.config.default_metadata or metadata or extra):
            return {}
        merged = {**self.config.default_metadata, **(metadata or {}), **extra}
        # The record is stored later, on the worker: nested values are copied, so that the caller
        # changing them after the call changes nothing (plain values cannot change).
        if not _IMMUTABLE.issuperset(map(type, merged.values())):
            merged = {k: v if type(v) in _IMMUTABLE else copy.deepcopy(v) for k, v in merged.items()}
        return merged

    def _identity(self, user_id: str | None, session_id: str | None) -> tuple[str | None, str | None]:
        if self._closed:
            raise ClosedError("this logger is closed")
        if not self.config.allow_anonymous and not user_id:
            raise ValidationError("user_id", "is required when allow_anonymous is False")
        return user_id, session_id

    def _check_interactions_exist(self, ids: Iterable[str]) -> None:
        unknown = [i for i in ids if i not in self._known_ids]
        if unknown:
            self._ensure_initialized()
            missing = self._storage.missing_interactions(unknown)
            if missing:
                raise NotFoundError("interaction_id", f"no interaction with id {sorted(missing)[0]!r}")

    def _accept(self, record: Interaction | Feedback) -> str:
        """Check that every backend can store the record, attach the session, remember its id, queue it."""
        check_record(record)
        self._ensure_initialized()
        is_interaction = isinstance(record, Interaction)
        if is_interaction:
            self._remember(record.id)
        if record.session_id is None and (self._session is not None or self.config.enable_session_tracking):
            record.session_id = self._active_session(record.user_id).id
        session = self._session
        if session is not None and record.session_id == session.id:
            (session.interaction_ids if is_interaction else session.feedback_ids).append(record.id)
        self._store(record)
        return record.id

    def _store(self, record: Queued) -> None:
        if self._batcher is not None:
            self._batcher.submit(record)
        else:
            _write_records(self._storage)([record])

    def _remember(self, interaction_id: str) -> None:
        known = self._known_ids
        known[interaction_id] = None
        if len(known) > _KNOWN_IDS_KEPT + _KNOWN_IDS_SLACK:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        # One copy of the newest ids: dropping the oldest one at a time from the front of a dict
        # makes each drop scan the slots freed before it, which grows with every call.
        known = self._known_ids
        try:
            self._known_ids = dict.fromkeys(list(known)[-_KNOWN_IDS_KEPT:])
        except RuntimeError:  # another thread changed it meanwhile: trim next time
            pass

    def _ensure_initialized(self) -> None:
        if not self._initialized:
            self.initialize()

    # -- sessions ------------------------------------------------------------

    def start_session(self, user_id: str | None = None, metadata: Mapping[str, Any] | None = None) -> str:
        """Start a session (ending the current one); later records carry its id. Returns the id."""
        with self._lock:
            if self._session is not None:
                self.end_session()
            try:
                session = FeedbackSession(user_id=user_id, metadata=_mapping(metadata, "metadata"))
            except PydanticValidationError as exc:
                raise from_pydantic(exc) from None
            check_record(session)
            self._session = session
            self._session_key = (self._session.id, self._session.interaction_ids)
            self._session_last_activity = time.monotonic()
            self._ensure_initialized()
            self._store(self._session.model_copy(deep=True))
            log.debug("session %s started", self._session.id)
            return self._session.id

    def end_session(self) -> FeedbackSession | None:
        """End the current session and return it, or None when there is none."""
        with self._lock:
            session, self._session, self._session_key = self._session, None, None
            if session is None:
                return None
            session.end_time = utc_now()
            self._store(session.model_copy(deep=True))
            log.debug("session %s ended", session.id)
            return session

    def get_current_session(self) -> FeedbackSession | None:
        """The active session, or None. An idle session past its timeout has ended."""
        with self._lock:
            if self._session is not None and self._session_expired():
                self.end_session()
            return None if self._session is None else self._session.model_copy(deep=True)

    def _session_expired(self) -> bool:
        return time.monotonic() - self._session_last_activity > self.config.session_timeout_s

    def _active_session(self, user_id: str | None) -> FeedbackSession:
        session, now = self._session, time.monotonic()
        if session is not None and now - self._session_last_activity <= self.config.session_timeout_s:
            self._session_last_activity = now
            return session
        with self._lock:
            if self._session is not None and self.config.enable_session_tracking and self._session_expired():
                self.end_session()
            if self._session is None:
                self.start_session(user_id)
            assert self._session is not None
            self._session_last_activity = time.monotonic()
            return self._session

    # -- reading -------------------------------------------------------------

    def _read(self) -> Storage:
        self._ensure_initialized()
        self.flush(self.config.close_timeout_s)
        return self._storage

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id (its ``feedback_ids`` filled), or None."""
        return self._read().get_interaction(interaction_id)

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        return self._read().get_feedback(feedback_id)

    def get_feedback_for_interaction(self, interaction_id: str) -> list[Feedback]:
        """Every feedback about this interaction (comparisons it took part in included)."""
        return list(self._read().iter_feedback(FeedbackFilter(interaction_ids=[interaction_id])))

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """A stored session with its interaction and feedback ids, or None."""
        return self._read().get_session(session_id)

    def query_feedback(self, filter: FeedbackFilter | None = None, **criteria: Any) -> list[Feedback]:
        """Feedback matching ``filter`` (or the same fields as keyword arguments)."""
        return list(self._read().iter_feedback(_filter(FeedbackFilter, filter, criteria)))

    def query_interactions(
        self, filter: InteractionFilter | None = None, **criteria: Any
    ) -> list[Interaction]:
        """Interactions matching ``filter`` (or the same fields as keyword arguments)."""
        return list(self._read().iter_interactions(_filter(InteractionFilter, filter, criteria)))

    def get_feedback_stats(
        self, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> FeedbackStats:
        """Aggregated statistics of interactions and feedback in [start_time, end_time)."""
        _check_range(start_time, end_time)
        return self._read().feedback_stats(start_time, end_time)

    def get_analytics(self, filter: FeedbackFilter | None = None, **criteria: Any) -> AnalyticsResult:
        """Stats, trends, top issues, the model leaderboard and annotator agreement."""
        from .analytics import build_analytics

        return build_analytics(self._read(), _filter(FeedbackFilter, filter, criteria))

    def export_feedback(
        self,
        format: ExportFormat | str = ExportFormat.JSON,
        *,
        path: str | Path | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        include_interactions: bool = True,
        include_feedback: bool = True,
    ) -> str | bytes | Path:
        """Export interactions with their feedback (or feedback alone) as JSON, JSONL, CSV or Parquet.

        With ``path`` the file is written in a stream and its path returned;
        without, the export is returned as ``str`` (``bytes`` for Parquet).
        """
        from ._export import export_records

        _check_range(start_time, end_time)
        return export_records(
            self._read(),
            format,
            path=path,
            start_time=start_time,
            end_time=end_time,
            include_interactions=include_interactions,
            include_feedback=include_feedback,
        )

    def search_similar(
        self, text: str, top_k: int = 5, similarity_threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """Interactions whose prompt is most similar to ``text`` (backends with vector search).

        Needs a backend that embeds prompts, such as ZeroDB with an ``embedding``
        function. Each result is a dict with ``interaction_id``, ``similarity``,
        ``document``, ``metadata`` and ``interaction`` (the stored Interaction or None).
        """
        search = getattr(self._storage, "search_similar", None)
        if search is None:
            raise ConfigurationError(
                f"{type(self._storage).__name__} has no vector search: use StorageBackend.ZERODB with an "
                "'embedding' function in backend_config"
            )
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("text", "must be a non-empty string", text)
        if not isinstance(top_k, int) or top_k < 1:
            raise ValidationError("top_k", "must be a positive integer", top_k)
        return list(search(text, top_k=top_k, similarity_threshold=similarity_threshold))

    def export_dataset(self, kind: str, path: str | Path, **options: Any) -> Any:
        """Build a training dataset (preference, unpaired, sft, reward); see :func:`rlhfkit.datasets.export_dataset`."""
        from .datasets import export_dataset

        return export_dataset(self._read(), kind, path, **options)


_NUMBERS = (int, float)
_MAX_FLOAT = 1.7e308  # an int above it cannot become a float
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


def _mapping(value: Any, field: str, required: bool = False) -> dict[str, Any]:
    """``value`` as a new dict; ValidationError naming ``field`` when it is not a mapping."""
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, "must be a mapping", value)
    return dict(value)


def _sequence(value: Any, field: str) -> list[Any]:
    """``value`` (a list, tuple, set or other iterable) as a new list; ValidationError naming ``field`` else."""
    if value is None:
        return []
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise ValidationError(field, "must be a list", value)
    return list(value)


_time_ns = time.time_ns
_monotonic = time.monotonic


def _plain_usage(prompt: Any, completion: Any, total: Any, keys: int) -> bool:
    """Whether log_interaction's fast path takes this token_usage: its values and how many keys it has.

    It takes ``{"prompt", "completion"}`` with an optional ``"total"``, all non-negative ints;
    anything else (other keys, floats, bools) goes through validation.
    """
    return (
        type(prompt) is int and type(completion) is int and prompt >= 0 and completion >= 0
        and (total is None or (type(total) is int and total >= 0))
        and keys == (2 if total is None else 3)
    )  # fmt: skip


def _accepts_timeout(func: Callable[..., Any]) -> bool:
    import inspect

    try:
        return len(inspect.signature(func).parameters) >= 1
    except (TypeError, ValueError):
        return False


def _feedback_error(exc: PydanticValidationError) -> ValidationError:
    """Name feedback fields as the caller passed them (``rating``, ``confidence``, ...)."""
    error = from_pydantic(exc)
    renames = {
        "data.rating.value": "rating",
        "data.rating": "rating",
        "data.binary.value": "value",
        "data.comparative.confidence": "confidence",
        "data.comparative": "alternative_ids",
        "data.multi_dimensional": "dimensions",
        "data.multi_dimensional.dimensions": "dimensions",
        "data.text.comment": "comment",
        "data.text.sentiment": "sentiment",
        "data.comparative.alternative_ids": "alternative_ids",
        "data.comparative.preferred_id": "preferred_id",
    }
    field = renames.get(error.field, error.field)
    if field == "dimensions" and "weight" in error.message:
        field = "weights"
    return ValidationError(field, error.message, error.value)


def _filter(cls: type[R], given: Any, criteria: dict[str, Any]) -> R:
    if given is not None and criteria:
        raise ValidationError("filter", "pass a filter object or keyword criteria, not both")
    if given is not None:
        if not isinstance(given, cls):
            raise ValidationError("filter", f"expected {cls.__name__}, got {type(given).__name__}")
        return given
    try:
        return cls.model_validate(criteria)  # type: ignore[attr-defined, no-any-return]
    except PydanticValidationError as exc:
        raise from_pydantic(exc) from None


def _check_range(start_time: datetime | None, end_time: datetime | None) -> None:
    for name, value in (("start_time", start_time), ("end_time", end_time)):
        if value is not None and not isinstance(value, datetime):
            raise ValidationError(name, "must be a datetime", value)


def create_rlhf_logger(config: RLHFConfig | None = None, **settings: Any) -> RLHFLogger:
    """Create an :class:`RLHFLogger` from an RLHFConfig or its fields as keyword arguments.

    Example: ``create_rlhf_logger(backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": "rlhf.db"}})``.
    """
    storage = settings.pop("storage", None)
    return RLHFLogger(config or RLHFConfig.build(**settings), storage=storage)


class AsyncRLHFLogger:
    """The asyncio face of :class:`RLHFLogger`: every method is awaitable.

    Log calls only enqueue (with batching on, the default) and return at once;
    reads and unbatched writes run in a worker thread so the event loop never
    waits on storage I/O.
    """

    def __init__(
        self, config: RLHFConfig | None = None, *, storage: Storage | None = None, **settings: Any
    ) -> None:
        self.sync = RLHFLogger(config or RLHFConfig.build(**settings), storage=storage)

    @property
    def config(self) -> RLHFConfig:
        """The logger's settings."""
        return self.sync.config

    @property
    def storage(self) -> Storage:
        """The storage backend."""
        return self.sync.storage

    @property
    def refused_records(self) -> int:
        """Accepted records that the backend then refused (see :attr:`RLHFLogger.refused_records`)."""
        return self.sync.refused_records

    async def _call(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        return await asyncio.to_thread(method, *args, **kwargs)

    async def _write(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        if self.sync.config.enable_batching and self.sync._initialized:
            return method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)

    async def __aenter__(self) -> AsyncRLHFLogger:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def initialize(self) -> None:
        """Prepare the storage backend."""
        await self._call(self.sync.initialize)

    async def log_interaction(self, prompt: str, response: str, **options: Any) -> str:
        """See :meth:`RLHFLogger.log_interaction`."""
        return await self._write(self.sync.log_interaction, prompt, response, **options)

    async def log_binary_feedback(self, interaction_id: str, value: Any, **options: Any) -> str:
        """See :meth:`RLHFLogger.log_binary_feedback`."""
        return await self._write(self.sync.log_binary_feedback, interaction_id, value, **options)

    async def log_rating(
        self, interaction_id: str, rating: float, comment: str | None = None, **options: Any
    ) -> str:
        """See :meth:`RLHFLogger.log_rating`."""
        return await self._write(self.sync.log_rating, interaction_id, rating, comment, **options)

    async def log_text_feedback(
        self, interaction_id: str, comment: str, sentiment: Sentiment | str | None = None, **options: Any
    ) -> str:
        """See :meth:`RLHFLogger.log_text_feedback`."""
        return await self._write(self.sync.log_text_feedback, interaction_id, comment, sentiment, **options)

    async def log_multi_dimensional_feedback(
        self, interaction_id: str, dimensions: Mapping[str, float], **options: Any
    ) -> str:
        """See :meth:`RLHFLogger.log_multi_dimensional_feedback`."""
        return await self._write(
            self.sync.log_multi_dimensional_feedback, interaction_id, dimensions, **options
        )

    async def log_comparative_feedback(
        self, preferred_id: str, alternative_ids: Sequence[str], **options: Any
    ) -> str:
        """See :meth:`RLHFLogger.log_comparative_feedback`."""
        return await self._write(self.sync.log_comparative_feedback, preferred_id, alternative_ids, **options)

    async def log_record(self, record: Interaction | Feedback) -> str:
        """See :meth:`RLHFLogger.log_record`."""
        return await self._write(self.sync.log_record, record)

    async def get_interaction(self, interaction_id: str) -> Interaction | None:
        """See :meth:`RLHFLogger.get_interaction`."""
        return await self._call(self.sync.get_interaction, interaction_id)

    async def get_feedback(self, feedback_id: str) -> Feedback | None:
        """See :meth:`RLHFLogger.get_feedback`."""
        return await self._call(self.sync.get_feedback, feedback_id)

    async def get_feedback_for_interaction(self, interaction_id: str) -> list[Feedback]:
        """See :meth:`RLHFLogger.get_feedback_for_interaction`."""
        return await self._call(self.sync.get_feedback_for_interaction, interaction_id)

    async def get_session(self, session_id: str) -> FeedbackSession | None:
        """See :meth:`RLHFLogger.get_session`."""
        return await self._call(self.sync.get_session, session_id)

    async def query_feedback(self, filter: FeedbackFilter | None = None, **criteria: Any) -> list[Feedback]:
        """See :meth:`RLHFLogger.query_feedback`."""
        return await self._call(self.sync.query_feedback, filter, **criteria)

    async def query_interactions(
        self, filter: InteractionFilter | None = None, **criteria: Any
    ) -> list[Interaction]:
        """See :meth:`RLHFLogger.query_interactions`."""
        return await self._call(self.sync.query_interactions, filter, **criteria)

    async def get_feedback_stats(
        self, start_time: datetime | None = None, end_time: datetime | None = None
    ) -> FeedbackStats:
        """See :meth:`RLHFLogger.get_feedback_stats`."""
        return await self._call(self.sync.get_feedback_stats, start_time, end_time)

    async def get_analytics(self, filter: FeedbackFilter | None = None, **criteria: Any) -> AnalyticsResult:
        """See :meth:`RLHFLogger.get_analytics`."""
        return await self._call(self.sync.get_analytics, filter, **criteria)

    async def export_feedback(
        self, format: ExportFormat | str = ExportFormat.JSON, **options: Any
    ) -> str | bytes | Path:
        """See :meth:`RLHFLogger.export_feedback`."""
        return await self._call(self.sync.export_feedback, format, **options)

    async def export_dataset(self, kind: str, path: str | Path, **options: Any) -> Any:
        """See :meth:`RLHFLogger.export_dataset`."""
        return await self._call(self.sync.export_dataset, kind, path, **options)

    async def search_similar(
        self, text: str, top_k: int = 5, similarity_threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """See :meth:`RLHFLogger.search_similar`."""
        return await self._call(self.sync.search_similar, text, top_k, similarity_threshold)

    async def flush(self, timeout_s: float | None = None) -> int:
        """See :meth:`RLHFLogger.flush`."""
        return await self._call(self.sync.flush, timeout_s)

    async def close(self, timeout_s: float | None = None) -> int:
        """See :meth:`RLHFLogger.close`."""
        return await self._call(self.sync.close, timeout_s)

    async def start_session(
        self, user_id: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> str:
        """See :meth:`RLHFLogger.start_session`."""
        return self.sync.start_session(user_id, metadata)

    async def end_session(self) -> FeedbackSession | None:
        """See :meth:`RLHFLogger.end_session`."""
        return self.sync.end_session()

    async def get_current_session(self) -> FeedbackSession | None:
        """See :meth:`RLHFLogger.get_current_session`."""
        return self.sync.get_current_session()
