"""Records of captured calls built without a second validation pass (worker thread only).

The worker builds every :class:`~rlhfkit.Interaction` from values it computed
itself: strings, floats, fresh dicts and lists, models it built. Each builder
here checks that its values are exactly what validating them would keep
unchanged (the exact type, the bounds) and then stores them with
:class:`~rlhfkit._models._TrustedBuilder`, which costs a dict copy instead of
a validator pass; when a check fails (a negative token count from a server, a
``str`` subclass, an unexpected type) it validates as before, so the record,
or the error, is the same as validation gives.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from .._models import (
    ContextData,
    ErrorInfo,
    Interaction,
    Message,
    PerformanceMetrics,
    TokenUsage,
    _construct,
    _new_id_at,
    _TrustedBuilder,
)

__all__ = ["clone", "interaction", "interaction_of", "interaction_values", "message", "metrics", "token_usage"]

_NONE = type(None)
_ROLES = frozenset({"user", "assistant", "system", "tool", "developer", "function"})

_USAGE = _TrustedBuilder(TokenUsage, ("prompt", "completion", "total", "cached", "reasoning"))
_METRICS = _TrustedBuilder(
    PerformanceMetrics,
    (
        "time_to_first_token_ms",
        "total_response_time_ms",
        "streaming_time_ms",
        "tokens_per_second",
        "retry_count",
        "cache_hit",
    ),
)
INTERACTION_FIELDS = (
    "prompt", "context", "tools", "model_params", "response", "tool_calls", "finish_reason",
    "response_id", "model", "provider", "token_usage", "latency", "metrics", "error", "incomplete",
    "user_id", "session_id", "environment", "metadata", "timestamp",
)  # fmt: skip
"""The fields the worker gives every captured interaction (its id comes from the builder)."""
_INTERACTION = _TrustedBuilder(Interaction, ("id", *INTERACTION_FIELDS))
_MESSAGE_FIELDS = frozenset({"role", "content"})
_STR_OR_NONE = (str, _NONE)


# Every TokenUsage field is given, so pydantic's __setattr__ never adds to the
# fields set: the usages built here share one (a set per record is one more
# object for the collector to count and visit while the record is buffered).
_USAGE_FIELDS_SET: set[str] | None = (
    set(_USAGE.fields_set) if _USAGE.fields_set == frozenset(TokenUsage.model_fields) else None
)


def token_usage(
    prompt: int, completion: int, total: int, cached: int | None, reasoning: int | None
) -> TokenUsage:
    """``TokenUsage(prompt=..., completion=..., total=..., cached=..., reasoning=...)``."""
    if (
        type(prompt) is int
        and prompt >= 0
        and type(completion) is int
        and completion >= 0
        and type(total) is int
        and total >= 0
        and (total or not (prompt or completion))  # else the model's validator fills the total
        and (cached is None or (type(cached) is int and cached >= 0))
        and (reasoning is None or (type(reasoning) is int and reasoning >= 0))
    ):
        values = _USAGE.values()
        values["prompt"], values["completion"], values["total"] = prompt, completion, total
        values["cached"], values["reasoning"] = cached, reasoning
        if _USAGE_FIELDS_SET is None:
            return _USAGE.build(values)
        return _construct(TokenUsage, values, _USAGE_FIELDS_SET)
    return TokenUsage(prompt=prompt, completion=completion, total=total, cached=cached, reasoning=reasoning)


def metrics(
    ttft: float | None,
    total: float | None,
    streaming: float | None,
    tps: float | None,
    retries: int,
    cache_hit: bool | None,
) -> PerformanceMetrics:
    """``PerformanceMetrics`` of a call (times in milliseconds)."""
    if (
        (ttft is None or (type(ttft) is float and ttft >= 0))
        and (total is None or (type(total) is float and total >= 0))
        and (streaming is None or (type(streaming) is float and streaming >= 0))
        and (tps is None or (type(tps) is float and tps >= 0))
        and type(retries) is int
        and retries >= 0
    ):
        values = _METRICS.values()
        values["time_to_first_token_ms"], values["total_response_time_ms"] = ttft, total
        values["streaming_time_ms"], values["tokens_per_second"] = streaming, tps
        values["retry_count"], values["cache_hit"] = retries, cache_hit
        return _METRICS.build(values)
    return PerformanceMetrics(
        time_to_first_token_ms=ttft,
        total_response_time_ms=total,
        streaming_time_ms=streaming,
        tokens_per_second=tps,
        retry_count=retries,
        cache_hit=cache_hit,
    )


def message(role: str, content: str) -> Message:
    """``Message(role=role, content=content)`` with no extra fields."""
    if type(role) is not str or role not in _ROLES or type(content) is not str:
        return Message(role=role, content=content)
    return _construct(Message, {"role": role, "content": content}, set(_MESSAGE_FIELDS), extra={})


def clone(context: ContextData) -> ContextData:
    """A shallow copy of ``context``, as ``context.model_copy()`` makes."""
    return _construct(ContextData, context.__dict__.copy(), set(context.__pydantic_fields_set__))


def _str_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def _dicts(value: Any) -> bool:
    if type(value) is not list:
        return False
    for item in value:
        if type(item) is not dict:
            return False
        for key in item:
            if type(key) is not str:
                return False
    return True


def _checked(f: dict[str, Any]) -> bool:
    prompt, latency, timestamp, context = f["prompt"], f["latency"], f["timestamp"], f["context"]
    return (
        type(prompt) is str
        and bool(prompt.strip())
        and type(f["response"]) is str
        and _str_or_none(f["model"])
        and _str_or_none(f["provider"])
        and _str_or_none(f["response_id"])
        and _str_or_none(f["finish_reason"])
        and _str_or_none(f["user_id"])
        and _str_or_none(f["session_id"])
        and (latency is None or (type(latency) is float and latency >= 0))
        and type(f["model_params"]) is dict
        and all(type(k) is str for k in f["model_params"])
        and type(f["metadata"]) is dict
        and all(type(k) is str for k in f["metadata"])
        and type(timestamp) is datetime
        and timestamp.tzinfo is UTC
        and type(context) is list
        and all(type(m) is Message for m in context)
        and _dicts(f["tools"])
        and _dicts(f["tool_calls"])
        and type(f["token_usage"]) in (TokenUsage, _NONE)
        and type(f["metrics"]) in (PerformanceMetrics, _NONE)
        and type(f["error"]) in (ErrorInfo, _NONE)
        and type(f["environment"]) in (ContextData, _NONE)
        and type(f["incomplete"]) is bool
    )


def interaction(fields: dict[str, Any]) -> Interaction:
    """``Interaction(**fields)`` for the worker's :data:`INTERACTION_FIELDS` (every one of them given)."""
    if _checked(fields):
        values = _INTERACTION.values()
        values.update(fields)
        values["id"] = _new_id_at(time.time_ns())
        return _INTERACTION.build(values)
    return Interaction(**fields)


interaction_values = _INTERACTION.values
"""A fresh dict of every Interaction field (the defaults; None for the worker's fields) for :func:`interaction_of`."""


def _str_keys(value: Any) -> bool:
    if type(value) is not dict:
        return False
    for key in value:
        if type(key) is not str:
            return False
    return True


def interaction_of(values: dict[str, Any]) -> Interaction:
    """:func:`interaction` of a dict from :func:`interaction_values` filled by the worker's call reader.

    Only the values that come from outside (the request, the server's reply,
    the context) are checked here; the others the reader builds with the exact
    type validation keeps: ``Message`` lists, dicts with ``str`` keys, our own
    models, a ``bool``, a UTC ``datetime``, a ``str`` provider.
    """
    prompt, latency = values["prompt"], values["latency"]
    params, tool_calls = values["model_params"], values["tool_calls"]
    if (
        type(prompt) is str
        and prompt.strip()
        and type(values["response"]) is str
        and type(values["model"]) in _STR_OR_NONE
        and type(values["response_id"]) in _STR_OR_NONE
        and type(values["finish_reason"]) in _STR_OR_NONE
        and type(values["user_id"]) in _STR_OR_NONE
        and type(values["session_id"]) in _STR_OR_NONE
        and (latency is None or (type(latency) is float and latency >= 0))
        and type(params) is dict
        and (not params or _str_keys(params))
        and type(tool_calls) is list
        and (not tool_calls or _dicts(tool_calls))
    ):
        values["id"] = _new_id_at(time.time_ns())
        return _INTERACTION.build(values)
    del values["id"], values["feedback_ids"]
    return Interaction(**values)

