"""RLHFInstrumentation: capture every call of an instrumented client, build records off the hot path.

The caller's thread only appends a finished call to a deque. A daemon worker
(see :mod:`._worker`, woken every 50 ms) turns calls into :class:`~rlhfkit.Interaction` records,
runs instrumentors and middleware, updates the metrics, fires the callbacks
and events, keeps the records in a bounded buffer and delivers them in
batches to the destinations (an :class:`rlhfkit.RLHFLogger`, local files, a
remote collector, or a storage backend passed in). Reading methods
(``get_interactions``, ``get_metrics``, ``flush``) first process what is
pending, so they see every call that has finished.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import random
import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from .._limits import check_record
from .._models import ContextData, Feedback, Interaction
from ..errors import ClosedError, ValidationError, from_pydantic
from ._anthropic import instrument_anthropic, is_anthropic_client
from ._build import (
    error_of,
    feedback_from_event,
    token_usage,
)
from ._capture import CapturedCall, capture_decorator
from ._chain import Instrumentor, Middleware
from ._config import InstrumentationConfig
from ._context import context as _context_block
from ._context import current_scope, merge_context, request_context
from ._metrics import InstrumentationMetrics
from ._openai import instrument_openai, is_openai_client
from ._worker import EVENTS, Accepted, Worker
from ._wrap import patch

__all__ = ["EVENTS", "RLHFInstrumentation", "create_instrumentation"]

logger = logging.getLogger("rlhfkit.instrument")

F = TypeVar("F", bound=Callable[..., Any])

_live: weakref.WeakSet[RLHFInstrumentation] = weakref.WeakSet()


class RLHFInstrumentation:
    """Captures the calls of instrumented LLM clients as :class:`~rlhfkit.Interaction` records.

    Example::

        instrumentation = RLHFInstrumentation(sample_rate=0.5, storage="local")
        client = instrumentation.instrument(openai.OpenAI())
        client.chat.completions.create(model="gpt-4o", messages=[...])   # captured
        instrumentation.capture_feedback(instrumentation.get_interactions()[-1].id, "thumbs-up")
    """

    def __init__(
        self,
        config: InstrumentationConfig | None = None,
        *,
        logger: Any = None,
        storage_backend: Any = None,
        **options: Any,
    ) -> None:
        self.config = InstrumentationConfig.from_kwargs(config, **options)
        cfg = self.config
        self._rng = random.Random(cfg.sample_seed)
        self._sample_rate = float(cfg.sample_rate)
        self._enabled = cfg.enabled
        self._closed = False
        self._capturing = False
        self._update_capturing()
        self._worker = Worker(cfg, logger, storage_backend)
        self._submit = self._worker.submit
        # Weak: copies made by client.with_options() are instrumented too and
        # must not be kept alive here. Each client keeps its own undo steps.
        self._instrumented: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        _live.add(self)

    def _update_capturing(self) -> None:
        self._capturing = self._enabled and not self._closed and self.config.capture_interactions

    # ------------------------------------------------------------------ instrumenting

    def instrument(self, client: Any) -> Any:
        """Capture every call of ``client`` (an OpenAI or Anthropic client, sync or async) from now on.

        Returns the same client. Only this instance is changed, never the SDK's classes.
        """
        self._check_open()
        key = id(client)
        if self._instrumented.get(key) is client:
            return client
        if is_openai_client(client):
            undo = instrument_openai(self, client)
        elif is_anthropic_client(client):
            undo = instrument_anthropic(self, client)
        else:
            raise ValidationError(
                "client",
                f"{type(client).__name__} is not an OpenAI or Anthropic client; "
                "use @instrumentation.capture or instrumentation.capture_call for other clients",
            )
        for name in ("copy", "with_options"):
            if callable(getattr(client, name, None)):
                undo.append(patch(client, name, lambda orig: _instrumenting_copy(self, orig)))
        client.__dict__.setdefault("_rlhfkit_undo", {})[id(self)] = undo
        self._instrumented[key] = client
        return client

    def uninstrument(self, client: Any) -> Any:
        """Stop capturing ``client``'s calls and restore its methods; returns the client."""
        if self._instrumented.get(id(client)) is not client:
            return client
        del self._instrumented[id(client)]
        steps = client.__dict__.get("_rlhfkit_undo", {}).pop(id(self), None)
        if steps is not None:
            for undo in reversed(steps):
                try:
                    undo()
                except Exception:
                    logger.exception("rlhfkit could not undo an instrumentation step")
        return client

    def capture(self, func: F | None = None, *, model: str | None = None, provider: str | None = None) -> Any:
        """Decorate a function, coroutine, generator or async generator whose result is a model response.

        The prompt is the argument named ``prompt`` / ``messages`` / ``input``
        (or the first string argument); the response is the returned string, or
        the ``text`` / ``content`` of a returned dict or object, or the joined
        yielded chunks. Usable bare (``@instrumentation.capture``) or with options.
        """
        if func is None:
            return lambda f: capture_decorator(self, f, model, provider)
        return capture_decorator(self, func, model, provider)

    def capture_call(
        self,
        *,
        prompt: Any,
        model: str | None = None,
        provider: str | None = None,
        context: list[Any] | None = None,
        model_params: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CapturedCall:
        """A ``with`` block capturing one call made by any client; set ``call.response`` inside it."""
        sink = self._submit if self._capturing else None
        return CapturedCall(
            sink,
            prompt=prompt,
            model=model,
            provider=provider,
            context=context,
            model_params=model_params,
            metadata=metadata,
        )

    # ------------------------------------------------------------------ manual capture

    def capture_interaction(
        self,
        prompt: Any,
        response: Any = "",
        *,
        usage: Any = None,
        error: Any = None,
        model: str | None = None,
        **fields: Any,
    ) -> Interaction | None:
        """Capture an interaction by hand; the record, or None when sampling, an instrumentor or middleware dropped it.

        ``prompt`` and ``response`` are strings or spec ``Message`` dicts
        (``{"role", "content", ...}``); other keywords are Interaction fields.
        Bad input raises :class:`~rlhfkit.errors.ValidationError`.
        """
        self._check_open()
        if not self._capturing:
            return None
        from ._build import _prompt_and_context
        from ._capture import response_text

        try:
            context = fields.pop("context", [])
            text, history = _prompt_and_context(prompt, list(context))
            scope: Mapping[str, Any] = current_scope() or {}
            request: Mapping[str, Any] = request_context.get() or {}
            base = self._worker.context_base() if self.config.collect_context else None
            interaction = Interaction(
                prompt=text,
                response=response_text(
                    response.get("content") if isinstance(response, Mapping) else response
                ),
                context=history,
                model=model,
                token_usage=token_usage(usage),
                error=error_of(error),
                user_id=fields.pop("user_id", None) or scope.get("user_id") or request.get("user_id"),
                session_id=fields.pop("session_id", None)
                or scope.get("session_id")
                or request.get("session_id"),
                environment=fields.pop("environment", None)
                or (merge_context(base, request, scope) if base else None),
                **fields,
            )
        except PydanticValidationError as exc:
            raise from_pydantic(exc, "interaction") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError("interaction", str(exc)) from None
        check_record(interaction)
        if self._sample_rate < 1.0 and self._rng.random() >= self._sample_rate:
            return None
        if interaction.error is not None and not self.config.capture_errors:
            return None
        result = self._worker.chain(interaction)
        if result is not None:
            self._submit(Accepted(result))
        return result

    def capture_feedback(
        self,
        interaction_id: str | Mapping[str, Any],
        type: str | None = None,
        value: Any = None,
        *,
        comment: str | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_rating: int = 5,
    ) -> Feedback | None:
        """Record a person's feedback on an interaction; the Feedback, or None when feedback capture is off.

        ``type`` is one of the spec's 'thumbs-up', 'thumbs-down', 'rating',
        'text', 'custom' (see :mod:`rlhfkit.instrument._build` for the mapping
        onto the core types). A spec ``FeedbackEvent`` dict is accepted too.
        """
        self._check_open()
        if isinstance(interaction_id, Mapping):
            event = dict(interaction_id)
            interaction_id = event.get("interaction_id", event.get("interactionId", ""))
            type = event.get("type", type)
            value = event.get("value", value)
            comment = event.get("comment", comment)
            user_id = event.get("user_id", event.get("userId", user_id))
            metadata = event.get("metadata", metadata)
        scope = current_scope() or {}
        feedback = feedback_from_event(
            interaction_id,  # type: ignore[arg-type]
            type or "",
            value,
            comment=comment,
            user_id=user_id or scope.get("user_id"),
            session_id=session_id or scope.get("session_id"),
            metadata=metadata,
            max_rating=max_rating,
        )
        if not (self._enabled and self.config.capture_feedback):
            return None
        self._submit(feedback)
        return feedback

    # ------------------------------------------------------------------ context

    def context(
        self, *, user_id: str | None = None, session_id: str | None = None, **custom: Any
    ) -> AbstractContextManager[None]:
        """A block whose calls carry ``user_id``, ``session_id`` and ``custom`` (see :func:`rlhfkit.instrument.context`)."""
        return _context_block(user_id=user_id, session_id=session_id, **custom)

    def collect_context(self) -> ContextData:
        """The context a call made here and now would carry."""
        return merge_context(self._worker.context_base(), request_context.get(), current_scope())

    # ------------------------------------------------------------------ pipeline

    def add_instrumentor(self, instrumentor: Instrumentor) -> Callable[[], None]:
        """Add ``fn(interaction) -> Interaction | None`` (None drops it); returns a remover."""
        if not callable(instrumentor):
            raise ValidationError("instrumentor", "must be callable", instrumentor)
        self._worker.instrumentors.append(instrumentor)
        return lambda: (
            self._worker.instrumentors.remove(instrumentor)
            if instrumentor in self._worker.instrumentors
            else None
        )

    def add_middleware(self, middleware: Middleware) -> Callable[[], None]:
        """Add ``fn(interaction, next)`` (sync or async; never calling ``next`` drops); returns a remover."""
        if not callable(middleware):
            raise ValidationError("middleware", "must be callable", middleware)
        self._worker.middleware.append(middleware)
        return lambda: (
            self._worker.middleware.remove(middleware) if middleware in self._worker.middleware else None
        )

    def on(self, event: str, handler: Callable[[Any], Any]) -> Callable[[], None]:
        """Call ``handler(payload)`` on ``event`` (one of :data:`EVENTS`); returns an unsubscriber."""
        if event not in self._worker.handlers:
            raise ValidationError("event", f"must be one of {', '.join(EVENTS)}", event)
        if not callable(handler):
            raise ValidationError("handler", "must be callable", handler)
        self._worker.handlers[event].append(handler)
        return lambda: self.off(event, handler)

    def off(self, event: str, handler: Callable[[Any], Any]) -> None:
        """Stop calling ``handler`` on ``event``."""
        handlers = self._worker.handlers.get(event, [])
        if handler in handlers:
            handlers.remove(handler)

    # ------------------------------------------------------------------ state

    @property
    def enabled(self) -> bool:
        """Whether calls are being captured."""
        return self._enabled

    def enable(self) -> None:
        """Resume capturing."""
        self._enabled = True
        self._update_capturing()

    def disable(self) -> None:
        """Stop capturing until :meth:`enable`; instrumented clients keep working untouched."""
        self._enabled = False
        self._update_capturing()

    def get_metrics(self, top_prompts: int = 10) -> InstrumentationMetrics:
        """Counts, rates, latency percentiles and usage patterns of what was captured so far."""
        self._worker.process()
        rejected = sum(getattr(d, "rejected", 0) for d in self._worker.destinations)
        snapshot = self._worker.metrics.snapshot(top_prompts)
        if rejected:
            snapshot = dataclasses.replace(snapshot, dropped_records=snapshot.dropped_records + rejected)
        return snapshot

    def get_interactions(
        self,
        *,
        has_feedback: bool | None = None,
        start_date: datetime | float | None = None,
        end_date: datetime | float | None = None,
        session_id: str | None = None,
        model: str | None = None,
        limit: int | None = None,
    ) -> list[Interaction]:
        """Interactions in the buffer, oldest first; ``limit`` keeps the most recent ones.

        Dates are datetimes or, as in the spec, epoch milliseconds.
        """
        if limit is not None and limit < 1:
            raise ValidationError("limit", "must be at least 1", limit)
        start, end = _as_datetime(start_date, "start_date"), _as_datetime(end_date, "end_date")
        self._worker.process()
        with self._worker.lock:
            found = [
                i
                for i in self._worker.buffer.interactions.values()
                if (has_feedback is None or bool(i.feedback_ids) == has_feedback)
                and (start is None or i.timestamp >= start)
                and (end is None or i.timestamp <= end)
                and (session_id is None or i.session_id == session_id)
                and (model is None or i.model == model)
            ]
        return found[-limit:] if limit else found

    def get_feedback(self, interaction_id: str | None = None) -> list[Feedback]:
        """Feedback in the buffer, oldest first, optionally for one interaction."""
        self._worker.process()
        with self._worker.lock:
            return [
                f for f in self._worker.buffer.feedback.values() if interaction_id in (None, f.interaction_id)
            ]

    def clear(self) -> None:
        """Empty the buffer (records not yet delivered stay queued for delivery)."""
        self._worker.process()
        with self._worker.lock:
            self._worker.buffer.clear()

    def flush(self, timeout_s: float = 10.0) -> int:
        """Process pending calls and deliver every buffered record; the number still undelivered.

        Always returns within about ``timeout_s`` plus one storage write.
        """
        return self._worker.flush(timeout_s)

    async def aflush(self, timeout_s: float = 10.0) -> int:
        """:meth:`flush` for async code: runs in a thread so the event loop never waits on storage."""
        import asyncio

        return await asyncio.to_thread(self.flush, timeout_s)

    def __enter__(self) -> RLHFInstrumentation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.destroy()

    def destroy(self, timeout_s: float = 10.0) -> int:
        """Flush, uninstrument every client, stop the worker and drop listeners; the records left undelivered."""
        if self._closed:
            return 0
        remaining = self.flush(timeout_s)
        for client in list(self._instrumented.values()):
            self.uninstrument(client)
        self._closed = True
        self._update_capturing()
        self._worker.stop()
        _live.discard(self)
        return remaining

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("this RLHFInstrumentation was destroyed; create a new one")

    def __repr__(self) -> str:
        return f"RLHFInstrumentation(storage={self.config.storage!r}, enabled={self._enabled}, clients={len(self._instrumented)})"


def _instrumenting_copy(inst: RLHFInstrumentation, orig: Callable[..., Any]) -> Callable[..., Any]:
    """``client.copy`` / ``client.with_options`` returning an instrumented copy."""

    def copy(*args: Any, **kwargs: Any) -> Any:
        new = orig(*args, **kwargs)
        try:
            if not inst._closed:
                inst.instrument(new)
        except Exception:
            logger.exception("rlhfkit could not instrument a client copy")
        return new

    copy.__wrapped__ = orig  # type: ignore[attr-defined]
    return copy


def _as_datetime(value: datetime | float | None, field: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000.0, UTC)
    raise ValidationError(field, "must be a datetime or epoch milliseconds", value)


def create_instrumentation(
    config: InstrumentationConfig | None = None, **options: Any
) -> RLHFInstrumentation:
    """A new :class:`RLHFInstrumentation` (the spec's factory function)."""
    return RLHFInstrumentation(config, **options)


def _flush_all_at_exit() -> None:
    for instance in list(_live):
        try:
            instance.flush(timeout_s=2.0)
        except Exception:
            logger.exception("rlhfkit could not flush at exit")


def _reinit_after_fork() -> None:
    for instance in list(_live):
        instance._worker.after_fork()


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_after_fork)
