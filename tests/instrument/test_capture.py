"""The @capture decorator and the capture_call block, for clients that are not instrumented."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rlhfkit.instrument import RLHFInstrumentation


def test_decorated_function_returning_text(inst: RLHFInstrumentation) -> None:
    """A function's prompt argument and returned string become an interaction; the return value is unchanged."""

    @inst.capture
    def ask(prompt: str, temperature: float = 0.0) -> str:
        return f"echo: {prompt}"

    assert ask("hello", temperature=0.3) == "echo: hello"
    (i,) = inst.get_interactions()
    assert i.prompt == "hello" and i.response == "echo: hello"
    assert i.model_params == {"temperature": 0.3} and i.metadata["function"].endswith("ask")
    assert i.metrics is not None and i.metrics.total_response_time_ms is not None


def test_decorated_function_returning_dict_or_object(inst: RLHFInstrumentation) -> None:
    """A returned dict or object is read through its text / content."""

    class Reply:
        text = "object text"

    @inst.capture(model="house-model", provider="acme")
    def as_dict(question: str) -> dict[str, Any]:
        return {"content": "dict text", "tokens": 3}

    @inst.capture
    def as_object(question: str) -> Reply:
        return Reply()

    as_dict("q1")
    as_object(question="q2")
    first, second = inst.get_interactions()
    assert (first.response, first.model, first.provider) == ("dict text", "house-model", "acme")
    assert (second.prompt, second.response) == ("q2", "object text")


async def test_decorated_coroutine(inst: RLHFInstrumentation) -> None:
    """A coroutine function is captured when awaited."""

    @inst.capture
    async def ask(prompt: str) -> str:
        return prompt[::-1]

    assert await ask("abc") == "cba"
    assert inst.get_interactions()[0].response == "cba"


def test_decorated_generator_complete_and_stopped_early(inst: RLHFInstrumentation) -> None:
    """A generator's chunks are joined, TTFT recorded; one stopped early is captured incomplete."""

    @inst.capture
    def stream(prompt: str) -> Iterator[str]:
        yield from ["a", "b", "c"]

    assert list(stream("full")) == ["a", "b", "c"]
    gen = stream("early")
    next(gen)
    gen.close()
    full, early = inst.get_interactions()
    assert full.response == "abc" and full.incomplete is False
    assert full.metrics is not None and full.metrics.time_to_first_token_ms is not None
    assert early.response == "a" and early.incomplete is True


async def test_decorated_async_generator_and_error(inst: RLHFInstrumentation) -> None:
    """An async generator is captured; an exception is re-raised unchanged and recorded."""

    @inst.capture
    async def stream(prompt: str) -> AsyncIterator[str]:
        yield "x"
        if prompt == "fail":
            raise KeyError("gone")
        yield "y"

    assert [c async for c in stream("ok")] == ["x", "y"]
    with pytest.raises(KeyError):
        async for _ in stream("fail"):
            pass
    ok, failed = inst.get_interactions()
    assert ok.response == "xy"
    assert failed.error is not None and failed.error.type == "KeyError" and failed.incomplete is True


def test_capture_call_block(inst: RLHFInstrumentation) -> None:
    """The context-manager form records what the block sets, and an exception inside it."""
    with inst.capture_call(
        prompt="Hi", model="custom-llm", context=[{"role": "system", "content": "S"}]
    ) as call:
        call.add_chunk("Hel")
        call.add_chunk("lo")
        call.usage = {"prompt": 2, "completion": 2}
        call.tool_calls = [{"name": "noop", "arguments": "{}"}]
    with pytest.raises(ValueError, match="bad"), inst.capture_call(prompt="Fails") as failing:
        failing.response = "partial"
        raise ValueError("bad")
    ok, bad = inst.get_interactions()
    assert ok.response == "Hello" and ok.model == "custom-llm" and ok.context[0].role == "system"
    assert ok.token_usage is not None and ok.token_usage.total == 4 and ok.tool_calls[0]["name"] == "noop"
    assert bad.error is not None and bad.error.message == "bad" and bad.response == "partial"


def test_capture_disabled_passes_through(inst: RLHFInstrumentation) -> None:
    """While disabled, decorated functions run and nothing is captured."""

    @inst.capture
    def ask(prompt: str) -> str:
        return "r"

    inst.disable()
    assert ask("x") == "r"
    assert inst.get_interactions() == []
