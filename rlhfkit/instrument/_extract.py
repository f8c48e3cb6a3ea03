"""Turn a finished :class:`~rlhfkit.instrument._calls.Call` into Interaction fields (worker thread only).

Each provider API has one function that reads the request keywords and the
response (an SDK object, a raw response's JSON, or the stream's chunks) and
returns the fields of an :class:`~rlhfkit.Interaction`. SDK objects and plain
dicts are read through the same accessor, so raw responses share the code. A
``str`` among a stream's chunks is a text delta that the caller's thread kept
as its text alone (see :mod:`._slim`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .._models import ErrorInfo, Message, TokenUsage
from . import _trusted

__all__ = ["extract", "jsonable", "model_of", "params_of", "read_call", "tools_of"]

logger = logging.getLogger("rlhfkit.instrument")

_MISSING = object()
_RAW_TYPES = frozenset({"LegacyAPIResponse", "APIResponse", "AsyncAPIResponse"})
_ROLES = frozenset({"user", "assistant", "system", "tool", "developer", "function"})
_NOT_PARAMS = frozenset(
    {
        "messages",
        "input",
        "instructions",
        "system",
        "tools",
        "model",
        "extra_headers",
        "extra_query",
        "timeout",
    }
)


def _g(obj: Any, name: str, default: Any = None) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` otherwise."""
    if obj is None:
        return default
    if isinstance(obj, dict):  # TypedDict params and raw JSON
        return obj.get(name, default)
    value = getattr(obj, name, _MISSING)
    if value is not _MISSING:
        return value
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return default


def _first(obj: Any, *names: str) -> Any:
    """The first of ``names`` that ``obj`` has (OpenAI's chat and responses usages differ)."""
    if obj is None:
        return None
    fields = getattr(type(obj), "model_fields", None)
    for name in names:
        if (
            fields is not None
            and name not in fields
            and name not in (getattr(obj, "model_extra", None) or {})
        ):
            continue
        value = _g(obj, name)
        if value is not None:
            return value
    return None


def _is_omitted(value: Any) -> bool:
    return type(value).__name__ in {"Omit", "NotGiven"}


_ATOMS = frozenset({type(None), bool, int, float, str})


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON types (SDK models dumped, classes named, the rest repr'd)."""
    if type(value) in _ATOMS or isinstance(value, bool | int | float | str):
        return value
    if depth > 20:
        return repr(value)
    if type(value) is dict or isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if type(v) in _ATOMS:
                out[k if type(k) is str else str(k)] = v
            elif not _is_omitted(v):
                out[k if type(k) is str else str(k)] = jsonable(v, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, type):
        return value.__name__
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(mode="json"), depth + 1)
        except Exception:
            return repr(value)
    if isinstance(value, Iterable) and not isinstance(value, bytes | bytearray):
        return repr(value)
    return repr(value)


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content if isinstance(content, list | tuple) else [content]:
        if isinstance(part, str):
            parts.append(part)
            continue
        text = _g(part, "text")
        if isinstance(text, str):
            parts.append(text)
        elif _g(part, "type") in {"tool_result", "function_call_output"}:
            parts.append(_text_of(_g(part, "content") or _g(part, "output")))
    return "".join(parts)


def _message(role: str, content: Any, **extra: Any) -> Message:
    role = role if role in _ROLES else "user"
    fields = {k: jsonable(v) for k, v in extra.items() if v is not None and not _is_omitted(v)}
    if not fields:
        return _trusted.message(role, _text_of(content))
    return Message(role=role, content=_text_of(content), **fields)


def _split_prompt(messages: list[Message]) -> tuple[str, list[Message]]:
    """The last user turn's text as the prompt; every other message as context, in order."""
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user" and messages[index].content.strip():
            return messages[index].content, messages[:index] + messages[index + 1 :]
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].content.strip():
            return messages[index].content, messages[:index] + messages[index + 1 :]
    return "(no text prompt)", messages


def params_of(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request parameters worth keeping, as JSON values (not the prompt, tools or model)."""
    params = {}
    for k, v in kwargs.items():
        if k in _NOT_PARAMS:
            continue
        if type(v) in _ATOMS:
            params[k] = v
        elif not _is_omitted(v):
            params[k] = jsonable(v)
    return params


def tools_of(kwargs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tools offered, as JSON dicts."""
    tools = kwargs.get("tools")
    if not tools or _is_omitted(tools):
        return []
    return [t if isinstance(t, dict) else {"tool": t} for t in (jsonable(x) for x in tools)]


_params = params_of
_tools = tools_of


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def error_info(exc: BaseException) -> ErrorInfo:
    """Type, message and HTTP status of a raised exception."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return ErrorInfo(
        type=type(exc).__name__,
        message=str(exc)[:2000],
        status_code=status if isinstance(status, int) else None,
    )


def _raw_body(result: Any) -> Any:
    """The parsed JSON of a raw (``with_raw_response``) result, the result itself otherwise."""
    if type(result).__name__ not in _RAW_TYPES:
        return result
    http_response = result.http_response
    try:
        return json.loads(http_response.content)
    except Exception:
        return None


# --------------------------------------------------------------------------- OpenAI chat


def _openai_chat_request(kwargs: Mapping[str, Any]) -> tuple[str, list[Message]]:
    messages = []
    for m in kwargs.get("messages") or []:
        messages.append(
            _message(
                str(_g(m, "role", "user")),
                _g(m, "content"),
                name=_g(m, "name"),
                tool_calls=_g(m, "tool_calls"),
                tool_call_id=_g(m, "tool_call_id"),
            )
        )
    return _split_prompt(messages)


def _openai_usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    prompt = _int(_first(usage, "prompt_tokens", "input_tokens")) or 0
    completion = _int(_first(usage, "completion_tokens", "output_tokens")) or 0
    prompt_details = _first(usage, "prompt_tokens_details", "input_tokens_details")
    completion_details = _first(usage, "completion_tokens_details", "output_tokens_details")
    return _trusted.token_usage(
        prompt,
        completion,
        _int(_g(usage, "total_tokens")) or prompt + completion,
        _int(_g(prompt_details, "cached_tokens")),
        _int(_g(completion_details, "reasoning_tokens")),
    )


def _openai_tool_call(call: Any) -> dict[str, Any]:
    function = _g(call, "function")
    return {
        "id": _g(call, "id"),
        "type": _g(call, "type") or "function",
        "name": _g(function, "name"),
        "arguments": _g(function, "arguments"),
    }


def _openai_chat_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any]:
    if not chunks:
        body = _raw_body(result)
        choices = _g(body, "choices") or []
        message = _g(choices[0], "message") if choices else None
        return {
            "response": _text_of(_g(message, "content")),
            "tool_calls": [_openai_tool_call(c) for c in _g(message, "tool_calls") or []],
            "finish_reason": _g(choices[0], "finish_reason") if choices else None,
            "response_id": _g(body, "id"),
            "response_model": _g(body, "model"),
            "usage": _openai_usage(_g(body, "usage")),
            "finished": body is not None,
        }
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"finished": False, "usage": None, "finish_reason": None}
    for chunk in chunks:
        if type(chunk) is str:  # a text delta of choice 0, slimmed on the caller's thread
            text.append(chunk)
            continue
        out["response_id"] = out.get("response_id") or _g(chunk, "id")
        out["response_model"] = out.get("response_model") or _g(chunk, "model")
        if _g(chunk, "usage") is not None:
            out["usage"] = _openai_usage(_g(chunk, "usage"))
        for choice in _g(chunk, "choices") or []:
            if (_g(choice, "index") or 0) != 0:
                continue
            delta = _g(choice, "delta")
            content = _g(delta, "content")
            if content:
                text.append(content)
            for tc in _g(delta, "tool_calls") or []:
                slot = calls.setdefault(
                    _g(tc, "index") or 0, {"id": None, "type": "function", "name": None, "arguments": ""}
                )
                slot["id"] = slot["id"] or _g(tc, "id")
                function = _g(tc, "function")
                slot["name"] = slot["name"] or _g(function, "name")
                slot["arguments"] += _g(function, "arguments") or ""
            if _g(choice, "finish_reason"):
                out["finish_reason"] = _g(choice, "finish_reason")
                out["finished"] = True
    out["response"] = "".join(text)
    out["tool_calls"] = [calls[i] for i in sorted(calls)]
    out["output_units"] = len(text)
    return out


# --------------------------------------------------------------------------- OpenAI responses


def _openai_responses_request(kwargs: Mapping[str, Any]) -> tuple[str, list[Message]]:
    messages: list[Message] = []
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append(Message(role="system", content=instructions))
    items = kwargs.get("input")
    if isinstance(items, str):
        messages.append(Message(role="user", content=items))
    elif items and not _is_omitted(items):
        for item in items:
            kind = _g(item, "type")
            if kind == "function_call_output":
                messages.append(_message("tool", _g(item, "output"), tool_call_id=_g(item, "call_id")))
            elif kind == "function_call":
                messages.append(
                    _message(
                        "assistant",
                        "",
                        tool_calls=[
                            {
                                "id": _g(item, "call_id"),
                                "name": _g(item, "name"),
                                "arguments": _g(item, "arguments"),
                            }
                        ],
                    )
                )
            else:
                messages.append(_message(str(_g(item, "role", "user")), _g(item, "content")))
    return _split_prompt(messages)


FINAL_RESPONSE_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""Responses stream events that carry the whole final response."""


def _responses_output(response: Any) -> dict[str, Any]:
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in _g(response, "output") or []:
        kind = _g(item, "type")
        if kind == "message":
            for part in _g(item, "content") or []:
                if _g(part, "type") == "output_text":
                    text.append(_g(part, "text") or "")
        elif kind == "function_call":
            tool_calls.append(
                {
                    "id": _g(item, "call_id"),
                    "type": "function",
                    "name": _g(item, "name"),
                    "arguments": _g(item, "arguments"),
                }
            )
    status = _g(response, "status")
    incomplete = _g(_g(response, "incomplete_details"), "reason")
    return {
        "response": "".join(text),
        "tool_calls": tool_calls,
        "finish_reason": incomplete or status,
        "response_id": _g(response, "id"),
        "response_model": _g(response, "model"),
        "usage": _openai_usage(_g(response, "usage")),
        "finished": status in {"completed", "incomplete", "failed"},
    }


def _openai_responses_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any]:
    if not chunks:
        body = _raw_body(result)
        out = _responses_output(body)
        out["finished"] = body is not None
        return out
    deltas: list[str] = []
    final = None
    response_id = model = None
    for event in chunks:
        if type(event) is str:  # an output_text delta, slimmed on the caller's thread
            deltas.append(event)
            continue
        kind = _g(event, "type")
        if kind == "response.output_text.delta":
            deltas.append(_g(event, "delta") or "")
        elif kind in FINAL_RESPONSE_EVENTS:
            final = _g(event, "response")
        elif kind == "response.created":
            created = _g(event, "response")
            response_id, model = _g(created, "id"), _g(created, "model")
    return responses_stream_result(final, deltas, response_id, model)


def responses_stream_result(
    final: Any, deltas: list[str], response_id: Any, model: Any, read: Callable[[Any], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """What a Responses stream gave: its final response (read by ``read``) when one arrived, else the text deltas."""
    if final is not None:
        out = (read or _responses_output)(final)
        out["output_units"] = len(deltas)
        return out
    return {
        "response": "".join(deltas),
        "tool_calls": [],
        "finish_reason": None,
        "response_id": response_id,
        "response_model": model,
        "usage": None,
        "finished": False,
        "output_units": len(deltas),
    }


# --------------------------------------------------------------------------- Anthropic messages


def _anthropic_request(kwargs: Mapping[str, Any]) -> tuple[str, list[Message]]:
    messages: list[Message] = []
    system = kwargs.get("system")
    if system and not _is_omitted(system):
        messages.append(Message(role="system", content=_text_of(system)))
    for m in kwargs.get("messages") or []:
        content = _g(m, "content")
        role = str(_g(m, "role", "user"))
        extra: dict[str, Any] = {}
        if isinstance(content, list):
            uses = [b for b in content if _g(b, "type") == "tool_use"]
            results = [b for b in content if _g(b, "type") == "tool_result"]
            if uses:
                extra["tool_calls"] = [
                    {"id": _g(b, "id"), "name": _g(b, "name"), "input": _g(b, "input")} for b in uses
                ]
            if results and len(results) == len(content):
                role = "tool"
                extra["tool_call_id"] = _g(results[0], "tool_use_id")
        messages.append(_message(role, content, **extra))
    return _split_prompt(messages)


def _anthropic_usage(usage: Any, base: TokenUsage | None = None) -> TokenUsage | None:
    if usage is None:
        return base
    cached = _int(_g(usage, "cache_read_input_tokens"))
    created = _int(_g(usage, "cache_creation_input_tokens")) or 0
    input_tokens = _int(_g(usage, "input_tokens"))
    prompt = (
        (input_tokens or 0) + (cached or 0) + created
        if input_tokens is not None
        else (base.prompt if base else 0)
    )
    completion = _int(_g(usage, "output_tokens"))
    return TokenUsage(
        prompt=prompt,
        completion=completion if completion is not None else (base.completion if base else 0),
        cached=cached if cached is not None else (base.cached if base else None),
    )


def _anthropic_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any]:
    if not chunks:
        body = _raw_body(result)
        text, tool_calls = [], []
        for block in _g(body, "content") or []:
            kind = _g(block, "type")
            if kind == "text":
                text.append(_g(block, "text") or "")
            elif kind in {"tool_use", "server_tool_use"}:
                tool_calls.append(
                    {
                        "id": _g(block, "id"),
                        "type": "function",
                        "name": _g(block, "name"),
                        "arguments": json.dumps(jsonable(_g(block, "input"))),
                    }
                )
        return {
            "response": "".join(text),
            "tool_calls": tool_calls,
            "finish_reason": _g(body, "stop_reason"),
            "response_id": _g(body, "id"),
            "response_model": _g(body, "model"),
            "usage": _anthropic_usage(_g(body, "usage")),
            "finished": body is not None,
        }
    out: dict[str, Any] = {
        "finished": False,
        "finish_reason": None,
        "usage": None,
        "response_id": None,
        "response_model": None,
    }
    text_parts: list[str] = []
    blocks: dict[int, dict[str, Any]] = {}
    for event in chunks:
        if type(event) is str:  # a text_delta, slimmed on the caller's thread
            text_parts.append(event)
            continue
        kind = _g(event, "type")
        if kind == "message_start":
            message = _g(event, "message")
            out["response_id"], out["response_model"] = _g(message, "id"), _g(message, "model")
            out["usage"] = _anthropic_usage(_g(message, "usage"))
        elif kind == "content_block_start":
            block = _g(event, "content_block")
            if _g(block, "type") in {"tool_use", "server_tool_use"}:
                blocks[_g(event, "index") or 0] = {
                    "id": _g(block, "id"),
                    "type": "function",
                    "name": _g(block, "name"),
                    "arguments": "",
                }
        elif kind == "content_block_delta":
            delta = _g(event, "delta")
            if _g(delta, "type") == "text_delta":
                text_parts.append(_g(delta, "text") or "")
            elif _g(delta, "type") == "input_json_delta" and (_g(event, "index") or 0) in blocks:
                blocks[_g(event, "index") or 0]["arguments"] += _g(delta, "partial_json") or ""
        elif kind == "message_delta":
            out["finish_reason"] = _g(_g(event, "delta"), "stop_reason") or out["finish_reason"]
            out["usage"] = _anthropic_usage(_g(event, "usage"), out["usage"])
        elif kind == "message_stop":
            out["finished"] = True
    out["response"] = "".join(text_parts)
    out["tool_calls"] = [blocks[i] for i in sorted(blocks)]
    out["output_units"] = len(text_parts)
    return out


_EXTRACTORS = {
    ("openai", "chat"): (_openai_chat_request, _openai_chat_response),
    ("openai", "responses"): (_openai_responses_request, _openai_responses_response),
    ("anthropic", "messages"): (_anthropic_request, _anthropic_response),
}


_NO_RESPONSE = (("response", ""), ("tool_calls", None), ("finish_reason", None), ("response_id", None),
                ("usage", None), ("finished", False))  # fmt: skip


def read_call(
    provider: str,
    api: str,
    kwargs: Mapping[str, Any],
    result: Any,
    chunks: Sequence[Any],
    fast_request: Callable[[Mapping[str, Any]], tuple[str, list[Message]]] | None = None,
    fast_response: Callable[[Any, Sequence[Any]], dict[str, Any] | None] | None = None,
) -> tuple[str, list[Message], dict[str, Any]]:
    """The prompt, the context and the response fields of one call.

    ``fast_request`` replaces the API's request reader; ``fast_response`` is
    tried before the response reader, which runs when it returns None.
    """
    read_request, read_response = _EXTRACTORS[(provider, api)]
    prompt, context = (fast_request or read_request)(kwargs)
    if result is None and not chunks:
        empty: dict[str, Any] = dict(_NO_RESPONSE)
        empty["tool_calls"] = []
        return prompt, context, empty
    response = fast_response(result, chunks) if fast_response is not None else None
    return prompt, context, response if response is not None else read_response(result, chunks)


def model_of(kwargs: Mapping[str, Any], response_model: Any) -> Any:
    """The model asked for, else the one the response names."""
    model = kwargs.get("model")
    return str(model) if model and not _is_omitted(model) else response_model


def extract(
    provider: str,
    api: str,
    kwargs: Mapping[str, Any],
    result: Any,
    chunks: Sequence[Any],
    fast_request: Callable[[Mapping[str, Any]], tuple[str, list[Message]]] | None = None,
    fast_response: Callable[[Any, Sequence[Any]], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """prompt, context, tools, params and the response fields of one call (see :func:`read_call`)."""
    prompt, context, response = read_call(provider, api, kwargs, result, chunks, fast_request, fast_response)
    fields: dict[str, Any] = {
        "prompt": prompt,
        "context": context,
        "tools": tools_of(kwargs),
        "model_params": params_of(kwargs),
    }
    fields.update(response)
    fields["model"] = model_of(kwargs, fields.get("response_model"))
    return fields
