"""Fixtures of the instrumentation tests: one FakeLLMServer, real SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest
from pydantic import BaseModel

from rlhfkit.instrument import RLHFInstrumentation
from rlhfkit.testing import FakeLLMServer


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    """A FakeLLMServer for the whole session (short pacing so tests stay fast)."""
    with FakeLLMServer(first_chunk_delay_s=0.005, chunk_delay_s=0.001) as server:
        yield server


@pytest.fixture
def server(llm_server: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The shared server with an empty script and request log."""
    llm_server.clear()
    yield llm_server
    llm_server.clear()


@pytest.fixture
def inst() -> Iterator[RLHFInstrumentation]:
    """A fresh in-memory instrumentation, destroyed after the test."""
    instrumentation = RLHFInstrumentation()
    yield instrumentation
    instrumentation.destroy(timeout_s=2)


@pytest.fixture
def oai(server: FakeLLMServer, inst: RLHFInstrumentation) -> Iterator[openai.OpenAI]:
    """An instrumented sync OpenAI client."""
    client = inst.instrument(openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=2))
    yield client
    client.close()


@pytest.fixture
def aoai(server: FakeLLMServer, inst: RLHFInstrumentation) -> openai.AsyncOpenAI:
    """An instrumented async OpenAI client."""
    return inst.instrument(
        openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=2)
    )


@pytest.fixture
def claude(server: FakeLLMServer, inst: RLHFInstrumentation) -> Iterator[anthropic.Anthropic]:
    """An instrumented sync Anthropic client."""
    client = inst.instrument(
        anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)
    )
    yield client
    client.close()


@pytest.fixture
def aclaude(server: FakeLLMServer, inst: RLHFInstrumentation) -> anthropic.AsyncAnthropic:
    """An instrumented async Anthropic client."""
    return inst.instrument(
        anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test", max_retries=2)
    )


def user(text: str) -> list[dict[str, str]]:
    """A one-message conversation."""
    return [{"role": "user", "content": text}]


class CityAnswer(BaseModel):
    """The structured output the parse tests ask for."""

    city: str
