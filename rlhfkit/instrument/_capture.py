"""Capturing any client by hand: the ``@capture`` decorator and the ``capture_call`` block.

Both fill a :class:`CapturedCall` on the caller's thread (timestamps and
references only) and hand it to the worker when the call is over, like the
SDK wrappers do.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from ._context import _scope, request_context

if TYPE_CHECKING:
    from ._core import RLHFInstrumentation

__all__ = ["CapturedCall", "capture_decorator", "response_text"]

logger = logging.getLogger("rlhfkit.instrument")

F = TypeVar("F", bound=Callable[..., Any])

_PROMPT_NAMES = ("prompt", "message", "messages", "input", "query", "question", "text")
_TEXT_NAMES = ("text", "content", "response", "output", "output_text", "answer", "completion")


def response_text(value: Any) -> str:
    """The text of a response: a string, or the first text-like key / attribute of a dict or object."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    for name in _TEXT_NAMES:
        found = value.get(name) if isinstance(value, dict) else getattr(value, name, None)
        if isinstance(found, str):
            return found
        if found is not None and not callable(found):
            return response_text(found)
    return str(value)


class CapturedCall:
    """One hand-captured call; set ``response`` (and optionally usage, model ...) inside the block.

    Example::

        with instrumentation.capture_call(prompt=question, model="my-model") as call:
            call.response = my_client.ask(question)
            call.usage = {"prompt": 12, "completion": 40}
    """

    def __init__(
        self,
        sink: Callable[[CapturedCall], None] | None,
        *,
        prompt: Any,
        model: str | None = None,
        provider: str | None = None,
        context: list[Any] | None = None,
        model_params: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self._sink = sink
        self.prompt = prompt
        self.model = model
        self.provider = provider
        self.context = list(context or [])
        self.model_params = dict(model_params or {})
        self.metadata = dict(metadata or {})
        self.response: Any = None
        self.usage: Any = None
        self.tool_calls: list[dict[str, Any]] = []
        self.finish_reason: str | None = None
        self.error: BaseException | None = None
        self.incomplete = False
        self.chunks: list[Any] = []
        self.scope = _scope.get()
        self.request_ctx = request_context.get()
        self.wall = time.time()
        self.t0 = time.perf_counter()
        self.t_first: float | None = None
        self.t_end: float | None = None
        self.done = False

    def add_chunk(self, chunk: Any) -> None:
        """Record one streamed piece of the response (times the first one)."""
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.chunks.append(chunk)

    def finish(self) -> None:
        """End the call and hand it to the worker (once)."""
        if self.done:
            return
        self.done = True
        self.t_end = time.perf_counter()
        if self._sink is not None:
            try:
                self._sink(self)
            except Exception:
                logger.exception("rlhfkit could not hand a captured call to its worker")

    def __enter__(self) -> CapturedCall:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.error = exc
        self.finish()


def _prompt_from_args(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    for name in _PROMPT_NAMES:
        if name in kwargs:
            return kwargs[name]
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {}
    for name in _PROMPT_NAMES:
        if name in bound:
            return bound[name]
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, str | list):
            return value
    return None


def capture_decorator(inst: RLHFInstrumentation, func: F, model: str | None, provider: str | None) -> F:
    """Wrap ``func`` (function, coroutine function, generator or async generator) to capture its calls."""

    def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> CapturedCall | None:
        if not inst._capturing or (inst._sample_rate < 1.0 and inst._rng.random() >= inst._sample_rate):
            return None
        try:
            prompt = _prompt_from_args(func, args, kwargs)
            params = {k: v for k, v in kwargs.items() if k not in _PROMPT_NAMES}
            return CapturedCall(
                inst._submit,
                prompt=prompt,
                model=model or kwargs.get("model"),
                provider=provider,
                model_params=params,
                metadata={"function": getattr(func, "__qualname__", repr(func))},
            )
        except Exception:
            logger.exception("rlhfkit could not start capturing a call")
            return None

    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            call = start(args, kwargs)
            if call is None:
                async for item in func(*args, **kwargs):
                    yield item
                return
            finished = False
            try:
                async for item in func(*args, **kwargs):
                    call.add_chunk(item)
                    yield item
                finished = True
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.error = exc
                raise
            finally:
                call.incomplete = not finished
                call.finish()

        return agen_wrapper  # type: ignore[return-value]

    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            call = start(args, kwargs)
            if call is None:
                return (yield from func(*args, **kwargs))
            finished = False
            try:
                for item in func(*args, **kwargs):
                    call.add_chunk(item)
                    yield item
                finished = True
            except GeneratorExit:
                raise
            except BaseException as exc:
                call.error = exc
                raise
            finally:
                call.incomplete = not finished
                call.finish()

        return gen_wrapper  # type: ignore[return-value]

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = start(args, kwargs)
            if call is None:
                return await func(*args, **kwargs)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                call.error = exc
                call.finish()
                raise
            call.response = result
            call.finish()
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = start(args, kwargs)
        if call is None:
            return func(*args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            call.error = exc
            call.finish()
            raise
        call.response = result
        call.finish()
        return result

    return wrapper  # type: ignore[return-value]
