"""What the caller's thread does for one captured call: timestamps and references, nothing more.

A :class:`Call` is created when an instrumented SDK method starts and handed to
the instrumentation's worker exactly once, when the call is over: when a plain
call returns or raises, when a stream is exhausted, fails, is closed (by the
caller, by ``with`` / ``async with``, or by an SDK helper that closes the HTTP
response directly), or is garbage-collected. Turning it into an
:class:`~rlhfkit.Interaction` happens on the worker.

Streams keep their own class and timing: only the stream's private
``_iterator`` is replaced by a generator that forwards every item unchanged
(keeping what :mod:`._slim` says of it), and the HTTP response's ``close`` /
``aclose`` is hooked on the instance.
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from ._slim import Slimmer, keep, slimmer_for

__all__ = [
    "Call",
    "current_call",
    "install_retry_hook",
    "remove_retry_hook",
    "wrap_async_stream",
    "wrap_stream",
]

logger = logging.getLogger("rlhfkit.instrument")

perf_counter = time.perf_counter

current_call: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "rlhfkit_current_call", default=None
)
"""The call whose HTTP attempts the client's event hook is counting."""


class Call:
    """One SDK call in flight: its request, timestamps, and what came back."""

    __slots__ = (
        "__weakref__",
        "api",
        "attempts",
        "chunks",
        "done",
        "end",
        "error",
        "finalizer",
        "in_next",
        "kwargs",
        "provider",
        "request_ctx",
        "result",
        "retries_taken",
        "scope",
        "sink",
        "slim",
        "stream",
        "t0",
        "t_end",
        "t_first",
        "t_last",
        "wall",
    )

    def __init__(
        self,
        sink: Callable[[Call], None],
        provider: str,
        api: str,
        kwargs: dict[str, Any],
        scope: Any,
        request_ctx: Any,
    ) -> None:
        self.sink = sink
        self.provider = provider
        self.api = api
        self.kwargs = kwargs
        self.scope = scope
        self.request_ctx = request_ctx
        self.attempts = 0
        self.retries_taken: int | None = None
        self.chunks: Sequence[Any] = ()  # a list once the call turns out to be a stream
        self.done = False
        self.end: str | None = None
        self.error: BaseException | None = None
        self.finalizer: weakref.finalize | None = None  # type: ignore[type-arg]
        self.in_next = False
        self.result: Any = None
        self.slim: Slimmer = keep
        self.stream = False
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.t_end: float | None = None
        self.wall = time.time()
        self.t0 = perf_counter()

    def fail(self, exc: BaseException, token: contextvars.Token[Call | None]) -> None:
        """The SDK call raised ``exc``: leave the call's context and record it as an error."""
        current_call.reset(token)
        self.error = exc
        self.finish("error")

    def finish(self, end: str) -> None:
        """Hand the call to the worker, once; later calls do nothing."""
        if self.done:
            return
        self.done = True
        self.end = end
        if self.t_end is None:
            self.t_end = perf_counter()
        finalizer = self.finalizer
        self.finalizer = None
        try:
            if finalizer is not None:
                finalizer.detach()
            self.sink(self)
        except Exception:
            logger.exception("rlhfkit could not hand a captured call to its worker")


# --------------------------------------------------------------------------- retries


def _count_attempt(request: Any) -> None:
    call = current_call.get()
    if call is not None:
        call.attempts += 1


async def _acount_attempt(request: Any) -> None:
    call = current_call.get()
    if call is not None:
        call.attempts += 1


_hook_users: dict[int, int] = {}


def install_retry_hook(http_client: Any, is_async: bool) -> None:
    """Count every HTTP attempt of ``http_client`` against the current call.

    The SDKs retry inside their own request loop (each attempt carries
    ``x-stainless-retry-count``); a request event hook sees every attempt.
    """
    hooks = getattr(http_client, "event_hooks", None)
    if hooks is None:
        return
    hook = _acount_attempt if is_async else _count_attempt
    key = id(http_client)
    if hook not in hooks["request"]:
        hooks["request"].append(hook)
        _hook_users[key] = 0
    _hook_users[key] = _hook_users.get(key, 0) + 1


def remove_retry_hook(http_client: Any) -> None:
    """Undo one :func:`install_retry_hook`; the hook goes when its last user does."""
    hooks = getattr(http_client, "event_hooks", None)
    if hooks is None:
        return
    key = id(http_client)
    users = _hook_users.get(key, 0) - 1
    if users > 0:
        _hook_users[key] = users
        return
    _hook_users.pop(key, None)
    for hook in (_count_attempt, _acount_attempt):
        while hook in hooks["request"]:
            hooks["request"].remove(hook)


# --------------------------------------------------------------------------- streams


def _iterate(source: Iterator[Any], call: Call) -> Iterator[Any]:
    chunks: list[Any] = []
    call.chunks = chunks
    keep, clock = chunks.append, perf_counter
    try:
        call.in_next = True
        for item in source:  # the first item, timed as the first token
            call.in_next = False
            call.t_first = call.t_last = clock()
            keep(call.slim(item, call))
            yield item
            call.in_next = True
            break
        for item in source:
            call.in_next = False
            call.t_last = clock()
            keep(call.slim(item, call))
            yield item
            call.in_next = True
    except GeneratorExit:
        call.in_next = False
        call.finish("closed")
        raise
    except BaseException as exc:
        call.in_next = False
        call.error = exc
        call.finish("error")
        raise
    call.in_next = False
    call.finish("exhausted")


async def _aiterate(source: AsyncIterator[Any], call: Call) -> AsyncIterator[Any]:
    chunks: list[Any] = []
    call.chunks = chunks
    keep, clock = chunks.append, perf_counter
    try:
        call.in_next = True
        async for item in source:  # the first item, timed as the first token
            call.in_next = False
            call.t_first = call.t_last = clock()
            keep(call.slim(item, call))
            yield item
            call.in_next = True
            break
        async for item in source:
            call.in_next = False
            call.t_last = clock()
            keep(call.slim(item, call))
            yield item
            call.in_next = True
    except GeneratorExit:
        call.in_next = False
        call.finish("closed")
        raise
    except BaseException as exc:
        call.in_next = False
        call.error = exc
        call.finish("error")
        raise
    call.in_next = False
    call.finish("exhausted")


def _hook_close(response: Any, call: Call) -> None:
    # The SDK helpers (ChatCompletionStream, MessageStream, ResponseStream) close
    # the HTTP response directly, so the close is observed on the response itself.
    # A weak reference avoids a response -> closure -> response cycle; a hook
    # already there (another instrumentation) is chained, not replaced.
    previous = response.__dict__.get("close")
    cls_close = type(response).close
    ref = weakref.ref(response)

    def close() -> None:
        if not call.in_next:
            call.finish("closed")
        if previous is not None:
            previous()
            return
        target = ref()
        if target is not None:
            cls_close(target)

    response.close = close


def _hook_aclose(response: Any, call: Call) -> None:
    previous = response.__dict__.get("aclose")
    cls_aclose = type(response).aclose
    ref = weakref.ref(response)

    async def aclose() -> None:
        if not call.in_next:
            call.finish("closed")
        if previous is not None:
            await previous()
            return
        target = ref()
        if target is not None:
            await cls_aclose(target)

    response.aclose = aclose


def wrap_stream(stream: Any, call: Call) -> None:
    """Observe a sync SDK ``Stream`` in place: same object, same items, same timing."""
    call.stream = True
    call.slim = slimmer_for(call.provider, call.api)
    if call.finalizer is not None:
        call.finalizer.detach()
    source = stream._iterator
    stream._iterator = _iterate(source, call)
    response = getattr(stream, "response", None)
    if response is not None:
        _hook_close(response, call)
    call.finalizer = weakref.finalize(stream, call.finish, "gc")


def wrap_async_stream(stream: Any, call: Call) -> None:
    """Observe an ``AsyncStream`` in place: same object, same items, same timing."""
    call.stream = True
    call.slim = slimmer_for(call.provider, call.api)
    if call.finalizer is not None:
        call.finalizer.detach()
    source = stream._iterator
    stream._iterator = _aiterate(source, call)
    response = getattr(stream, "response", None)
    if response is not None:
        _hook_aclose(response, call)
    call.finalizer = weakref.finalize(stream, call.finish, "gc")
