"""The fast readers and trusted builders record exactly what the generic readers and validation record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from openai._models import construct_type
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from rlhfkit import Interaction, TokenUsage
from rlhfkit._models import ContextData, Message, PerformanceMetrics
from rlhfkit.instrument import RLHFInstrumentation, _extract, _fast, _trusted
from rlhfkit.instrument._calls import Call
from rlhfkit.instrument._slim import slimmer_for
from rlhfkit.testing import FakeLLMServer

from .conftest import user

KEYS = [("openai", "chat"), ("openai", "responses"), ("anthropic", "messages")]


def same_as_generic(provider: str, api: str, kwargs: dict[str, Any], result: Any, chunks: list[Any]) -> dict[str, Any]:
    """Assert that the fast path reads ``result`` / ``chunks`` itself and gives the generic fields; return them."""
    assert _fast.READERS[(provider, api)](result, chunks) is not None, "the fast reader fell back"
    fast = _fast.extract(provider, api, kwargs, result, chunks)
    generic = _extract.extract(provider, api, kwargs, result, chunks)
    assert fast == generic
    return fast


def same_via_fallback(provider: str, api: str, kwargs: dict[str, Any], result: Any, chunks: list[Any]) -> None:
    """Assert that the fast reader leaves ``result`` / ``chunks`` to the generic one, with the same fields."""
    assert _fast.READERS[(provider, api)](result, chunks) is None
    assert _fast.extract(provider, api, kwargs, result, chunks) == _extract.extract(
        provider, api, kwargs, result, chunks
    )


def _chat_completion(message: dict[str, Any], usage: dict[str, Any] | None, **extra: Any) -> Any:
    value = {
        "id": "cc-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", **message}}],
        "usage": usage, **extra,
    }  # fmt: skip
    return construct_type(type_=ChatCompletion, value=value)


USAGE = {
    "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 2},
}  # fmt: skip


def test_chat_completion_with_tool_calls_and_usage_details_reads_the_same() -> None:
    """Text, function tool calls, finish reason, id, model and cached / reasoning tokens match the generic reader."""
    message = {
        "content": "Let me check.",
        "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
            {"id": "t2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
        ],
    }
    kwargs = {"model": "gpt-x", "messages": [{"role": "system", "content": "Be brief."}, *user("Weather?")]}
    fields = same_as_generic("openai", "chat", kwargs, _chat_completion(message, USAGE), [])
    assert fields["response"] == "Let me check." and len(fields["tool_calls"]) == 2
    assert fields["usage"] == TokenUsage(prompt=11, completion=7, total=18, cached=4, reasoning=2)
    assert fields["prompt"] == "Weather?" and fields["context"] == [Message(role="system", content="Be brief.")]


def test_chat_completion_edge_shapes_read_the_same() -> None:
    """No content, no usage, usage without details or without a total, no choices: same fields either way."""
    bare_usage = {"prompt_tokens": 3, "completion_tokens": 2}
    same_as_generic("openai", "chat", {}, _chat_completion({"content": None}, None), [])
    same_as_generic("openai", "chat", {}, _chat_completion({"content": "hi"}, bare_usage), [])
    no_total = {**USAGE, "total_tokens": 0}
    assert same_as_generic("openai", "chat", {}, _chat_completion({"content": "hi"}, no_total), [])["usage"].total == 18
    empty = construct_type(
        type_=ChatCompletion, value={"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": []}
    )
    same_as_generic("openai", "chat", {}, empty, [])


def test_unexpected_shapes_fall_back_to_the_generic_reader() -> None:
    """A raw JSON dict, a custom tool call and a missing delta are read by the generic reader."""
    same_via_fallback("openai", "chat", {}, {"id": "x", "choices": [], "model": "m"}, [])
    custom = {"content": None, "tool_calls": [{"id": "c1", "type": "custom", "custom": {"name": "grammar", "input": "x"}}]}
    same_via_fallback("openai", "chat", {}, _chat_completion(custom, USAGE), [])
    chunk = construct_type(
        type_=ChatCompletionChunk,
        value={"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": None, "finish_reason": "stop"}]},
    )  # fmt: skip
    same_via_fallback("openai", "chat", {}, None, [chunk])
    for provider, api in KEYS:
        assert _fast.READERS[(provider, api)](object(), []) is None


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, index: int = 0, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": index, "delta": delta, "finish_reason": finish}]
    value = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": "m-1", "choices": choices}
    return construct_type(type_=ChatCompletionChunk, value={**value, **extra})


def test_chat_chunks_read_the_same_slimmed_or_whole() -> None:
    """Text, tool-call pieces, other choices, finish and usage chunks give the generic fields, slimmed or not."""
    chunks = [
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"content": "Paris "}),
        _chunk({"content": "other choice"}, index=1),
        _chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": '{"a"'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "t2", "type": "function"}]}),
        _chunk({"content": "."}, finish="stop"),
        _chunk(None, usage=USAGE),
    ]
    kwargs = {"model": "m-1", "messages": user("hi"), "stream": True, "stream_options": {"include_usage": True}}
    whole = same_as_generic("openai", "chat", kwargs, None, chunks)
    assert whole["response"] == "Paris ." and whole["tool_calls"][0]["arguments"] == '{"a": 1}'
    call = Call(lambda c: None, "openai", "chat", {}, None, None)
    call.slim = slimmer_for("openai", "chat")
    slim = [call.slim(chunk, call) for chunk in chunks]
    assert "Paris " in slim
    assert same_as_generic("openai", "chat", kwargs, None, slim) == whole
    assert same_as_generic("openai", "chat", {}, None, ["only", " text"])["response"] == "only text"


RESPONSE = {
    "id": "r-1", "object": "response", "created_at": 1, "model": "gpt-r", "status": "incomplete",
    "incomplete_details": {"reason": "max_output_tokens"}, "parallel_tool_calls": False, "tool_choice": "auto",
    "tools": [],
    "output": [
        {"type": "reasoning", "id": "rs", "summary": []},
        {"type": "message", "id": "m", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "Hel", "annotations": []},
                     {"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": "lo", "annotations": []}]},
        {"type": "function_call", "id": "f", "call_id": "call-1", "name": "search", "arguments": '{"q":1}'},
    ],
    "usage": {"input_tokens": 9, "output_tokens": 5, "total_tokens": 14,
              "input_tokens_details": {"cached_tokens": 3}, "output_tokens_details": {"reasoning_tokens": 1}},
}  # fmt: skip


def test_responses_response_and_events_read_the_same() -> None:
    """A Response and a stream of Responses events give the generic fields (usage details included)."""
    response = construct_type(type_=Response, value=RESPONSE)
    kwargs = {"model": "gpt-r", "input": "find", "instructions": "Be brief."}
    fields = same_as_generic("openai", "responses", kwargs, response, [])
    assert fields["response"] == "Hello" and fields["finish_reason"] == "max_output_tokens"
    assert fields["usage"] == TokenUsage(prompt=9, completion=5, total=14, cached=3, reasoning=1)
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {**RESPONSE, "output": [], "usage": None}},
        {"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hel", "item_id": "m",
         "output_index": 0, "content_index": 0, "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": {**RESPONSE, "status": "completed",
                                                                            "incomplete_details": None}},
    ]  # fmt: skip
    chunks = [construct_type(type_=ResponseStreamEvent, value=e) for e in events]
    assert same_as_generic("openai", "responses", kwargs, None, chunks)["finished"] is True
    assert same_as_generic("openai", "responses", kwargs, None, chunks[:2])["response_id"] == "r-1"
    no_details = {**RESPONSE, "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}}
    same_as_generic("openai", "responses", kwargs, construct_type(type_=Response, value=no_details), [])


CLAUDE_MESSAGE = {
    "id": "msg-1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "tool_use",
    "stop_sequence": None,
    "content": [{"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "tu", "name": "weather", "input": {"city": "Paris"}}],
    "usage": {"input_tokens": 10, "output_tokens": 6, "cache_read_input_tokens": 5,
              "cache_creation_input_tokens": 2},
}  # fmt: skip


def test_anthropic_message_and_events_read_the_same() -> None:
    """A Message and a stream of message events give the generic fields (cache tokens included)."""
    from anthropic._models import construct_type
    from anthropic.types import Message as ClaudeMessage
    from anthropic.types import RawMessageStreamEvent

    message = construct_type(type_=ClaudeMessage, value=CLAUDE_MESSAGE)
    kwargs = {"model": "claude-x", "system": "Be brief.", "messages": user("Weather?")}
    fields = same_as_generic("anthropic", "messages", kwargs, message, [])
    assert fields["usage"] == TokenUsage(prompt=17, completion=6, total=23, cached=5)
    assert fields["tool_calls"][0]["arguments"] == '{"city": "Paris"}'
    bare = {**CLAUDE_MESSAGE, "usage": {"input_tokens": 1, "output_tokens": 1}}
    same_as_generic("anthropic", "messages", kwargs, construct_type(type_=ClaudeMessage, value=bare), [])
    events: list[Any] = [
        {"type": "message_start", "message": {**CLAUDE_MESSAGE, "content": [], "stop_reason": None}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    chunks = [construct_type(type_=RawMessageStreamEvent, value=e) for e in events]
    fields = same_as_generic("anthropic", "messages", kwargs, None, chunks)
    assert fields["finished"] is True and fields["usage"].completion == 9
    assert same_as_generic("anthropic", "messages", kwargs, None, ["Bon", "jour"])["response"] == "Bonjour"


def test_chat_request_fast_path_matches_the_generic_reader() -> None:
    """Plain role/content dicts and richer messages give the generic prompt and context."""
    messages: list[Any] = [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "t", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "content": "42", "tool_call_id": "t"},
        {"role": "robot", "content": "odd role"},
        {"role": "user", "content": [{"type": "text", "text": "a picture:"}, {"type": "image_url"}]},
        {"role": "user", "content": "the question"},
        {"role": "assistant", "content": ""},
    ]  # fmt: skip
    fast = _fast.openai_chat_request({"messages": messages})
    assert fast == _extract._openai_chat_request({"messages": messages})
    assert fast[0] == "the question"
    for a, b in zip(fast[1], _extract._openai_chat_request({"messages": messages})[1], strict=True):
        assert a.model_dump() == b.model_dump()


# --------------------------------------------------------------------------- trusted builders


def test_trusted_models_equal_validated_ones_and_bad_values_still_fail() -> None:
    """Usage, metrics and messages equal their validated twins; values validation refuses are still refused."""
    assert _trusted.token_usage(3, 4, 7, 1, None) == TokenUsage(prompt=3, completion=4, total=7, cached=1)
    assert _trusted.token_usage(3, 4, 0, None, None).total == 7
    shared = _trusted.token_usage(1, 2, 3, None, None)
    shared.cached = 5  # every field is in the fields set: assigning one leaves the set (shared or not) as it is
    assert shared.model_fields_set == set(TokenUsage.model_fields) == _trusted.token_usage(1, 1, 2, 0, 0).model_fields_set
    with pytest.raises(pydantic.ValidationError):
        _trusted.token_usage(-1, 4, 3, None, None)
    assert _trusted.metrics(1.0, 2.0, None, 3.5, 1, True) == PerformanceMetrics(
        time_to_first_token_ms=1.0, total_response_time_ms=2.0, tokens_per_second=3.5, retry_count=1, cache_hit=True
    )
    assert _trusted.metrics(None, 2, None, None, 0, None).total_response_time_ms == 2.0
    with pytest.raises(pydantic.ValidationError):
        _trusted.metrics(None, -1.0, None, None, 0, None)
    built = _trusted.message("user", "hi")
    assert built == Message(role="user", content="hi") and built.model_dump() == {"role": "user", "content": "hi"}
    with pytest.raises(pydantic.ValidationError):
        _trusted.message("robot", "hi")
    base = ContextData(platform="Linux", custom={"k": 1})
    copy = _trusted.clone(base)
    assert copy == base.model_copy() and copy is not base
    copy.platform = "other"
    assert base.platform == "Linux"


def _fields(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "prompt": "q", "context": [_trusted.message("system", "s")], "tools": [{"type": "function"}],
        "model_params": {"temperature": 0.1}, "response": "a", "tool_calls": [], "finish_reason": "stop",
        "response_id": "r", "model": "m", "provider": "openai", "token_usage": _trusted.token_usage(1, 2, 3, 0, 0),
        "latency": 12.5, "metrics": _trusted.metrics(None, 12.5, None, 160.0, 0, False), "error": None,
        "incomplete": False, "user_id": "u", "session_id": None, "environment": ContextData(platform="Linux"),
        "metadata": {"api": "chat.completions", "stream": False},
        "timestamp": datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC),
    }  # fmt: skip
    fields.update(changes)
    return fields


def test_trusted_interaction_equals_the_validated_one() -> None:
    """The interaction built from known-good fields dumps exactly as the validated one (ids aside)."""
    fast = _trusted.interaction(_fields())
    slow = Interaction(**_fields())
    assert fast.id and fast.id != slow.id
    assert fast.model_dump(exclude={"id"}) == slow.model_dump(exclude={"id"})
    assert fast.model_dump_json(exclude={"id"}) == slow.model_dump_json(exclude={"id"})


@pytest.mark.parametrize(
    "changes",
    [
        {"prompt": "   "},
        {"latency": -1.0},
        {"response_id": 12},
        {"tool_calls": ["not a dict"]},
        {"context": [{"role": "user", "content": "a dict"}]},
        {"timestamp": "2024-01-01T00:00:00"},
    ],
)
def test_trusted_interaction_validates_what_it_cannot_vouch_for(changes: dict[str, Any]) -> None:
    """Fields that are not exactly of their type go through validation: refused or converted as before."""
    try:
        expected = Interaction(**_fields(**changes))
    except pydantic.ValidationError:
        with pytest.raises(pydantic.ValidationError):
            _trusted.interaction(_fields(**changes))
        return
    got = _trusted.interaction(_fields(**changes))
    assert got.model_dump(exclude={"id"}) == expected.model_dump(exclude={"id"})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"prompt": "   "},
        {"latency": -1.0},
        {"response_id": 12},
        {"model": 3},
        {"finish_reason": 1},
        {"model_params": {1: "x"}},
        {"tool_calls": ["not a dict"]},
    ],
)
def test_worker_interaction_validates_the_values_from_outside(changes: dict[str, Any]) -> None:
    """The worker's build checks request and reply values: anything not exactly of its type is validated as before."""

    def values() -> dict[str, Any]:
        filled = _trusted.interaction_values()
        filled.update(_fields(**changes))
        return filled

    try:
        expected = Interaction(**_fields(**changes))
    except pydantic.ValidationError:
        with pytest.raises(pydantic.ValidationError):
            _trusted.interaction_of(values())
        return
    got = _trusted.interaction_of(values())
    assert got.id and got.feedback_ids == []
    assert got.model_dump(exclude={"id"}) == expected.model_dump(exclude={"id"})
    assert got.model_dump_json(exclude={"id"}) == expected.model_dump_json(exclude={"id"})
    assert got.model_fields_set == expected.model_fields_set | {"id"}


# --------------------------------------------------------------------------- real SDK objects


@pytest.fixture
def captured(inst: RLHFInstrumentation, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """The SDK calls the instrumentation's worker handles, in order."""
    calls: list[Call] = []
    handle = inst._worker._handle

    def keep(item: Any) -> None:
        if isinstance(item, Call):
            calls.append(item)
        handle(item)

    monkeypatch.setattr(inst._worker, "_handle", keep)
    yield calls


def test_real_sdk_results_take_the_fast_path_and_read_the_same(
    oai: openai.OpenAI, claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer,
    captured: list[Call],
) -> None:  # fmt: skip
    """Chat, Responses and Messages results from the real SDKs, streamed or not, read the same either way."""
    oai.chat.completions.create(model="m", messages=user("plain"))
    server.queue_reply(cached_tokens=2, reasoning_tokens=3)
    for _ in oai.chat.completions.create(
        model="m", messages=user("stream"), stream=True, stream_options={"include_usage": True}
    ):
        pass
    server.queue_reply(tool_calls=[{"name": "f", "arguments": {"x": 1}}])
    for _ in oai.chat.completions.create(model="m", messages=user("tools"), stream=True):
        pass
    oai.responses.create(model="m", input="responses")
    with oai.responses.stream(model="m", input="responses stream") as events:
        events.until_done()
    claude.messages.create(model="c", max_tokens=20, messages=user("claude"))
    with claude.messages.stream(model="c", max_tokens=20, messages=user("claude stream")) as stream:
        stream.until_done()
    inst.flush()
    assert len(captured) == 7
    for call in captured:
        same_as_generic(call.provider, call.api, call.kwargs, call.result, call.chunks)
    assert [i.token_usage.cached for i in inst.get_interactions()[1:2] if i.token_usage] == [2]


def test_params_and_jsonable_keep_plain_values_and_drop_omitted_ones() -> None:
    """Request parameters: atoms kept as they are, omitted SDK values dropped, keys made strings, models dumped."""
    from openai import NOT_GIVEN

    usage = construct_type(type_=openai.types.CompletionUsage, value={"prompt_tokens": 1, "completion_tokens": 2,
                                                                      "total_tokens": 3})  # fmt: skip
    kwargs = {
        "model": "m", "messages": [], "temperature": 0.5, "stream": True, "user": "u", "seed": None,
        "top_p": NOT_GIVEN, "stream_options": {"include_usage": True, 7: NOT_GIVEN, 8: (1, "a")},
        "metadata": {"usage": usage},
    }  # fmt: skip
    assert _extract._params(kwargs) == {
        "temperature": 0.5, "stream": True, "user": "u", "seed": None,
        "stream_options": {"include_usage": True, "8": [1, "a"]},
        "metadata": {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                               "completion_tokens_details": None, "prompt_tokens_details": None}},
    }  # fmt: skip
