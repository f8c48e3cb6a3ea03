"""Where a call is made: the process, the web request being served, and hand-set values.

Three layers, merged when an interaction is built (later wins):

1. the process (platform, Python version, hostname, locale, timezone), computed once;
2. the web request, put in :data:`request_context` by the ASGI / WSGI middlewares;
3. values set by hand with :func:`context` (user id, session id, custom keys).

Layers 2 and 3 live in :mod:`contextvars`, so they follow asyncio tasks and
threads started through ``contextvars.copy_context().run``. The hot path only
reads the two context variables; merging happens on the background worker.
"""

from __future__ import annotations

import contextvars
import locale
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .._models import ContextData
from ._trusted import clone

__all__ = [
    "RequestContext",
    "context",
    "current_scope",
    "process_context",
    "request_context",
]


class RequestContext(dict[str, Any]):
    """The web request's values (``user_agent``, ``url``, ``user_id`` ...), a plain dict."""


request_context: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "rlhfkit_request_context", default=None
)
"""The current web request's context, set by the middlewares of :mod:`rlhfkit.instrument._web`."""

_scope: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "rlhfkit_scope", default=None
)


def current_scope() -> Mapping[str, Any] | None:
    """The values set by the innermost :func:`context` block, or None."""
    return _scope.get()


@contextmanager
def context(*, user_id: str | None = None, session_id: str | None = None, **custom: Any) -> Iterator[None]:
    """Attach ``user_id``, ``session_id`` and custom keys to every call made inside the block.

    Blocks nest (inner values win) and follow asyncio tasks and
    ``contextvars.copy_context()`` threads started inside.

    Example::

        with context(user_id="u-1", session_id="s-9", plan="pro"):
            client.chat.completions.create(...)
    """
    outer = _scope.get() or {}
    merged: dict[str, Any] = dict(outer)
    merged["custom"] = {**outer.get("custom", {}), **custom}
    if user_id is not None:
        merged["user_id"] = user_id
    if session_id is not None:
        merged["session_id"] = session_id
    token = _scope.set(merged)
    try:
        yield
    finally:
        _scope.reset(token)


@lru_cache(maxsize=1)
def _process_values() -> tuple[tuple[str, Any], ...]:
    lang: str | None
    try:
        lang = locale.getlocale()[0] or os.environ.get("LANG")
    except ValueError:
        lang = os.environ.get("LANG")
    return (
        ("platform", f"{platform.system()} {platform.release()}".strip() or sys.platform),
        ("python_version", platform.python_version()),
        ("hostname", socket.gethostname()),
        ("language", lang),
        ("timezone", os.environ.get("TZ") or time.tzname[time.daylight and time.localtime().tm_isdst > 0]),
    )


def process_context(
    *, app_version: str | None = None, environment: str | None = None, custom: Mapping[str, Any] | None = None
) -> ContextData:
    """The process's side of the context; app version and environment from the arguments or ``RLHFKIT_*``."""
    values = dict(_process_values())
    return ContextData(
        **values,
        app_version=app_version or os.environ.get("RLHFKIT_APP_VERSION"),
        environment=environment or os.environ.get("RLHFKIT_ENVIRONMENT"),
        custom=dict(custom or {}),
    )


_CONTEXT_FIELDS = frozenset(ContextData.model_fields) - {"custom"}


def merge_context(
    base: ContextData, request: Mapping[str, Any] | None, scope: Mapping[str, Any] | None
) -> ContextData:
    """``base`` overlaid with the web request's values and the hand-set scope (later wins)."""
    if not request and not scope:
        return clone(base)
    data = base.model_dump()
    custom = dict(data.get("custom") or {})
    for layer in (request, scope):
        if not layer:
            continue
        for key, value in layer.items():
            if key == "custom":
                custom.update(value or {})
            elif key in _CONTEXT_FIELDS:
                if value is not None:
                    data[key] = value
            elif key != "session_id":
                custom[key] = value
    data["custom"] = custom
    return ContextData(**data)
