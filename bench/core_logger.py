"""log_interaction with batching on, one thread: calls/s on the caller's thread, and stored/s to flush.

The logger runs with its default settings (batching on, batch size 50, a
100,000-record queue) in front of two backends: a storage that drops every
batch (the logger's own cost) and SQLite in a fresh file. Per backend:

* a burst of 50,000 calls (half the queue, so the caller never waits for
  room): calls/s and mean µs per call (wall clock on the caller's thread, so
  time the batch worker holds the GIL counts against us), and the caller
  thread's own CPU time per call (``time.thread_time``);
* p50 / p99 of single calls, timed one by one in a second burst;
* sustained: 300,000 calls, more than the queue holds, so the caller is
  paced by the storage; and stored/s end to end, until ``flush()`` returns.

The call is the spec's: prompt, response, model, latency, token_usage with
prompt / completion / total, user_id. A third run passes token_usage without
its total (a common way to call it).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from ._common import Result, percentile

NAME = "core_logger"
TITLE = "log_interaction, batching on, one thread (target ≥ 200,000 calls/s, ≤ 5 µs)"


def available() -> str | None:
    """Always runnable: the logger is the core."""
    return None


class NullStorage:
    """A storage that accepts every batch and keeps nothing (the logger's own cost)."""

    def __init__(self) -> None:
        self.written = 0

    def initialize(self) -> None:
        """Nothing to prepare."""

    def write(self, batch: Any) -> None:
        """Count the records and drop them."""
        self.written += len(batch)

    def get_interaction(self, interaction_id: str) -> Any:
        """Nothing is kept."""
        return None

    def get_feedback(self, feedback_id: str) -> Any:
        """Nothing is kept."""
        return None

    def get_session(self, session_id: str) -> Any:
        """Nothing is kept."""
        return None

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Everything is missing."""
        return set(interaction_ids)

    def iter_interactions(self, filter: Any) -> Iterator[Any]:
        """Nothing is kept."""
        return iter(())

    def iter_feedback(self, filter: Any) -> Iterator[Any]:
        """Nothing is kept."""
        return iter(())

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> Any:
        """Empty stats."""
        from rlhfkit import FeedbackStats

        return FeedbackStats()

    def close(self) -> None:
        """Nothing to release."""


def _measure(storage: Any, burst: int, sustained: int, usage: dict[str, int]) -> dict[str, float]:
    from rlhfkit import RLHFConfig, RLHFLogger

    logger = RLHFLogger(RLHFConfig(), storage=storage)
    logger.initialize()
    log = logger.log_interaction
    prompt, response = "What is the capital of France?", "The capital of France is Paris."
    for _ in range(2_000):
        log(prompt, response, model="gpt-4o", latency=812.5, token_usage=usage, user_id="user-1")
    logger.flush()

    # A burst shorter than the queue: the caller's own cost (the worker runs alongside, sharing the GIL).
    cpu0, start = time.thread_time(), time.perf_counter()
    for _ in range(burst):
        log(prompt, response, model="gpt-4o", latency=812.5, token_usage=usage, user_id="user-1")
    burst_s = time.perf_counter() - start
    burst_cpu = time.thread_time() - cpu0
    logger.flush()

    samples = []
    clock = time.perf_counter_ns
    for _ in range(burst):
        t0 = clock()
        log(prompt, response, model="gpt-4o", latency=812.5, token_usage=usage, user_id="user-1")
        samples.append(clock() - t0)
    logger.flush()

    # Sustained: more calls than the queue holds, so the caller ends up paced by the storage.
    start = time.perf_counter()
    for _ in range(sustained):
        log(prompt, response, model="gpt-4o", latency=812.5, token_usage=usage, user_id="user-1")
    loop = time.perf_counter() - start
    remaining = logger.flush()
    total = time.perf_counter() - start
    logger.close()
    return {
        "calls_per_s": burst / burst_s,
        "us_per_call": burst_s / burst * 1e6,
        "cpu_us_per_call": burst_cpu / burst * 1e6,
        "p50_us": percentile(samples, 0.5) / 1000,
        "p99_us": percentile(samples, 0.99) / 1000,
        "sustained_calls_per_s": sustained / loop,
        "stored_per_s": sustained / total,
        "remaining": remaining,
    }


# The spec's form of token_usage (prompt, completion and total).
_USAGE = {"prompt": 12, "completion": 48, "total": 60}


def run(quick: bool = False) -> list[Result]:
    """Measure with a null storage, then SQLite."""
    from rlhfkit.storage.sql import SQLStorage

    burst, sustained = (20_000, 30_000) if quick else (50_000, 300_000)
    results = []
    with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as tmp:
        for label, storage, usage in (
            ("null storage", NullStorage(), _USAGE),
            ("SQLite", SQLStorage(f"sqlite:///{Path(tmp) / 'logger.db'}"), _USAGE),
            ("null storage, usage without total", NullStorage(), {"prompt": 12, "completion": 48}),
        ):
            m = _measure(storage, burst, sustained, usage)
            note = (f"burst of {burst:,} calls; caller CPU {m['cpu_us_per_call']:.2f} µs/call; single calls p50 "
                    f"{m['p50_us']:.2f} µs, p99 {m['p99_us']:.1f} µs")
            results += [
                Result(NAME, f"calls/s on the caller's thread ({label})", m["calls_per_s"], "calls/s",
                       "≥ 200,000", m["calls_per_s"] >= 200_000, note, m),
                Result(NAME, f"µs per call ({label})", m["us_per_call"], "µs", "≤ 5", m["us_per_call"] <= 5),
                Result(NAME, f"sustained calls/s, {sustained:,} calls ({label})", m["sustained_calls_per_s"], "calls/s",
                       note="more calls than the 100,000-record queue holds: paced by the storage"
                       if sustained > 100_000 else "within the queue"),
                Result(NAME, f"stored/s until flush returns ({label})", m["stored_per_s"], "rec/s",
                       note=f"{sustained:,} calls, end to end"
                       + (f"; {m['remaining']} left after flush" if m["remaining"] else "")),
            ]  # fmt: skip
    return results
