"""The batch worker leaves bursts of submissions to the caller's thread, within its bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from rlhfkit import _batching
from rlhfkit._batching import BatchProcessor

PAUSE_S = 0.005
"""The submitters' pause between groups of items: far below the linger, even on a loaded machine."""


class _Recorder:
    def __init__(self) -> None:
        self.exported: list[int] = []
        self.times: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> None:
        with self.lock:
            self.exported.extend(items)
            self.times.append(time.monotonic())


def _submit_for(processor: BatchProcessor[int], seconds: float, per_pause: int, start: int = 0) -> int:
    """Submit ``per_pause`` items every :data:`PAUSE_S` for ``seconds``; the next item number."""
    n = start
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(per_pause):
            processor.submit(n)
            n += 1
        time.sleep(PAUSE_S)
    return n


def test_a_burst_is_exported_once_it_ends_in_order_and_complete(monkeypatch: Any) -> None:
    """Nothing is exported while batches keep arriving faster than the linger; all of it right after."""
    monkeypatch.setattr(_batching, "_LINGER_S", 0.1)
    recorder = _Recorder()
    processor = BatchProcessor(recorder, batch_size=10, flush_interval_s=30.0, max_queue_size=1_000_000)
    try:
        sent = _submit_for(processor, 0.3, per_pause=20)
        assert recorder.exported == []  # the burst (a batch or more every pause) went on
        burst_end = time.monotonic()
        deadline = burst_end + 5
        while len(recorder.exported) < sent and time.monotonic() < deadline:
            time.sleep(0.01)
        assert recorder.exported == list(range(sent))
        assert recorder.times[0] - burst_end < 1.0
    finally:
        processor.shutdown(5)


def test_a_burst_is_cut_short_by_half_a_queue_and_by_the_flush_interval() -> None:
    """A long burst still exports when the queue is half full, or when the flush interval has passed."""
    half = BatchProcessor(_Recorder(), batch_size=10, flush_interval_s=30.0, max_queue_size=400)
    interval = BatchProcessor(_Recorder(), batch_size=10, flush_interval_s=0.2, max_queue_size=1_000_000)
    try:
        for processor in (half, interval):
            recorder = processor._export
            assert isinstance(recorder, _Recorder)
            _submit_for(processor, 1.0, per_pause=15)
            assert recorder.exported, "a burst of a second was never exported"
            assert recorder.exported == list(range(len(recorder.exported)))
    finally:
        half.shutdown(5)
        interval.shutdown(5)


def test_flush_during_a_burst_exports_without_waiting_for_its_end() -> None:
    """flush() cuts the linger short: it returns with everything exported."""
    recorder = _Recorder()
    processor = BatchProcessor(recorder, batch_size=10, flush_interval_s=30.0, max_queue_size=1_000_000)
    try:
        sent = _submit_for(processor, 0.2, per_pause=20)
        assert processor.flush(5.0) == 0
        assert recorder.exported == list(range(sent))
    finally:
        processor.shutdown(5)
