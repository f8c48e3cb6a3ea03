"""Instrumenting an ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` client instance.

``messages.create`` and ``messages.parse`` (structured outputs, which posts on
its own) are wrapped like any SDK method. ``messages.stream`` does
not go through ``create``: it returns a ``MessageStreamManager`` holding the
request to make on ``__enter__``; that request is wrapped in the manager, so
``text_stream``, ``get_final_message``, ``until_done`` and ``async with`` work
unchanged on the SDK's own ``MessageStream``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._calls import Call, current_call, install_retry_hook, remove_retry_hook, wrap_async_stream, wrap_stream
from ._context import _scope, request_context
from ._wrap import SDKTypes, Undo, _copy_kwargs, patch, wrapper_for

if TYPE_CHECKING:
    from ._core import RLHFInstrumentation

__all__ = ["instrument_anthropic", "is_anthropic_client"]

logger = logging.getLogger("rlhfkit.instrument")


def is_anthropic_client(client: Any) -> bool:
    """Whether ``client`` is an Anthropic SDK client (checked without importing anthropic)."""
    return type(client).__module__.split(".")[0] == "anthropic" and hasattr(client, "messages")


def _types() -> SDKTypes:
    import anthropic
    from anthropic import _response

    return SDKTypes(
        stream=anthropic.Stream,
        async_stream=anthropic.AsyncStream,
        raw=(_response.APIResponse, _response.AsyncAPIResponse),
    )


def _stream_method(inst: RLHFInstrumentation, orig: Callable[..., Any]) -> Callable[..., Any]:
    submit = inst._submit

    def stream(*args: Any, **kwargs: Any) -> Any:
        manager = orig(*args, **kwargs)
        if not inst._capturing or (inst._sample_rate < 1.0 and inst._rng.random() >= inst._sample_rate):
            return manager
        try:
            kwargs = _copy_kwargs(kwargs)
            scope, request = _scope.get(), request_context.get()
            name = f"_{type(manager).__name__}__api_request"
            api_request = getattr(manager, name)
            if inspect.isawaitable(api_request):

                async def run_async() -> Any:
                    call = Call(submit, "anthropic", "messages", kwargs, scope, request)
                    token = current_call.set(call)
                    try:
                        raw = await api_request
                    except BaseException as exc:
                        call.fail(exc, token)
                        raise
                    current_call.reset(token)
                    try:
                        wrap_async_stream(raw, call)
                    except Exception:
                        logger.exception("rlhfkit could not observe an Anthropic stream")
                    return raw

                setattr(manager, name, run_async())
            else:

                def run() -> Any:
                    call = Call(submit, "anthropic", "messages", kwargs, scope, request)
                    token = current_call.set(call)
                    try:
                        raw = api_request()
                    except BaseException as exc:
                        call.fail(exc, token)
                        raise
                    current_call.reset(token)
                    try:
                        wrap_stream(raw, call)
                    except Exception:
                        logger.exception("rlhfkit could not observe an Anthropic stream")
                    return raw

                setattr(manager, name, run)
        except Exception:
            logger.exception("rlhfkit could not instrument a messages.stream call")
        return manager

    stream.__wrapped__ = orig  # type: ignore[attr-defined]
    return stream


def instrument_anthropic(inst: RLHFInstrumentation, client: Any) -> list[Undo]:
    """Wrap ``client.messages.create``, ``parse`` and ``stream``; the undo functions."""
    types = _types()
    messages = client.messages
    undo = [
        # parse (structured outputs) posts on its own, not through create.
        patch(messages, method, lambda orig: wrapper_for(inst, orig, "anthropic", "messages", types))
        for method in ("create", "parse")
        if hasattr(messages, method)
    ]
    if hasattr(messages, "stream"):
        undo.append(patch(messages, "stream", lambda orig: _stream_method(inst, orig)))
    http_client = getattr(client, "_client", None)
    if http_client is not None:
        is_async = inspect.iscoroutinefunction(getattr(http_client, "send", None))
        install_retry_hook(http_client, is_async)
        undo.append(lambda: remove_retry_hook(http_client))
    return undo
