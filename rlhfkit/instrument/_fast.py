"""Readers of the SDKs' own objects for the common shapes (worker thread only).

The generic readers of :mod:`._extract` probe every object (dict or model,
declared or extra field, the chat or the Responses name of a usage field)
through ``_g`` and ``_first``. What the SDKs hand back is nearly always one of
a few pydantic models whose declared fields all sit in the instance
``__dict__``: an OpenAI ``ChatCompletion`` or stream of chat chunks, a
Responses ``Response`` or stream of events, an Anthropic ``Message`` or stream
of events. The readers here take the values straight from those dicts,
following the generic readers step by step, so they return the same fields.

Anything else (a raw response's JSON dict, a field this SDK version does not
declare, a ``None`` where an object was expected, a usage without its details)
makes a lookup fail; the reader then returns None and the generic reader does
the work, so an unknown shape is read exactly as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .._models import Message, TokenUsage
from . import _trusted
from ._extract import (
    _ROLES,
    FINAL_RESPONSE_EVENTS,
    _anthropic_usage,
    _g,
    _int,
    _message,
    _openai_usage,
    _split_prompt,
    _text_of,
    jsonable,
    responses_stream_result,
)
from ._extract import (
    extract as _extract,
)
from ._extract import (
    read_call as _read_call,
)

__all__ = ["READERS", "extract", "openai_chat_request", "read_call"]

# What a lookup on an unexpected shape raises: a dict has no __dict__, a field is not declared ...
_SHAPE_ERRORS = (AttributeError, KeyError, TypeError, IndexError)
_NONE = type(None)


def _n(value: Any) -> int | None:
    return value if type(value) is int else _int(value)


# --------------------------------------------------------------------------- requests


def openai_chat_request(kwargs: Mapping[str, Any]) -> tuple[str, list[Message]]:
    """The prompt and context of chat messages; plain ``{"role", "content"}`` dicts without the generic probing."""
    messages = []
    message = _trusted.message
    for m in kwargs.get("messages") or []:
        if type(m) is dict and len(m) == 2:
            role, content = m.get("role"), m.get("content")
            if type(role) is str and role in _ROLES and type(content) is str:
                messages.append(message(role, content))
                continue
        messages.append(_chat_message(m))
    return _split_prompt(messages)


def _chat_message(m: Any) -> Message:
    return _message(
        str(_g(m, "role", "user")),
        _g(m, "content"),
        name=_g(m, "name"),
        tool_calls=_g(m, "tool_calls"),
        tool_call_id=_g(m, "tool_call_id"),
    )


# --------------------------------------------------------------------------- OpenAI usage


def _chat_usage(usage: Any) -> TokenUsage | None:
    """``_openai_usage`` of a chat ``CompletionUsage`` with both token details."""
    if usage is None:
        return None
    d = usage.__dict__
    p, c, details_in, details_out = (
        d["prompt_tokens"],
        d["completion_tokens"],
        d["prompt_tokens_details"],
        d["completion_tokens_details"],
    )
    return _detailed_usage(usage, p, c, d["total_tokens"], details_in, details_out)


def _responses_usage(usage: Any) -> TokenUsage | None:
    """``_openai_usage`` of a Responses ``ResponseUsage`` with both token details and no extra fields."""
    if usage is None:
        return None
    d = usage.__dict__
    if usage.__pydantic_extra__ or "prompt_tokens" in d:  # a chat name would win in the generic reader
        return _openai_usage(usage)
    i, o, details_in, details_out = (
        d["input_tokens"],
        d["output_tokens"],
        d["input_tokens_details"],
        d["output_tokens_details"],
    )
    return _detailed_usage(usage, i, o, d["total_tokens"], details_in, details_out)


def _detailed_usage(usage: Any, prompt: Any, completion: Any, total: Any, details_in: Any, details_out: Any) -> TokenUsage | None:
    """The usage of these counts and token details; the generic reader of ``usage`` when one is missing."""
    if prompt is None or completion is None or details_in is None or details_out is None:
        return _openai_usage(usage)
    p = _n(prompt) or 0
    c = _n(completion) or 0
    return _trusted.token_usage(
        p,
        c,
        _n(total) or p + c,
        _n(details_in.__dict__["cached_tokens"]),
        _n(details_out.__dict__["reasoning_tokens"]),
    )


# --------------------------------------------------------------------------- OpenAI chat


def _chat_completion(result: Any) -> dict[str, Any]:
    d = result.__dict__
    choices = d["choices"] or []
    content = tool_calls = finish = None
    if choices:
        choice = choices[0].__dict__
        finish = choice["finish_reason"]
        message = choice["message"]
        if message is not None:
            m = message.__dict__
            content, tool_calls = m["content"], m["tool_calls"]
    calls = []
    for call in tool_calls or []:
        c = call.__dict__
        function = c["function"].__dict__
        calls.append(
            {
                "id": c["id"],
                "type": c["type"] or "function",
                "name": function["name"],
                "arguments": function["arguments"],
            }
        )
    return {
        "response": content if type(content) is str else _text_of(content),
        "tool_calls": calls,
        "finish_reason": finish,
        "response_id": d["id"],
        "response_model": d["model"],
        "usage": _chat_usage(d["usage"]),
        "finished": True,
    }


def _chat_chunks(chunks: Sequence[Any]) -> dict[str, Any]:
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    out: dict[str, Any] = {"finished": False, "usage": None, "finish_reason": None}
    response_id = model = None
    whole = False
    for chunk in chunks:
        if type(chunk) is str:  # a text delta of choice 0, slimmed on the caller's thread
            text.append(chunk)
            continue
        whole = True
        d = chunk.__dict__
        response_id = response_id or d["id"]
        model = model or d["model"]
        usage = d["usage"]
        if usage is not None:
            out["usage"] = _chat_usage(usage)
        for choice in d["choices"] or []:
            c = choice.__dict__
            if (c["index"] or 0) != 0:
                continue
            delta = c["delta"].__dict__
            content = delta["content"]
            if content:
                text.append(content)
            for tc in delta["tool_calls"] or []:
                t = tc.__dict__
                slot = calls.setdefault(
                    t["index"] or 0, {"id": None, "type": "function", "name": None, "arguments": ""}
                )
                slot["id"] = slot["id"] or t["id"]
                function = t["function"]
                if function is not None:
                    f = function.__dict__
                    slot["name"] = slot["name"] or f["name"]
                    slot["arguments"] += f["arguments"] or ""
            finish = c["finish_reason"]
            if finish:
                out["finish_reason"] = finish
                out["finished"] = True
    if whole:
        out["response_id"], out["response_model"] = response_id, model
    out["response"] = "".join(text)
    out["tool_calls"] = [calls[i] for i in sorted(calls)]
    out["output_units"] = len(text)
    return out


def openai_chat_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any] | None:
    """``_openai_chat_response`` of a ChatCompletion or chat chunks; None for another shape."""
    try:
        return _chat_chunks(chunks) if chunks else _chat_completion(result)
    except _SHAPE_ERRORS:
        return None


# --------------------------------------------------------------------------- OpenAI responses


def _responses_output(response: Any) -> dict[str, Any]:
    d = response.__dict__
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for item in d["output"] or []:
        i = item.__dict__
        kind = i["type"]
        if kind == "message":
            for part in i["content"] or []:
                p = part.__dict__
                if p["type"] == "output_text":
                    text.append(p["text"] or "")
        elif kind == "function_call":
            tool_calls.append(
                {"id": i["call_id"], "type": "function", "name": i["name"], "arguments": i["arguments"]}
            )
    status = d["status"]
    details = d["incomplete_details"]
    incomplete = None if details is None else details.__dict__["reason"]
    return {
        "response": "".join(text),
        "tool_calls": tool_calls,
        "finish_reason": incomplete or status,
        "response_id": d["id"],
        "response_model": d["model"],
        "usage": _responses_usage(d["usage"]),
        "finished": status in {"completed", "incomplete", "failed"},
    }



def _responses_events(chunks: Sequence[Any]) -> dict[str, Any]:
    deltas: list[str] = []
    final = None
    response_id = model = None
    for event in chunks:
        if type(event) is str:  # an output_text delta, slimmed on the caller's thread
            deltas.append(event)
            continue
        e = event.__dict__
        kind = e["type"]
        if kind == "response.output_text.delta":
            deltas.append(e["delta"] or "")
        elif kind in FINAL_RESPONSE_EVENTS:
            final = e["response"]
        elif kind == "response.created":
            created = e["response"].__dict__
            response_id, model = created["id"], created["model"]
    return responses_stream_result(final, deltas, response_id, model, _responses_output)


def openai_responses_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any] | None:
    """``_openai_responses_response`` of a Response or Responses events; None for another shape."""
    try:
        if chunks:
            return _responses_events(chunks)
        out = _responses_output(result)
        out["finished"] = True
        return out
    except _SHAPE_ERRORS:
        return None


# --------------------------------------------------------------------------- Anthropic messages


def _claude_usage(usage: Any, base: TokenUsage | None = None) -> TokenUsage | None:
    """``_anthropic_usage`` of an Anthropic ``Usage`` / ``MessageDeltaUsage``."""
    if usage is None:
        return base
    d = usage.__dict__
    cached = _n(d["cache_read_input_tokens"])
    created = _n(d["cache_creation_input_tokens"]) or 0
    input_tokens = _n(d["input_tokens"])
    completion = _n(d["output_tokens"])
    if base is None and input_tokens is not None and completion is not None:
        prompt = input_tokens + (cached or 0) + created
        return _trusted.token_usage(prompt, completion, prompt + completion, cached, None)
    return _anthropic_usage(usage, base)


_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})


def _claude_message(result: Any) -> dict[str, Any]:
    d = result.__dict__
    text, tool_calls = [], []
    for block in d["content"] or []:
        b = block.__dict__
        kind = b["type"]
        if kind == "text":
            text.append(b["text"] or "")
        elif kind in _TOOL_BLOCKS:
            tool_calls.append(
                {
                    "id": b["id"],
                    "type": "function",
                    "name": b["name"],
                    "arguments": json.dumps(jsonable(b["input"])),
                }
            )
    return {
        "response": "".join(text),
        "tool_calls": tool_calls,
        "finish_reason": d["stop_reason"],
        "response_id": d["id"],
        "response_model": d["model"],
        "usage": _claude_usage(d["usage"]),
        "finished": True,
    }


def _claude_events(chunks: Sequence[Any]) -> dict[str, Any]:
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
        e = event.__dict__
        kind = e["type"]
        if kind == "message_start":
            message = e["message"].__dict__
            out["response_id"], out["response_model"] = message["id"], message["model"]
            out["usage"] = _claude_usage(message["usage"])
        elif kind == "content_block_start":
            block = e["content_block"].__dict__
            if block["type"] in _TOOL_BLOCKS:
                blocks[e["index"] or 0] = {
                    "id": block["id"],
                    "type": "function",
                    "name": block["name"],
                    "arguments": "",
                }
        elif kind == "content_block_delta":
            delta = e["delta"].__dict__
            delta_type = delta["type"]
            if delta_type == "text_delta":
                text_parts.append(delta["text"] or "")
            elif delta_type == "input_json_delta" and (e["index"] or 0) in blocks:
                blocks[e["index"] or 0]["arguments"] += delta["partial_json"] or ""
        elif kind == "message_delta":
            delta = e["delta"]
            reason = None if delta is None else delta.__dict__["stop_reason"]
            out["finish_reason"] = reason or out["finish_reason"]
            out["usage"] = _claude_usage(e["usage"], out["usage"])
        elif kind == "message_stop":
            out["finished"] = True
    out["response"] = "".join(text_parts)
    out["tool_calls"] = [blocks[i] for i in sorted(blocks)]
    out["output_units"] = len(text_parts)
    return out


def anthropic_response(result: Any, chunks: Sequence[Any]) -> dict[str, Any] | None:
    """``_anthropic_response`` of a Message or message events; None for another shape."""
    try:
        return _claude_events(chunks) if chunks else _claude_message(result)
    except _SHAPE_ERRORS:
        return None


READERS = {
    ("openai", "chat"): openai_chat_response,
    ("openai", "responses"): openai_responses_response,
    ("anthropic", "messages"): anthropic_response,
}
"""The fast reader of each provider API's response: (result, chunks) → fields, or None."""

_REQUESTS = {("openai", "chat"): openai_chat_request}


def extract(
    provider: str, api: str, kwargs: Mapping[str, Any], result: Any, chunks: Sequence[Any]
) -> dict[str, Any]:
    """:func:`._extract.extract` with the fast readers, the generic ones taking over for other shapes."""
    key = (provider, api)
    return _extract(provider, api, kwargs, result, chunks, _REQUESTS.get(key), READERS.get(key))


def read_call(
    provider: str, api: str, kwargs: Mapping[str, Any], result: Any, chunks: Sequence[Any]
) -> tuple[str, list[Message], dict[str, Any]]:
    """:func:`._extract.read_call` with the fast readers, the generic ones taking over for other shapes."""
    key = (provider, api)
    return _read_call(provider, api, kwargs, result, chunks, _REQUESTS.get(key), READERS.get(key))
