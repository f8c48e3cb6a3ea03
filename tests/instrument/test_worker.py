"""The worker thread's handling of a backlog: records built in order, the GIL let go once per slice of work."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rlhfkit.instrument._worker as worker_module
from rlhfkit.instrument import RLHFInstrumentation


class _CountingTime:
    """The ``time`` module as the worker sees it, counting the worker thread's ``sleep(0)``."""

    perf_counter = staticmethod(time.perf_counter)
    monotonic = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.releases = 0

    def sleep(self, seconds: float) -> None:
        if seconds == 0 and threading.current_thread().name == "rlhfkit-instrumentation":
            self.releases += 1
        time.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[_CountingTime]:
    """The worker's time module, replaced by a counting one."""
    counting = _CountingTime()
    monkeypatch.setattr(worker_module, "time", counting)
    yield counting


def _backlog_on_worker(inst: RLHFInstrumentation, n: int) -> None:
    """Queue ``n`` records while the worker is held off, then let its thread process them all."""
    worker: Any = inst._worker
    with worker.lock:
        for i in range(n):
            inst.capture_interaction(f"prompt {i}", "response")
    worker.wake.set()
    deadline = time.monotonic() + 10
    while (worker.pending or worker._in_process) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.pending


@pytest.mark.parametrize(("slice_s", "releases"), [(0.0, 20), (3600.0, 0)])
def test_worker_lets_go_of_the_gil_once_per_slice_of_work(
    clock: _CountingTime, monkeypatch: pytest.MonkeyPatch, slice_s: float, releases: int
) -> None:
    """With a zero slice the worker releases the GIL after every record; with a long one, never within a backlog."""
    monkeypatch.setattr(worker_module, "_SLICE_S", slice_s)
    inst = RLHFInstrumentation()
    try:
        _backlog_on_worker(inst, 20)
        assert clock.releases == releases
        assert [i.prompt for i in inst.get_interactions()] == [f"prompt {i}" for i in range(20)]
    finally:
        inst.destroy(timeout_s=2)


def test_worker_lets_go_of_the_gil_before_each_delivery_batch(
    clock: _CountingTime, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Delivering from the worker thread, the GIL is let go before each batch; every record still arrives once."""
    monkeypatch.setattr(worker_module, "_SLICE_S", 3600.0)
    inst = RLHFInstrumentation(storage="local", data_dir=str(tmp_path), batch_size=5)
    try:
        _backlog_on_worker(inst, 20)
        assert clock.releases == 4
        assert inst.flush(timeout_s=5) == 0
        lines = [line for f in tmp_path.glob("interactions-*.jsonl") for line in f.read_text().splitlines()]
        assert len(lines) == 20
    finally:
        inst.destroy(timeout_s=2)


def _finished_call(inst: RLHFInstrumentation, prompt: str) -> Any:
    """An SDK call handed to ``inst``'s worker as it finishes now."""
    from rlhfkit.instrument._calls import Call

    call = Call(inst._submit, "openai", "chat", {"model": "m", "messages": [{"role": "user", "content": prompt}]},
                None, None)  # fmt: skip
    call.finish("returned")
    return call


def test_worker_waits_while_calls_finish_back_to_back_up_to_its_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call that just finished makes the worker wait; a quiet moment, a long queue or an old call lets it go."""
    inst = RLHFInstrumentation()
    worker: Any = inst._worker
    try:
        with worker.lock:  # keeps the worker's rounds out while looking
            _finished_call(inst, "first")
            assert worker.callers_busy()
            monkeypatch.setattr(worker_module, "_DEFER_MAX", 2)
            _finished_call(inst, "second")
            assert not worker.callers_busy()
            monkeypatch.setattr(worker_module, "_DEFER_MAX", 64)
            assert worker.callers_busy()
            monkeypatch.setattr(worker_module, "_DEFER_MAX_S", 0.0)
            assert not worker.callers_busy()
            monkeypatch.setattr(worker_module, "_DEFER_MAX_S", 60.0)
            monkeypatch.setattr(worker_module, "_QUIET_S", 0.0)
            assert not worker.callers_busy()
            inst.capture_interaction("by hand", "response")
            assert not worker.callers_busy()  # only SDK calls make the worker wait
    finally:
        inst.destroy(timeout_s=2)


def test_worker_builds_records_once_callers_are_quiet() -> None:
    """Calls finished in a burst are built by the worker on its own after the burst, each once, in order."""
    inst = RLHFInstrumentation()
    worker: Any = inst._worker
    try:
        for i in range(10):
            _finished_call(inst, f"prompt {i}")
        deadline = time.monotonic() + 10
        while worker.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [i.prompt for i in worker.buffer.interactions.values()] == [f"prompt {i}" for i in range(10)]
    finally:
        inst.destroy(timeout_s=2)


def test_usage_patterns_count_normalized_prompts_with_a_bounded_memo() -> None:
    """Prompts are counted under their normalized form; the memo of normalized prompts stays bounded."""
    from rlhfkit import Interaction
    from rlhfkit.instrument._metrics import _NORMALIZED_KEPT, MetricsTracker, normalize_prompt

    tracker = MetricsTracker()
    prompts = [f"Hello,   World #{i % 1500}!" for i in range(3000)]
    for prompt in prompts:
        tracker.interaction(Interaction(prompt=prompt), usage_patterns=True)
    assert 0 < len(tracker.normalized) <= _NORMALIZED_KEPT
    assert tracker.prompts == {normalize_prompt(p): 2 for p in prompts[:1500]}
    assert tracker.snapshot(top=1).top_prompts == [("hello world 0", 2)]
