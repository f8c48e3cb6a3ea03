"""Added cost per OpenAI call on the caller's thread: rlhfkit vs Langfuse vs OpenLLMetry.

Setup, all on 127.0.0.1:

* one process serves ``rlhfkit.testing.FakeLLMServer`` (no pacing; a
  20-word reply, so a stream has 20 content chunks) and a sink answering 200
  to every POST (Langfuse exports there);
* one long-lived process per variant, each with one ``openai.OpenAI``
  client: ``plain``; ``rlhfkit`` (``RLHFInstrumentation(storage="local")``
  writing JSONL files); ``langfuse`` (``langfuse.openai``, keys and host
  pointed at the sink); ``openllmetry`` (``OpenAIInstrumentor`` with an SDK
  ``TracerProvider`` and a ``BatchSpanProcessor`` to an exporter that drops
  spans). Peers patch globally, hence a process each.

Rounds are interleaved: in every round each variant, one at a time in a
shuffled order, makes K non-streaming then K streaming calls while the
others wait. A variant's added cost is the median over rounds of (its median
call time − plain's median call time in that round); CPU is the calling
thread's CPU time per call (``time.thread_time``), same difference; the
process's CPU per call (every thread) shows the whole cost, background work
included. After each K calls, untimed, every variant flushes its telemetry,
so that work its threads left for later (export batches, deferred records)
is done in its own turn, not during another variant's calls. Wall time
is what the application waits; on a loaded machine it is noisy, and the CPU
figure is the steadier view of the cost on the caller's thread. Up to 40
rounds, fewer (at least 10) when the rounds take over 150 s.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

from ._common import ROOT, Result, median

NAME = "instrumentation"
TITLE = "added cost per OpenAI call on the caller's thread vs Langfuse and OpenLLMetry (target ≤ ½ lowest peer, < 50 µs)"

CAP_S = 150.0
MIN_ROUNDS = 10
VARIANTS = ("plain", "rlhfkit", "langfuse", "openllmetry")
PEERS = ("langfuse", "openllmetry")


def available() -> str | None:
    """Runnable when openai and rlhfkit's instrumentation and testing server are present."""
    try:
        import openai  # noqa: F401

        from rlhfkit.instrument import RLHFInstrumentation  # noqa: F401
        from rlhfkit.testing import FakeLLMServer  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


def _peer_available(variant: str) -> bool:
    module = {"langfuse": "langfuse.openai", "openllmetry": "opentelemetry.instrumentation.openai"}.get(variant)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


class _Worker:
    def __init__(self, variant: str, llm_url: str, sink_url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "false"}
        self.variant = variant
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._instrument_worker", variant, llm_url, sink_url],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._expect("READY")

    def _line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"instrumentation worker {self.variant!r} exited ({self.process.wait()})")
        return line.strip()

    def _expect(self, word: str) -> None:
        while (line := self._line()) != word:
            print(f"    [{self.variant}] {line}", file=sys.stderr)

    def run(self, mode: str, n: int) -> dict[str, list[int]]:
        assert self.process.stdin is not None
        self.process.stdin.write(f"run {mode} {n}\n")
        self.process.stdin.flush()
        while True:
            line = self._line()
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()


def _rounds(workers: dict[str, _Worker], rounds: int, k: int) -> dict[str, dict[str, list[dict[str, float]]]]:
    """Per variant and mode, one dict per round: median wall and mean CPU per call (µs).

    Stops after :data:`CAP_S` once :data:`MIN_ROUNDS` are done (a loaded machine is slow).
    """
    rng = random.Random(1)
    out: dict[str, dict[str, list[dict[str, float]]]] = {v: {"plain": [], "stream": []} for v in workers}
    deadline = time.monotonic() + CAP_S
    for done in range(rounds):
        if done >= MIN_ROUNDS and time.monotonic() > deadline:
            break
        for mode in ("plain", "stream"):
            order = list(workers)
            rng.shuffle(order)
            for variant in order:
                got = workers[variant].run(mode, k)
                out[variant][mode].append(
                    {
                        "wall_us": median(got["wall"]) / 1000,
                        "cpu_us": sum(got["cpu"]) / len(got["cpu"]) / 1000,
                        "process_us": got["process"] / 1000,
                    }
                )
    return out


def run(quick: bool = False) -> list[Result]:
    """Start the server and the variants, run interleaved rounds, report added costs."""
    rounds, k = (4, 10) if quick else (40, 25)
    variants = [v for v in VARIANTS if _peer_available(v)]
    server = subprocess.Popen(
        [sys.executable, "-m", "bench._llm_server"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    workers: dict[str, _Worker] = {}
    try:
        assert server.stdout is not None
        ready = server.stdout.readline().split()
        if not ready or ready[0] != "READY":
            raise RuntimeError("the local LLM server did not start")
        llm_url, sink_url = f"http://127.0.0.1:{ready[1]}/v1", f"http://127.0.0.1:{ready[2]}"
        for variant in variants:
            workers[variant] = _Worker(variant, llm_url, sink_url)
        data = _rounds(workers, rounds, k)
    finally:
        for worker in workers.values():
            worker.close()
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return _results(data, k)


def _results(data: dict[str, dict[str, list[dict[str, float]]]], k: int) -> list[Result]:
    results: list[Result] = []
    added: dict[tuple[str, str, str], float] = {}
    for mode, label in (("plain", "non-streaming"), ("stream", "streaming, 20 chunks")):
        base = data["plain"][mode]
        plain_ms = median(r["wall_us"] for r in base) / 1000
        plain_cpu = median(r["cpu_us"] for r in base)
        results.append(Result(NAME, f"plain SDK call, {label}", plain_ms, "ms",
                              note=f"{len(base)} interleaved rounds × {k} calls per variant; "
                                   f"caller CPU {plain_cpu:,.0f} µs"))  # fmt: skip
        for variant in data:
            if variant == "plain":
                continue
            rows = data[variant][mode]
            for clock in ("wall", "cpu", "process"):
                added[(variant, mode, clock)] = median(
                    r[f"{clock}_us"] - b[f"{clock}_us"] for r, b in zip(rows, base, strict=True)
                )
            results.append(Result(NAME, f"{variant} added, {label}", added[(variant, mode, "wall")], "µs",
                                  note=f"caller-thread CPU {added[(variant, mode, 'cpu')]:+,.0f} µs; "
                                       f"process CPU, all threads {added[(variant, mode, 'process')]:+,.0f} µs"))  # fmt: skip
    for mode, label in (("plain", "non-streaming"), ("stream", "streaming")):
        for clock, what in (("wall", "wall"), ("cpu", "caller CPU")):
            ours = added.get(("rlhfkit", mode, clock))
            peers = {p: added[(p, mode, clock)] for p in PEERS if (p, mode, clock) in added}
            if ours is None or not peers:
                continue
            peer, lowest = min(peers.items(), key=lambda item: item[1])
            results.append(Result(NAME, f"rlhfkit vs ½ lowest peer, {label}, {what}", ours, "µs",
                                  f"≤ {lowest / 2:,.0f} µs (½ of {peer})", ours <= lowest / 2))  # fmt: skip
    ours = added.get(("rlhfkit", "plain", "wall"))
    if ours is not None:
        results.append(Result(NAME, "rlhfkit added, non-streaming, wall", ours, "µs", "< 50", ours < 50))
    return results
