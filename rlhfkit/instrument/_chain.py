"""Instrumentors and middleware: the plain callables a captured interaction passes through.

* an **instrumentor** ``fn(interaction) -> Interaction | None`` returns the
  interaction (changed or not), or None to drop it;
* a **middleware** ``fn(interaction, next)`` (sync or ``async``) calls
  ``next()`` to continue, ``next(changed)`` to continue with a changed
  interaction, and drops the record by never calling it. ``next()`` may be
  awaited or not. The chain is sequential: a middleware runs to its end before
  the next one starts.

A callable that raises is logged and skipped: the record continues unchanged.
Async middleware runs on one private event loop thread, so the chain can run
from any thread, inside or outside a running event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Generator
from typing import Any

from .._models import Interaction

__all__ = ["AsyncRunner", "Instrumentor", "Middleware", "run_chain"]

logger = logging.getLogger("rlhfkit.instrument")

Instrumentor = Callable[[Interaction], Interaction | None]
Middleware = Callable[[Interaction, Callable[..., Any]], Any]

_MIDDLEWARE_TIMEOUT_S = 30.0


class _Continued:
    """What ``next()`` returns: nothing to wait for, but awaitable for ``await next()``."""

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_CONTINUED = _Continued()


class AsyncRunner:
    """One daemon thread running an event loop for async middleware and handlers."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="rlhfkit-async-hooks", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, awaitable: Awaitable[Any], timeout_s: float = _MIDDLEWARE_TIMEOUT_S) -> Any:
        """Run ``awaitable`` on the runner's loop and wait for its result."""

        async def wrap() -> Any:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(wrap(), self._ensure())
        return future.result(timeout_s)

    def close(self) -> None:
        """Stop the loop thread."""
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = None


def run_chain(
    interaction: Interaction,
    instrumentors: list[Instrumentor],
    middleware: list[Middleware],
    runner: AsyncRunner,
    on_error: Callable[[], None],
) -> Interaction | None:
    """``interaction`` after every instrumentor and middleware, or None when one dropped it."""
    current = interaction
    for instrumentor in instrumentors:
        try:
            result = instrumentor(current)
        except Exception:
            logger.exception(
                "rlhfkit instrumentor %r failed; the interaction continues unchanged", instrumentor
            )
            on_error()
            continue
        if result is None:
            return None
        if isinstance(result, Interaction):
            current = result
        else:
            logger.error(
                "rlhfkit instrumentor %r returned %s, not an Interaction; ignored", instrumentor, type(result)
            )
            on_error()
    for step in middleware:
        state: dict[str, Any] = {"next": False, "value": None}

        def proceed(changed: Interaction | None = None, _state: dict[str, Any] = state) -> _Continued:
            _state["next"] = True
            _state["value"] = changed
            return _CONTINUED

        try:
            result = step(current, proceed)
            if inspect.isawaitable(result):
                runner.run(result)
        except Exception:
            logger.exception("rlhfkit middleware %r failed; the interaction continues unchanged", step)
            on_error()
            continue
        if not state["next"]:
            return None
        if isinstance(state["value"], Interaction):
            current = state["value"]
    return current
