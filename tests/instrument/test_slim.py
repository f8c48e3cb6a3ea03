"""Stream chunks slimmed on the caller's thread give the same record fields as chunks kept whole."""

from __future__ import annotations

from typing import Any

from openai._models import construct_type
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent

from rlhfkit.instrument._calls import Call
from rlhfkit.instrument._extract import extract
from rlhfkit.instrument._slim import keep, slimmer_for


def _slimmed(provider: str, api: str, chunks: list[Any]) -> list[Any]:
    call = Call(lambda c: None, provider, api, {}, None, None)
    call.slim = slimmer_for(provider, api)
    return [call.slim(chunk, call) for chunk in chunks]


def _chat_chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> Any:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    raw = {"id": "c-1", "object": "chat.completion.chunk", "created": 1, "model": "m-1", "choices": choices}
    return construct_type(type_=ChatCompletionChunk, value={**raw, **extra})


def test_openai_chat_text_chunks_become_their_text_and_extract_the_same() -> None:
    """Text-only chat chunks are kept as str; role, tool-call, finish and usage chunks stay whole."""
    chunks = [
        _chat_chunk({"role": "assistant", "content": ""}),
        _chat_chunk({"content": "Paris "}),
        _chat_chunk({"content": "is"}),
        _chat_chunk({"tool_calls": [{"index": 0, "id": "t1", "function": {"name": "f", "arguments": "{}"}}]}),
        _chat_chunk({"content": "."}, finish="stop"),
        _chat_chunk(None, usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}),
    ]
    slim = _slimmed("openai", "chat", chunks)
    assert slim[1:3] == ["Paris ", "is"]
    assert all(s is c for s, c in zip(slim[3:], chunks[3:], strict=True)) and slim[0] is chunks[0]
    kwargs = {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}
    assert extract("openai", "chat", kwargs, None, slim) == extract("openai", "chat", kwargs, None, chunks)


def test_openai_chat_chunks_stay_whole_until_one_carries_id_and_model() -> None:
    """Before a chunk with both an id and a model is seen, text chunks are kept whole."""
    first = construct_type(
        type_=ChatCompletionChunk,
        value={"id": "", "object": "chat.completion.chunk", "created": 1, "model": "m-1",
               "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": None}]},
    )  # fmt: skip
    chunks = [first, _chat_chunk({"content": "b"}), _chat_chunk({"content": "c"})]
    slim = _slimmed("openai", "chat", chunks)
    assert slim[0] is first and slim[1] is chunks[1] and slim[2] == "c"
    assert extract("openai", "chat", {}, None, slim) == extract("openai", "chat", {}, None, chunks)


def test_responses_text_deltas_become_their_text_and_extract_the_same() -> None:
    """output_text delta events are kept as str; the other events stay whole."""
    events: list[Any] = [
        {"type": "response.created", "sequence_number": 0,
         "response": {"id": "r-1", "model": "m-1", "object": "response", "created_at": 1, "output": [],
                      "parallel_tool_calls": False, "tool_choice": "auto", "tools": []}},
        {"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hel", "item_id": "i",
         "output_index": 0, "content_index": 0, "logprobs": []},
        {"type": "response.output_text.delta", "sequence_number": 2, "delta": "lo", "item_id": "i",
         "output_index": 0, "content_index": 0, "logprobs": []},
    ]  # fmt: skip
    chunks = [construct_type(type_=ResponseStreamEvent, value=e) for e in events]
    slim = _slimmed("openai", "responses", chunks)
    assert slim[0] is chunks[0] and slim[1:] == ["Hel", "lo"]
    assert extract("openai", "responses", {}, None, slim) == extract("openai", "responses", {}, None, chunks)


def test_anthropic_text_deltas_become_their_text_and_extract_the_same() -> None:
    """text_delta events are kept as str; message, block and tool-input events stay whole."""
    from anthropic.types import RawMessageStreamEvent

    events: list[Any] = [
        {"type": "message_start", "message": {"id": "m-1", "type": "message", "role": "assistant", "content": [],
         "model": "claude", "stop_reason": None, "stop_sequence": None,
         "usage": {"input_tokens": 5, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]  # fmt: skip
    chunks = [construct_type(type_=RawMessageStreamEvent, value=e) for e in events]
    slim = _slimmed("anthropic", "messages", chunks)
    assert slim[2:4] == ["Bon", "jour"]
    assert all(slim[i] is chunks[i] for i in (0, 1, 4, 5, 6, 7))
    kwargs = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    assert extract("anthropic", "messages", kwargs, None, slim) == extract(
        "anthropic", "messages", kwargs, None, chunks
    )


def test_unknown_items_and_apis_are_kept_whole() -> None:
    """Dict chunks, foreign objects and unknown APIs pass through the slimmers untouched."""
    odd = [{"choices": []}, object()]
    for provider, api in (("openai", "chat"), ("openai", "responses"), ("anthropic", "messages")):
        call = Call(lambda c: None, provider, api, {}, None, None)
        call.slim = slimmer_for(provider, api)
        for item in odd:
            assert call.slim(item, call) is item
    assert slimmer_for("other", "api") is keep
