"""The real anthropic SDK, instrumented, against the FakeLLMServer."""

from __future__ import annotations

import gc
import json

import anthropic
import pytest
from anthropic.lib.streaming import AsyncMessageStream, MessageStream, MessageStreamManager
from anthropic.types import Message

from rlhfkit.instrument import RLHFInstrumentation
from rlhfkit.testing import FakeLLMServer

from .conftest import CityAnswer, user


def test_messages_create_is_captured(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """messages.create returns the SDK's Message; system prompt, usage incl. cache reads, and stop reason are recorded."""
    server.queue_reply("Bonjour!", cached_tokens=3)
    result = claude.messages.create(
        model="claude-x", max_tokens=64, system="You are French.", messages=user("Say hi")
    )
    assert type(result) is Message
    (i,) = inst.get_interactions()
    assert i.provider == "anthropic" and i.model == "claude-x"
    assert i.prompt == "Say hi" and i.response == "Bonjour!"
    assert [(m.role, m.content) for m in i.context] == [("system", "You are French.")]
    assert i.model_params == {"max_tokens": 64}
    assert i.finish_reason == "end_turn" and i.response_id == result.id
    assert i.token_usage is not None and i.token_usage.cached == 3
    assert i.token_usage.prompt == result.usage.input_tokens + 3
    assert i.metrics is not None and i.metrics.cache_hit is True


def test_create_with_stream_true(claude: anthropic.Anthropic, inst: RLHFInstrumentation) -> None:
    """messages.create(stream=True) returns anthropic.Stream and is captured with TTFT."""
    stream = claude.messages.create(model="c", max_tokens=64, messages=user("stream it"), stream=True)
    assert type(stream) is anthropic.Stream
    text = "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    (i,) = inst.get_interactions()
    assert i.response == text and i.incomplete is False and i.finish_reason == "end_turn"
    assert i.metrics is not None and i.metrics.time_to_first_token_ms is not None
    assert i.token_usage is not None and i.token_usage.completion > 0


def test_messages_stream_helpers_keep_working(claude: anthropic.Anthropic, inst: RLHFInstrumentation) -> None:
    """messages.stream: the manager, text_stream, get_final_message and until_done work on the SDK's MessageStream."""
    manager = claude.messages.stream(model="c", max_tokens=64, messages=user("helpers"))
    assert isinstance(manager, MessageStreamManager)
    with manager as stream:
        assert isinstance(stream, MessageStream)
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    with claude.messages.stream(model="c", max_tokens=64, messages=user("until done")) as stream2:
        stream2.until_done()
        assert stream2.get_final_text()
    first, second = inst.get_interactions()
    assert first.response == text == final.content[0].text
    assert first.incomplete is False and second.incomplete is False and second.prompt == "until done"


def test_stream_left_early_inside_with_is_captured_once(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation
) -> None:
    """Breaking out of a MessageStream inside `with` captures it once, incomplete."""
    with claude.messages.stream(model="c", max_tokens=64, messages=user("early")) as stream:
        for _ in stream.text_stream:
            break
    del stream
    gc.collect()
    (i,) = inst.get_interactions()
    assert i.incomplete is True


def test_tool_use_is_recorded(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Tool use blocks are recorded as tool calls, plain and streamed."""
    tools = [{"name": "lookup", "description": "find", "input_schema": {"type": "object"}}]
    server.queue_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "rlhf"}}])
    claude.messages.create(model="c", max_tokens=64, messages=user("look it up"), tools=tools)
    server.queue_reply(tool_calls=[{"name": "lookup", "arguments": {"q": "dpo"}}])
    with claude.messages.stream(
        model="c", max_tokens=64, messages=user("look it up streamed"), tools=tools
    ) as stream:
        stream.until_done()
    plain, streamed = inst.get_interactions()
    assert plain.tools == tools and plain.finish_reason == "tool_use"
    assert plain.tool_calls[0]["name"] == "lookup" and json.loads(plain.tool_calls[0]["arguments"]) == {
        "q": "rlhf"
    }
    assert json.loads(streamed.tool_calls[0]["arguments"]) == {"q": "dpo"}


def test_tool_result_turns_go_to_context(claude: anthropic.Anthropic, inst: RLHFInstrumentation) -> None:
    """The prompt is the last user text; tool_use / tool_result turns stay in the context."""
    messages = [
        {"role": "user", "content": "What is in the doc?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "RLHF notes"}]},
    ]
    claude.messages.create(model="c", max_tokens=64, messages=messages)
    (i,) = inst.get_interactions()
    assert i.prompt == "What is in the doc?"
    assert [m.role for m in i.context] == ["assistant", "tool"]
    assert i.context[1].content == "RLHF notes"


def test_errors_and_retries(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A 429 then success counts one retry; a 500 is recorded with its status and re-raised unchanged."""
    server.queue_error(429)
    claude.messages.create(model="c", max_tokens=64, messages=user("retry me"))
    server.queue_error(500, retryable=False)
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.create(model="c", max_tokens=64, messages=user("fail me"))
    retried, failed = inst.get_interactions()
    assert retried.metrics is not None and retried.metrics.retry_count == 1
    assert failed.error is not None and failed.error.status_code == 500 and failed.prompt == "fail me"


def test_cut_stream_is_captured_with_its_error(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A dropped connection in messages.stream raises; the partial text is captured, incomplete."""
    server.queue_cut(after_chunks=4)
    # The SDK lets the transport's own error through, hence the broad class.
    with (
        pytest.raises(Exception) as raised,
        claude.messages.stream(model="c", max_tokens=64, messages=user("cut me")) as stream,
    ):
        for _ in stream.text_stream:
            pass
    (i,) = inst.get_interactions()
    assert i.incomplete is True and i.error is not None and i.error.type == type(raised.value).__name__
    assert i.response


async def test_async_messages(aclaude: anthropic.AsyncAnthropic, inst: RLHFInstrumentation) -> None:
    """AsyncAnthropic: create, create(stream=True) and `async with messages.stream` keep get_final_message."""
    result = await aclaude.messages.create(model="c", max_tokens=64, messages=user("async create"))
    stream = await aclaude.messages.create(
        model="c", max_tokens=64, messages=user("async raw stream"), stream=True
    )
    assert type(stream) is anthropic.AsyncStream
    async for _ in stream:
        pass
    async with aclaude.messages.stream(model="c", max_tokens=64, messages=user("async helper")) as helper:
        assert isinstance(helper, AsyncMessageStream)
        chunks = [t async for t in helper.text_stream]
        final = await helper.get_final_message()
    async with aclaude.messages.stream(model="c", max_tokens=64, messages=user("async early")) as early:
        async for _ in early.text_stream:
            break
    by_prompt = {i.prompt: i for i in inst.get_interactions()}
    assert by_prompt["async create"].response == result.content[0].text
    assert by_prompt["async raw stream"].incomplete is False
    assert by_prompt["async helper"].response == "".join(chunks) == final.content[0].text
    assert by_prompt["async early"].incomplete is True


def test_uninstrument_restores_messages(claude: anthropic.Anthropic, inst: RLHFInstrumentation) -> None:
    """uninstrument removes both wrappers."""
    inst.uninstrument(claude)
    assert "create" not in vars(claude.messages) and "stream" not in vars(claude.messages)
    claude.messages.create(model="c", max_tokens=64, messages=user("not captured"))
    assert inst.get_interactions() == []


def test_raw_response_and_with_options(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Anthropic with_raw_response records retries_taken; with_options copies are captured too."""
    server.queue_error(429)
    raw = claude.messages.with_raw_response.create(model="c", max_tokens=64, messages=user("raw anthropic"))
    message = raw.parse()
    assert type(message) is Message and raw.retries_taken == 1
    claude.with_options(timeout=30).messages.create(model="c", max_tokens=64, messages=user("copy"))
    first, second = inst.get_interactions()
    assert first.response == message.content[0].text and first.metrics and first.metrics.retry_count == 1
    assert second.prompt == "copy"


def test_structured_output_parse_is_captured(
    claude: anthropic.Anthropic, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """messages.parse (structured outputs) is captured once; the SDK still parses the reply into the type."""
    server.queue_reply(text='{"city": "Paris"}')
    result = claude.messages.parse(
        model="claude-x", max_tokens=64, messages=user("Capital of France?"), output_format=CityAnswer
    )
    assert result.parsed_output == CityAnswer(city="Paris")
    (captured,) = inst.get_interactions()
    assert (captured.prompt, captured.response) == ("Capital of France?", '{"city": "Paris"}')
    assert captured.provider == "anthropic" and captured.response_id == result.id
