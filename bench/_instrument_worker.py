"""One variant of the instrumentation benchmark, in its own process (peers patch globally).

``python -m bench._instrument_worker VARIANT LLM_URL SINK_URL`` sets up an
``openai.OpenAI`` client (plain, or instrumented by rlhfkit, Langfuse or
OpenLLMetry), warms it up, prints ``READY``, then answers commands on stdin:

* ``run stream|plain N`` — N calls, then an untimed flush of the variant's
  telemetry, one JSON line back: per-call wall time and the calling
  thread's CPU time, and the whole process's CPU per call (every thread,
  the flush included), in nanoseconds;
* ``quit`` — flush the instrumentation and exit.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

MESSAGES = [
    {"role": "system", "content": "You are a concise geography assistant."},
    {"role": "user", "content": "What is the capital of France? Answer in one sentence."},
]
MODEL = "gpt-4o-mini"


def _client(variant: str, base_url: str, sink_url: str) -> tuple[Any, Callable[[], None]]:
    """The client for ``variant`` and a function that flushes its telemetry."""
    if variant == "langfuse":
        os.environ.update(
            LANGFUSE_BASE_URL=sink_url, LANGFUSE_HOST=sink_url, LANGFUSE_PUBLIC_KEY="pk-lf-bench",
            LANGFUSE_SECRET_KEY="sk-lf-bench", LANGFUSE_TRACING_ENABLED="true",
        )  # fmt: skip
        from langfuse import get_client
        from langfuse.openai import openai as lf_openai

        client = lf_openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
        return client, lambda: get_client().flush()

    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    if variant == "plain":
        return client, lambda: None
    if variant == "rlhfkit":
        from rlhfkit.instrument import RLHFInstrumentation

        instrumentation = RLHFInstrumentation(storage="local", data_dir=tempfile.mkdtemp(prefix="rlhfkit-bench-"))
        return instrumentation.instrument(client), lambda: instrumentation.flush()
    if variant == "openllmetry":
        from opentelemetry import trace
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class NullExporter(SpanExporter):
            """Accepts every span batch and drops it."""

            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(NullExporter()))
        trace.set_tracer_provider(provider)
        OpenAIInstrumentor().instrument(tracer_provider=provider)
        return client, lambda: provider.force_flush()
    raise SystemExit(f"unknown variant {variant!r}")


def _call(client: Any, stream: bool) -> None:
    if stream:
        text = []
        for chunk in client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            if chunk.choices and chunk.choices[0].delta.content:
                text.append(chunk.choices[0].delta.content)
        if not text:
            raise RuntimeError("empty stream")
    else:
        response = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        if not response.choices[0].message.content:
            raise RuntimeError("empty response")


def main(argv: list[str]) -> None:
    """Set up, warm up, then serve commands until ``quit``."""
    variant, base_url, sink_url = argv
    client, flush = _client(variant, base_url, sink_url)
    for _ in range(30):
        _call(client, False)
        _call(client, True)
    flush()
    print("READY", flush=True)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            flush()
            print(json.dumps({"bye": True}), flush=True)
            return
        stream, n = words[1] == "stream", int(words[2])
        wall, cpu = [], []
        process_start = time.process_time_ns()
        for _ in range(n):
            t0, c0 = clock(), cpu_clock()
            _call(client, stream)
            cpu.append(cpu_clock() - c0)
            wall.append(clock() - t0)
        # Untimed, and before the next variant's turn: work a variant's threads left for later
        # (export batches, deferred records) is done now, not during another variant's calls.
        flush()
        process = (time.process_time_ns() - process_start) / n
        print(json.dumps({"wall": wall, "cpu": cpu, "process": process}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
