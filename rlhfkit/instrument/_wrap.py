"""Per-instance wrappers around SDK resource methods: the hot path.

A wrapper takes a timestamp, keeps references to the request keywords and the
current context, calls the SDK, and observes what came back (a response, a
stream, a raw response). Everything else happens on the worker. Nothing here
raises into the caller: the SDK's own exceptions pass through untouched, ours
are logged.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._calls import Call, current_call, wrap_async_stream, wrap_stream
from ._context import _scope, request_context

if TYPE_CHECKING:
    from ._core import RLHFInstrumentation

__all__ = ["SDKTypes", "Undo", "async_method", "patch", "sync_method"]

logger = logging.getLogger("rlhfkit.instrument")

Undo = Callable[[], None]


@dataclass(frozen=True)
class SDKTypes:
    """The classes of one SDK that a wrapper tells apart."""

    stream: type
    async_stream: type
    raw: tuple[type, ...]


def _copy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    # Callers often append the reply to the very list they passed in; the
    # worker must see the messages as they were sent.
    copied = dict(kwargs)
    for key in ("messages", "input"):
        value = copied.get(key)
        if type(value) is list:
            copied[key] = list(value)
    return copied


def _hook_raw_close(raw: Any, call: Call) -> None:
    cls_close = type(raw).close
    ref = weakref.ref(raw)
    if inspect.iscoroutinefunction(cls_close):

        async def aclose() -> None:
            try:
                target = ref()
                if target is not None:
                    await cls_close(target)
            finally:
                call.finish("returned")

        raw.close = aclose
    else:

        def close() -> None:
            try:
                target = ref()
                if target is not None:
                    cls_close(target)
            finally:
                call.finish("returned")

        raw.close = close


def _observe_parsed(call: Call, parsed: Any, types: SDKTypes) -> None:
    if call.stream or call.done:
        return
    if isinstance(parsed, types.stream):
        wrap_stream(parsed, call)
    elif isinstance(parsed, types.async_stream):
        wrap_async_stream(parsed, call)


def _observe_raw(call: Call, raw: Any, types: SDKTypes) -> None:
    call.retries_taken = getattr(raw, "retries_taken", None)
    if not getattr(raw, "_stream", False):
        call.result = raw
        http_response = raw.http_response
        if hasattr(http_response, "_content") or http_response.is_closed:
            call.finish("returned")
            return
        # with_streaming_response: the body is read later, inside the caller's
        # block; the call is over when that block closes the raw response.
        # (Not the HTTP response: httpx closes that from inside read(), before
        # the body is stored.)
        _hook_raw_close(raw, call)
        call.finalizer = weakref.finalize(raw, call.finish, "gc")
        return
    # A raw streaming response becomes a Stream only when the caller parses it.
    cls_parse = type(raw).parse
    ref = weakref.ref(raw)
    if inspect.iscoroutinefunction(cls_parse):

        async def aparse(*args: Any, **kwargs: Any) -> Any:
            parsed = await cls_parse(ref(), *args, **kwargs)
            try:
                _observe_parsed(call, parsed, types)
            except Exception:
                logger.exception("rlhfkit could not observe a parsed raw stream")
            return parsed

        raw.parse = aparse
    else:

        def parse(*args: Any, **kwargs: Any) -> Any:
            parsed = cls_parse(ref(), *args, **kwargs)
            try:
                _observe_parsed(call, parsed, types)
            except Exception:
                logger.exception("rlhfkit could not observe a parsed raw stream")
            return parsed

        raw.parse = parse
    call.finalizer = weakref.finalize(raw, call.finish, "gc")


def observe(call: Call, result: Any, types: SDKTypes, plain: set[type] | None = None) -> None:
    """Follow ``result`` until the call is over; never raises.

    The type of a result that is over once returned (neither a stream nor a raw
    response) is added to ``plain``, so that a wrapper can finish such calls at once.
    """
    try:
        kind = type(result)
        if kind in types.raw:
            _observe_raw(call, result, types)
        elif isinstance(result, types.stream):
            wrap_stream(result, call)
        elif isinstance(result, types.async_stream):
            wrap_async_stream(result, call)
        else:
            call.result = result
            call.finish("returned")
            if plain is not None and len(plain) < _PLAIN_TYPES_KEPT:
                plain.add(kind)
    except Exception:
        logger.exception("rlhfkit could not observe an SDK result")


_PLAIN_TYPES_KEPT = 64


def sync_method(
    inst: RLHFInstrumentation, orig: Callable[..., Any], provider: str, api: str, types: SDKTypes
) -> Callable[..., Any]:
    """A wrapper of a sync SDK method that captures every call."""
    submit = inst._submit
    plain: set[type] = set()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not inst._capturing or (inst._sample_rate < 1.0 and inst._rng.random() >= inst._sample_rate):
            return orig(*args, **kwargs)
        try:
            call = Call(submit, provider, api, _copy_kwargs(kwargs), _scope.get(), request_context.get())
            token = current_call.set(call)
        except Exception:
            logger.exception("rlhfkit could not start capturing a call")
            return orig(*args, **kwargs)
        try:
            result = orig(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc, token)
            raise
        current_call.reset(token)
        if type(result) in plain:  # a response, over once returned
            call.result = result
            call.finish("returned")
        else:
            observe(call, result, types, plain)
        return result

    wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
    wrapper.__doc__ = getattr(orig, "__doc__", None)
    return wrapper


def async_method(
    inst: RLHFInstrumentation, orig: Callable[..., Any], provider: str, api: str, types: SDKTypes
) -> Callable[..., Any]:
    """A wrapper of an async SDK method that captures every call."""
    submit = inst._submit
    plain: set[type] = set()

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not inst._capturing or (inst._sample_rate < 1.0 and inst._rng.random() >= inst._sample_rate):
            return await orig(*args, **kwargs)
        try:
            call = Call(submit, provider, api, _copy_kwargs(kwargs), _scope.get(), request_context.get())
            token = current_call.set(call)
        except Exception:
            logger.exception("rlhfkit could not start capturing a call")
            return await orig(*args, **kwargs)
        try:
            result = await orig(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc, token)
            raise
        current_call.reset(token)
        if type(result) in plain:  # a response, over once returned
            call.result = result
            call.finish("returned")
        else:
            observe(call, result, types, plain)
        return result

    wrapper.__wrapped__ = orig  # type: ignore[attr-defined]
    wrapper.__doc__ = getattr(orig, "__doc__", None)
    return wrapper


def wrapper_for(
    inst: RLHFInstrumentation, orig: Callable[..., Any], provider: str, api: str, types: SDKTypes
) -> Callable[..., Any]:
    """The sync or async wrapper matching ``orig``."""
    # The SDKs decorate their async methods (``required_args``), hiding the coroutine function.
    if inspect.iscoroutinefunction(orig) or inspect.iscoroutinefunction(inspect.unwrap(orig)):
        return async_method(inst, orig, provider, api, types)
    return sync_method(inst, orig, provider, api, types)


_CACHED_WRAPPERS = ("with_raw_response", "with_streaming_response")


def patch(resource: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Undo:
    """Replace ``resource.name`` on this instance only; the returned function undoes it.

    The SDK caches ``with_raw_response`` on first use around the bound method
    of that moment; the cache is dropped so that it is rebuilt around the wrapper.
    """
    own = resource.__dict__
    had, previous = name in own, own.get(name)
    setattr(resource, name, make(getattr(resource, name)))
    for cached in _CACHED_WRAPPERS:
        own.pop(cached, None)

    def undo() -> None:
        if had:
            setattr(resource, name, previous)
        else:
            own.pop(name, None)
        for cached in _CACHED_WRAPPERS:
            own.pop(cached, None)

    return undo
