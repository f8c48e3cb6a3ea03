"""The real openai SDK, instrumented, against the FakeLLMServer."""

from __future__ import annotations

import gc
import json

import openai
import pytest
from openai.lib.streaming.chat import ChatCompletionStream, ChatCompletionStreamManager
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from rlhfkit import Interaction
from rlhfkit.instrument import RLHFInstrumentation
from rlhfkit.testing import FakeLLMServer

from .conftest import CityAnswer, user


def only(inst: RLHFInstrumentation) -> Interaction:
    """The one interaction captured so far."""
    found = inst.get_interactions()
    assert len(found) == 1, found
    return found[0]


def test_chat_completion_is_captured_and_returned_unchanged(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """A plain call returns the SDK's ChatCompletion and records prompt, context, params, usage and timing."""
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is RLHF?"}]
    result = oai.chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0.2, max_tokens=50
    )
    assert type(result) is ChatCompletion
    messages.append({"role": "assistant", "content": "appended after the call"})
    i = only(inst)
    assert i.prompt == "What is RLHF?"
    assert [(m.role, m.content) for m in i.context] == [("system", "Be brief.")]
    assert i.response == result.choices[0].message.content
    assert i.model == "gpt-4o-mini" and i.provider == "openai"
    assert i.model_params == {"temperature": 0.2, "max_tokens": 50}
    assert i.response_id == result.id and i.finish_reason == "stop"
    assert i.token_usage is not None and i.token_usage.prompt == result.usage.prompt_tokens
    assert i.token_usage.cached == 0 and i.token_usage.reasoning == 0
    assert (
        i.metrics is not None
        and i.metrics.total_response_time_ms
        and i.metrics.time_to_first_token_ms is None
    )
    assert i.metrics.retry_count == 0 and i.metrics.cache_hit is False
    assert i.error is None and i.incomplete is False
    assert i.environment is not None and i.environment.python_version


def test_stream_keeps_the_sdk_stream_and_records_ttft(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """create(stream=True) returns openai.Stream; the text, usage and time to first token are recorded once."""
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=user("Stream please"),
        stream=True,
        stream_options={"include_usage": True},
    )
    assert type(stream) is openai.Stream
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    i = only(inst)
    assert i.response == text and text
    assert i.incomplete is False and i.finish_reason == "stop"
    assert i.metrics is not None and i.metrics.time_to_first_token_ms is not None
    assert i.metrics.streaming_time_ms is not None and i.metrics.tokens_per_second
    assert i.metrics.time_to_first_token_ms <= i.metrics.total_response_time_ms
    assert i.token_usage is not None and i.token_usage.completion > 0
    stream.close()
    assert len(inst.get_interactions()) == 1


def test_stream_closed_early_is_captured_once_and_incomplete(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """Breaking out and calling close() captures what arrived, flagged incomplete, exactly once."""
    stream = oai.chat.completions.create(model="m", messages=user("long answer"), stream=True)
    received = []
    for chunk in stream:
        received.append(chunk.choices[0].delta.content or "")
        if len(received) == 3:
            break
    stream.close()
    stream.close()
    i = only(inst)
    assert i.incomplete is True
    assert i.response == "".join(received)
    assert i.metadata["stream_end"] == "closed"


def test_stream_left_inside_with_is_captured(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """Leaving a `with` block around the stream early captures it, incomplete."""
    with oai.chat.completions.create(model="m", messages=user("with block"), stream=True) as stream:
        for _ in stream:
            break
    assert only(inst).incomplete is True


def test_stream_dropped_without_close_is_captured_on_garbage_collection(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """A stream broken out of and then dropped is still captured once (finaliser fallback)."""
    stream = oai.chat.completions.create(model="m", messages=user("dropped"), stream=True)
    for _ in stream:
        break
    del stream
    gc.collect()
    i = only(inst)
    assert i.incomplete is True and i.prompt == "dropped"


def test_stream_helper_and_its_methods_still_work(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """chat.completions.stream() keeps its manager, its events and get_final_completion."""
    manager = oai.chat.completions.stream(model="m", messages=user("helper"))
    assert isinstance(manager, ChatCompletionStreamManager)
    with manager as stream:
        assert isinstance(stream, ChatCompletionStream)
        kinds = {event.type for event in stream}
        final = stream.get_final_completion()
    assert "content.delta" in kinds and "content.done" in kinds
    i = only(inst)
    assert i.response == final.choices[0].message.content and i.incomplete is False


def test_stream_helper_closed_early_is_captured(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """The helper closes the HTTP response directly; the early exit is still captured."""
    with oai.chat.completions.stream(model="m", messages=user("helper early")) as stream:
        deltas = 0
        for event in stream:
            if event.type == "content.delta" and event.delta:
                deltas += 1
                if deltas == 2:
                    break
    i = only(inst)
    assert i.incomplete is True and i.response


def test_raw_response_records_retries_taken(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """with_raw_response returns the SDK's raw response; its retries_taken is recorded."""
    server.queue_error(429)
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=user("raw"))
    assert raw.retries_taken == 1
    completion = raw.parse()
    assert type(completion) is ChatCompletion
    i = only(inst)
    assert i.metrics is not None and i.metrics.retry_count == 1
    assert i.response == completion.choices[0].message.content


def test_raw_streaming_response_is_captured_when_parsed(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """with_raw_response + stream=True: parse() gives the SDK stream, which is captured."""
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=user("raw stream"), stream=True)
    stream = raw.parse()
    assert type(stream) is openai.Stream
    text = "".join(c.choices[0].delta.content or "" for c in stream)
    i = only(inst)
    assert i.response == text and i.incomplete is False


def test_retry_after_429_is_counted(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A 429 then a success is one call with retry_count 1 (the SDK retries inside its request loop)."""
    server.queue_error(429)
    oai.chat.completions.create(model="m", messages=user("rate limited"))
    assert [r.headers["x-stainless-retry-count"] for r in server.requests] == ["0", "1"]
    i = only(inst)
    assert i.metrics is not None and i.metrics.retry_count == 1 and i.error is None


def test_server_error_is_recorded_with_the_request(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A 500 raises the SDK's own exception; the interaction keeps the request and the error."""
    server.queue_error(500, retryable=False)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="m", messages=user("boom"), temperature=1.0)
    i = only(inst)
    assert i.prompt == "boom" and i.response == ""
    assert i.error is not None and i.error.status_code == 500 and i.error.type == "InternalServerError"
    assert i.model_params == {"temperature": 1.0}
    assert inst.get_metrics().error_rate == 1.0


def test_stream_cut_mid_way_raises_and_is_captured(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A stream whose connection drops raises the SDK error; what arrived is captured, incomplete, with the error."""
    server.queue_cut(after_chunks=3)
    stream = oai.chat.completions.create(model="m", messages=user("cut"), stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    i = only(inst)
    assert i.incomplete is True and i.error is not None
    assert i.response == "".join(received) and len(received) == 3


def test_tool_calls_are_recorded(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Tools offered and tool calls returned are recorded, streamed or not."""
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    server.queue_reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}])
    oai.chat.completions.create(model="m", messages=user("Weather in Paris?"), tools=tools)
    server.queue_reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
    for _ in oai.chat.completions.create(
        model="m", messages=user("Weather in Rome?"), tools=tools, stream=True
    ):
        pass
    plain, streamed = inst.get_interactions()
    assert plain.tools == tools and plain.finish_reason == "tool_calls"
    assert plain.tool_calls[0]["name"] == "get_weather"
    assert json.loads(plain.tool_calls[0]["arguments"]) == {"city": "Paris"}
    assert streamed.tool_calls[0]["name"] == "get_weather"
    assert json.loads(streamed.tool_calls[0]["arguments"]) == {"city": "Rome"}


def test_cached_and_reasoning_tokens_are_recorded(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Usage details (cached, reasoning) are kept and a cache hit is flagged."""
    server.queue_reply("cached answer", cached_tokens=4, reasoning_tokens=7)
    oai.chat.completions.create(model="o-mini", messages=user("think"))
    i = only(inst)
    assert i.token_usage is not None and i.token_usage.cached == 4 and i.token_usage.reasoning == 7
    assert i.metrics is not None and i.metrics.cache_hit is True


def test_responses_api_create_and_stream(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """responses.create (plain and streamed) and responses.stream are captured with the SDK types intact."""
    plain = oai.responses.create(model="m", input="Plain response", instructions="Be terse.")
    assert type(plain) is Response
    for _ in oai.responses.create(model="m", input="Streamed response", stream=True):
        pass
    with oai.responses.stream(model="m", input="Helper response") as stream:
        final = stream.get_final_response()
    first, second, third = inst.get_interactions()
    assert first.prompt == "Plain response" and first.response == plain.output_text
    assert [m.role for m in first.context] == ["system"] and first.finish_reason == "completed"
    assert second.prompt == "Streamed response" and second.metrics and second.metrics.time_to_first_token_ms
    assert third.response == final.output_text and third.incomplete is False
    assert all(i.metadata["api"] == "responses" for i in (first, second, third))


def test_uninstrument_restores_the_client(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """After uninstrument, calls are not captured and the methods are the SDK's own again."""
    inst.uninstrument(oai)
    for resource in (oai.chat.completions, oai.responses):
        assert not {"create", "parse"} & set(vars(resource))
    oai.chat.completions.create(model="m", messages=user("not captured"))
    assert inst.get_interactions() == []


def test_instrumenting_one_client_leaves_others_alone(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Instrumentation is per instance: another client of the same class is not captured."""
    other = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
    other.chat.completions.create(model="m", messages=user("other"))
    oai.chat.completions.create(model="m", messages=user("mine"))
    assert [i.prompt for i in inst.get_interactions()] == ["mine"]


def test_disable_stops_capturing_without_touching_calls(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """disable() stops capture, enable() resumes it."""
    inst.disable()
    oai.chat.completions.create(model="m", messages=user("off"))
    inst.enable()
    oai.chat.completions.create(model="m", messages=user("on"))
    assert [i.prompt for i in inst.get_interactions()] == ["on"]


async def test_async_chat_stream_and_errors(
    aoai: openai.AsyncOpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """AsyncOpenAI: plain, streamed, early-closed and failing calls are captured."""
    result = await aoai.chat.completions.create(model="m", messages=user("async plain"))
    assert type(result) is ChatCompletion
    stream = await aoai.chat.completions.create(model="m", messages=user("async stream"), stream=True)
    assert type(stream) is openai.AsyncStream
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    async with await aoai.chat.completions.create(
        model="m", messages=user("async early"), stream=True
    ) as early:
        async for _ in early:
            break
    server.queue_error(429)
    await aoai.chat.completions.create(model="m", messages=user("async retry"))
    server.queue_error(500, retryable=False)
    with pytest.raises(openai.InternalServerError):
        await aoai.chat.completions.create(model="m", messages=user("async boom"))
    by_prompt = {i.prompt: i for i in inst.get_interactions()}
    assert by_prompt["async plain"].response == result.choices[0].message.content
    assert by_prompt["async stream"].response == text and not by_prompt["async stream"].incomplete
    assert by_prompt["async early"].incomplete is True
    assert by_prompt["async retry"].metrics and by_prompt["async retry"].metrics.retry_count == 1
    assert by_prompt["async boom"].error and by_prompt["async boom"].error.status_code == 500


async def test_async_stream_helper_and_raw(aoai: openai.AsyncOpenAI, inst: RLHFInstrumentation) -> None:
    """The async stream helper and async raw responses keep working and are captured."""
    async with aoai.chat.completions.stream(model="m", messages=user("async helper")) as stream:
        final = await stream.get_final_completion()
    raw = await aoai.chat.completions.with_raw_response.create(model="m", messages=user("async raw"))
    parsed = raw.parse()
    async with aoai.responses.stream(model="m", input="async responses") as rstream:
        rfinal = await rstream.get_final_response()
    by_prompt = {i.prompt: i for i in inst.get_interactions()}
    assert by_prompt["async helper"].response == final.choices[0].message.content
    assert by_prompt["async raw"].response == parsed.choices[0].message.content
    assert by_prompt["async responses"].response == rfinal.output_text


def test_with_streaming_response_is_captured_when_its_block_closes(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """with_streaming_response reads the body inside the caller's block; the call is captured when it closes."""
    with oai.chat.completions.with_streaming_response.create(
        model="m", messages=user("streamed raw")
    ) as response:
        completion = response.parse()
    i = only(inst)
    assert i.response == completion.choices[0].message.content and i.response


async def test_async_with_streaming_response(aoai: openai.AsyncOpenAI, inst: RLHFInstrumentation) -> None:
    """The async with_streaming_response is captured when its block closes."""
    async with aoai.chat.completions.with_streaming_response.create(
        model="m", messages=user("async sr")
    ) as response:
        completion = await response.parse()
    assert only(inst).response == completion.choices[0].message.content


def test_with_options_copies_are_captured_too(oai: openai.OpenAI, inst: RLHFInstrumentation) -> None:
    """client.with_options(...) returns an instrumented copy; uninstrumenting the copy leaves the original captured."""
    copy = oai.with_options(timeout=20, max_retries=1)
    copy.chat.completions.create(model="m", messages=user("via copy"))
    inst.uninstrument(copy)
    copy.chat.completions.create(model="m", messages=user("copy after uninstrument"))
    oai.chat.completions.create(model="m", messages=user("original"))
    assert [i.prompt for i in inst.get_interactions()] == ["via copy", "original"]


def test_stream_retry_and_responses_tool_calls(
    oai: openai.OpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """A stream that needed a retry counts it; Responses API function calls are recorded."""
    server.queue_error(429)
    for _ in oai.chat.completions.create(model="m", messages=user("stream after 429"), stream=True):
        pass
    tools = [{"type": "function", "name": "search", "parameters": {"type": "object"}}]
    server.queue_reply(tool_calls=[{"name": "search", "arguments": {"q": "x"}}])
    oai.responses.create(model="m", input="find x", tools=tools)
    server.queue_reply(tool_calls=[{"name": "search", "arguments": {"q": "y"}}])
    with oai.responses.stream(model="m", input="find y", tools=tools) as stream:
        stream.until_done()
    streamed, plain, helper = inst.get_interactions()
    assert streamed.metrics is not None and streamed.metrics.retry_count == 1 and not streamed.incomplete
    assert plain.tool_calls[0]["name"] == "search" and json.loads(plain.tool_calls[0]["arguments"]) == {
        "q": "x"
    }
    assert plain.tools == tools
    assert json.loads(helper.tool_calls[0]["arguments"]) == {"q": "y"}


async def test_async_raw_stream_and_responses_cut(
    aoai: openai.AsyncOpenAI, inst: RLHFInstrumentation, server: FakeLLMServer
) -> None:
    """Async raw streaming responses are captured when parsed; a cut Responses stream is captured incomplete."""
    raw = await aoai.chat.completions.with_raw_response.create(
        model="m", messages=user("async raw stream"), stream=True
    )
    stream = raw.parse()
    assert type(stream) is openai.AsyncStream
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    server.queue_cut(after_chunks=5)
    with pytest.raises(openai.APIConnectionError):
        async for _ in await aoai.responses.create(model="m", input="cut responses", stream=True):
            pass
    by_prompt = {i.prompt: i for i in inst.get_interactions()}
    assert by_prompt["async raw stream"].response == text and not by_prompt["async raw stream"].incomplete
    cut = by_prompt["cut responses"]
    assert cut.incomplete is True and cut.error is not None and cut.response


def test_two_instrumentations_on_one_client_both_capture(
    oai: openai.OpenAI, inst: RLHFInstrumentation
) -> None:
    """A second instrumentation on the same client captures too, early-closed streams included."""
    other = RLHFInstrumentation()
    try:
        other.instrument(oai)
        oai.chat.completions.create(model="m", messages=user("both plain"))
        with oai.chat.completions.create(model="m", messages=user("both stream"), stream=True) as stream:
            for _ in stream:
                break
        for instrumentation in (inst, other):
            plain, streamed = instrumentation.get_interactions()
            assert plain.prompt == "both plain" and streamed.incomplete is True
    finally:
        other.destroy(timeout_s=1)


def test_structured_output_parse_is_captured_with_the_parsed_types_intact(
    oai: openai.OpenAI, server: FakeLLMServer, inst: RLHFInstrumentation
) -> None:
    """chat.completions.parse and responses.parse (structured outputs) are captured once each; parsing still works."""
    from openai.types.chat import ParsedChatCompletion
    from openai.types.responses import ParsedResponse
    server.queue_reply(text='{"city": "Paris"}')
    server.queue_reply(text='{"city": "Lyon"}')
    chat = oai.chat.completions.parse(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Capital of France?"}], response_format=CityAnswer
    )
    response = oai.responses.parse(model="gpt-4o-mini", input="Second city of France?", text_format=CityAnswer)
    assert isinstance(chat, ParsedChatCompletion) and chat.choices[0].message.parsed == CityAnswer(city="Paris")
    assert isinstance(response, ParsedResponse) and response.output_parsed == CityAnswer(city="Lyon")
    first, second = inst.get_interactions()
    assert (first.prompt, first.response) == ("Capital of France?", '{"city": "Paris"}')
    assert first.metadata["api"] == "chat.completions" and first.response_id == chat.id
    assert first.token_usage is not None and first.token_usage.total == chat.usage.total_tokens  # type: ignore[union-attr]
    assert (second.prompt, second.response) == ("Second city of France?", '{"city": "Lyon"}')
    assert second.metadata["api"] == "responses"


async def test_async_structured_output_parse_is_captured(
    aoai: openai.AsyncOpenAI, server: FakeLLMServer, inst: RLHFInstrumentation
) -> None:
    """The async client's parse methods are wrapped as coroutines and captured."""
    server.queue_reply(text='{"city": "Rome"}')
    chat = await aoai.chat.completions.parse(
        model="m", messages=[{"role": "user", "content": "Capital of Italy?"}], response_format=CityAnswer
    )
    assert chat.choices[0].message.parsed == CityAnswer(city="Rome")
    assert [(i.prompt, i.response) for i in inst.get_interactions()] == [("Capital of Italy?", '{"city": "Rome"}')]
