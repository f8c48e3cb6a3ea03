"""Instrumenting an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client instance.

Wrapped on the instance: ``chat.completions.create`` (which the
``chat.completions.stream`` helper and ``with_raw_response`` call through),
``responses.create`` (which ``responses.stream`` calls through), and the
structured-output ``parse`` of both, which post on their own rather than
through ``create``. The client's own HTTP client gets an event hook that
counts the SDK's retry attempts.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._calls import install_retry_hook, remove_retry_hook
from ._wrap import SDKTypes, Undo, patch, wrapper_for

if TYPE_CHECKING:
    from ._core import RLHFInstrumentation

__all__ = ["instrument_openai", "is_openai_client"]

_TARGETS = (("chat", "completions", "chat"), ("responses", None, "responses"))
_METHODS = ("create", "parse")


def is_openai_client(client: Any) -> bool:
    """Whether ``client`` is an OpenAI SDK client (checked without importing openai)."""
    return type(client).__module__.split(".")[0] == "openai" and hasattr(client, "chat")


def _types() -> SDKTypes:
    import openai
    from openai import _legacy_response, _response

    return SDKTypes(
        stream=openai.Stream,
        async_stream=openai.AsyncStream,
        raw=(_legacy_response.LegacyAPIResponse, _response.APIResponse, _response.AsyncAPIResponse),
    )


def _maker(
    inst: RLHFInstrumentation, api: str, types: SDKTypes
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return lambda orig: wrapper_for(inst, orig, "openai", api, types)


def instrument_openai(inst: RLHFInstrumentation, client: Any) -> list[Undo]:
    """Wrap ``client``'s chat completions and responses (create and parse); the undo functions, in order."""
    types = _types()
    undo: list[Undo] = []
    for first, second, api in _TARGETS:
        resource = getattr(client, first, None)
        if resource is not None and second is not None:
            resource = getattr(resource, second, None)
        if resource is None:
            continue
        for method in _METHODS:
            if hasattr(resource, method):
                undo.append(patch(resource, method, _maker(inst, api, types)))
    http_client = getattr(client, "_client", None)
    if http_client is not None:
        is_async = inspect.iscoroutinefunction(getattr(http_client, "send", None))
        install_retry_hook(http_client, is_async)
        undo.append(lambda: remove_retry_hook(http_client))
    return undo
