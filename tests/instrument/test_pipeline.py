"""Instrumentors, middleware, events, sampling, the buffer, delivery and the manual capture API."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from rlhfkit import BinaryFeedback, Feedback, FeedbackType, Interaction, RecordBatch, create_rlhf_logger
from rlhfkit.errors import ClosedError, ValidationError
from rlhfkit.instrument import InstrumentationConfig, RLHFInstrumentation, create_instrumentation
from rlhfkit.storage.memory import MemoryStorage
from rlhfkit.testing import FakeLLMServer

from .conftest import user


class FailingStorage(MemoryStorage):
    """A storage whose writes always fail."""

    def write(self, batch: RecordBatch) -> None:
        raise OSError("disk on fire")


def client_for(inst: RLHFInstrumentation, server: FakeLLMServer) -> openai.OpenAI:
    """An instrumented OpenAI client pointed at the fake server."""
    return inst.instrument(openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=1))


def test_config_options_and_spec_names() -> None:
    """Every spec option exists in snake_case; flush_interval (ms) maps to flush_interval_s; bad values are refused."""
    config = InstrumentationConfig.from_kwargs(flush_interval=30000, sample_rate=0.5, batch_size=20)
    assert config.flush_interval_s == 30.0 and config.sample_rate == 0.5 and config.batch_size == 20
    for name in (
        "enabled",
        "capture_interactions",
        "capture_feedback",
        "capture_metrics",
        "capture_errors",
        "capture_usage_patterns",
        "collect_context",
        "custom_context",
        "sample_rate",
        "max_buffer_size",
        "on_buffer_full",
        "on_interaction_captured",
        "on_feedback_captured",
        "storage",
        "remote_endpoint",
        "batch_size",
    ):
        assert hasattr(config, name)
    with pytest.raises(ValidationError) as bad:
        InstrumentationConfig(sample_rate=1.5)
    assert bad.value.field == "sample_rate"
    with pytest.raises(ValidationError) as unknown:
        RLHFInstrumentation(sampleRate=0.5)
    assert unknown.value.field == "sampleRate"
    with pytest.raises(ValidationError):
        InstrumentationConfig(storage="remote")


def test_failing_storage_and_instrumentor_never_reach_the_caller(server: FakeLLMServer) -> None:
    """With a storage and an instrumentor that always raise, the call succeeds, returns the same object, and failures are counted."""
    inst = RLHFInstrumentation(storage_backend=FailingStorage(), batch_size=1)

    def broken(interaction: Interaction) -> Interaction:
        raise RuntimeError("instrumentor bug")

    inst.add_instrumentor(broken)
    client = client_for(inst, server)
    try:
        result = client.chat.completions.create(model="m", messages=user("still works"))
        assert result.choices[0].message.content == server.reply
        assert inst.flush(timeout_s=2) == 1
        metrics = inst.get_metrics()
        assert metrics.failed_uploads >= 1 and metrics.pipeline_errors == 1
        assert [i.prompt for i in inst.get_interactions()] == ["still works"]
    finally:
        inst.destroy(timeout_s=1)


def test_instrumentors_change_or_drop(inst: RLHFInstrumentation) -> None:
    """An instrumentor's returned interaction replaces the record; None drops it."""
    inst.add_instrumentor(lambda i: i.model_copy(update={"metadata": {**i.metadata, "variant": "B"}}))
    inst.add_instrumentor(lambda i: None if len(i.prompt) < 5 else i)
    assert inst.capture_interaction("hey", "short") is None
    kept = inst.capture_interaction("a longer prompt", "kept")
    assert kept is not None and kept.metadata["variant"] == "B"
    assert [i.prompt for i in inst.get_interactions()] == ["a longer prompt"]


def test_middleware_sync_async_and_dropping(inst: RLHFInstrumentation) -> None:
    """Middleware runs in order; async middleware is awaited; one that never calls next drops the record."""
    seen: list[str] = []

    def logging_mw(interaction: Interaction, next: Any) -> None:
        seen.append(f"sync:{interaction.prompt}")
        next()

    async def async_mw(interaction: Interaction, next: Any) -> None:
        await asyncio.sleep(0)
        seen.append(f"async:{interaction.prompt}")
        await next(interaction.model_copy(update={"response": interaction.response.upper()}))

    def validating_mw(interaction: Interaction, next: Any) -> None:
        if "drop" not in interaction.prompt:
            next()

    inst.add_middleware(logging_mw)
    inst.add_middleware(async_mw)
    inst.add_middleware(validating_mw)
    inst.capture_interaction("keep me", "yes")
    inst.capture_interaction("drop me", "no")
    assert seen == ["sync:keep me", "async:keep me", "sync:drop me", "async:drop me"]
    assert [(i.prompt, i.response) for i in inst.get_interactions()] == [("keep me", "YES")]


def test_events_and_callbacks(server: FakeLLMServer) -> None:
    """interaction-captured, error-captured, feedback-captured and the config callbacks fire with the records."""
    captured: list[Interaction] = []
    feedback_seen: list[Feedback] = []
    inst = RLHFInstrumentation(
        on_interaction_captured=captured.append, on_feedback_captured=feedback_seen.append
    )
    events: dict[str, list[Any]] = {"interaction-captured": [], "error-captured": [], "feedback-captured": []}
    for name, bucket in events.items():
        inst.on(name, bucket.append)
    client = client_for(inst, server)
    try:
        client.chat.completions.create(model="m", messages=user("ok"))
        server.queue_error(400)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=user("bad"))
        first = inst.get_interactions()[0]
        inst.capture_feedback(first.id, "thumbs-up", True)
        inst.flush(timeout_s=2)
        assert [i.prompt for i in captured] == ["ok", "bad"]
        assert [i.prompt for i in events["interaction-captured"]] == ["ok", "bad"]
        assert [i.prompt for i in events["error-captured"]] == ["bad"]
        assert len(events["feedback-captured"]) == 1 and feedback_seen[0].interaction_id == first.id
        with pytest.raises(ValidationError):
            inst.on("nope", print)
    finally:
        inst.destroy(timeout_s=1)


def test_sampling_is_seeded_and_applied(server: FakeLLMServer) -> None:
    """With sample_rate 0.5 and a seed, the same calls are captured on every run; sample_rate 0 captures none."""
    kept_runs = []
    for _ in range(2):
        inst = RLHFInstrumentation(sample_rate=0.5, sample_seed=7)
        for n in range(20):
            inst.capture_interaction(f"prompt {n}", "r")
        kept_runs.append([i.prompt for i in inst.get_interactions()])
        inst.destroy(timeout_s=1)
    assert kept_runs[0] == kept_runs[1] and 3 <= len(kept_runs[0]) <= 17
    none = RLHFInstrumentation(sample_rate=0.0)
    client = client_for(none, server)
    try:
        client.chat.completions.create(model="m", messages=user("unsampled"))
        assert none.get_interactions() == []
    finally:
        none.destroy(timeout_s=1)


def test_buffer_full_emits_calls_back_and_stays_bounded() -> None:
    """At max_buffer_size: 'buffer-full' and on_buffer_full get the records, the buffer never exceeds its bound, evictions are counted."""
    full_calls: list[int] = []
    inst = RLHFInstrumentation(
        max_buffer_size=5, on_buffer_full=lambda records: full_calls.append(len(records))
    )
    events: list[int] = []
    inst.on("buffer-full", lambda records: events.append(len(records)))
    try:
        for n in range(12):
            inst.capture_interaction(f"prompt {n}", "r")
            assert len(inst.get_interactions()) <= 5
        assert full_calls and full_calls == events and full_calls[0] == 5
        metrics = inst.get_metrics()
        assert (
            metrics.total_interactions == 12 and metrics.evicted_records > 0 and metrics.dropped_records == 0
        )
        assert inst.get_interactions()[-1].prompt == "prompt 11"
    finally:
        inst.destroy(timeout_s=1)


def test_buffer_full_with_failing_delivery_counts_what_is_dropped() -> None:
    """When records cannot be delivered and room is needed, each one let go is counted."""
    inst = RLHFInstrumentation(max_buffer_size=4, storage_backend=FailingStorage(), batch_size=100)
    try:
        for n in range(10):
            inst.capture_interaction(f"prompt {n}", "r")
        metrics = inst.get_metrics()
        assert len(inst.get_interactions()) <= 4
        assert metrics.dropped_records + inst.flush(timeout_s=1) == 10
        assert metrics.failed_uploads > 0
    finally:
        inst.destroy(timeout_s=1)


def test_delivery_to_a_storage_backend_in_batches() -> None:
    """Records reach a Storage backend as RecordBatch writes; flush returns 0 once everything is delivered."""
    storage = MemoryStorage()
    flushed: list[int] = []
    inst = RLHFInstrumentation(storage_backend=storage, batch_size=3)
    inst.on("flushed", lambda records: flushed.append(len(records)))
    try:
        ids = [inst.capture_interaction(f"p{n}", "r").id for n in range(4)]  # type: ignore[union-attr]
        feedback = inst.capture_feedback(ids[0], "rating", 4, comment="good")
        assert inst.flush(timeout_s=2) == 0
        assert sum(flushed) == 5
        assert all(storage.get_interaction(i) is not None for i in ids)
        assert feedback is not None and storage.get_feedback(feedback.id) is not None
    finally:
        inst.destroy(timeout_s=1)


def test_a_record_an_instrumentor_made_unstorable_is_counted_and_the_rest_delivered(tmp_path: Path) -> None:
    """An instrumentor that puts a lone surrogate in one record: it is counted as dropped, every other one is written."""
    inst = RLHFInstrumentation(storage="local", data_dir=str(tmp_path), batch_size=10)
    inst.add_instrumentor(
        lambda i: i.model_copy(update={"metadata": {"note": "a\ud800"}}) if i.prompt == "poisoned" else i
    )
    try:
        for n in range(4):
            inst.capture_interaction(f"fine {n}", "ok")
        inst.capture_interaction("poisoned", "ok")
        inst.capture_interaction("fine 4", "ok")
        assert inst.flush(timeout_s=5) == 0
        assert inst.get_metrics().dropped_records == 1
    finally:
        inst.destroy(timeout_s=1)
    text = "".join(p.read_text() for p in tmp_path.rglob("*.jsonl"))
    assert [f"fine {n}" in text for n in range(5)] == [True] * 5
    assert "poisoned" not in text


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda inst: inst.capture_interaction("p\x00", "r"), "prompt"),
        (lambda inst: inst.capture_interaction("p", "r", metadata={"x": float("nan")}), "metadata.x"),
        (lambda inst: inst.capture_interaction("p", "r", model="m" * 400), "model"),
        (lambda inst: inst.capture_feedback("some-id", "rating", 10**400), "value"),
        (lambda inst: inst.capture_feedback("some-id", "thumbs-up", True, metadata=[1]), "metadata"),
        (lambda inst: inst.capture_feedback("some-id", "text", "fine\x00"), "data.comment"),
    ],
)
def test_manual_capture_refuses_what_no_backend_could_store(inst: RLHFInstrumentation, call: Any, field: str) -> None:
    """capture_interaction / capture_feedback raise ValidationError naming the field rather than drop it later."""
    with pytest.raises(ValidationError) as refused:
        call(inst)
    assert refused.value.field == field
    assert inst.get_interactions() == [] and inst.get_metrics().dropped_records == 0


def test_a_record_a_middleware_broke_does_not_block_the_logger(tmp_path: Path) -> None:
    """A middleware that sets a wrong type: that record is counted as dropped, the ones after it reach the logger."""
    logger = create_rlhf_logger(backend="memory", enable_session_tracking=False)
    inst = RLHFInstrumentation(logger=logger, batch_size=10)

    def break_one(interaction: Interaction, next: Any) -> Any:
        if interaction.prompt == "broken":
            interaction.model = 7  # type: ignore[assignment]
        return next(interaction)

    inst.add_middleware(break_one)
    try:
        inst.capture_interaction("fine 1", "ok")
        inst.capture_interaction("broken", "ok")
        inst.capture_interaction("fine 2", "ok")
        assert inst.flush(timeout_s=5) == 0
        assert inst.get_metrics().dropped_records == 1
        assert logger.flush(5) == 0
        assert sorted(i.prompt for i in logger.query_interactions()) == ["fine 1", "fine 2"]
    finally:
        inst.destroy(timeout_s=1)
        logger.close()


def test_local_storage_appends_jsonl(tmp_path: Path) -> None:
    """storage='local' writes the captured records through LocalStorage under data_dir."""
    inst = RLHFInstrumentation(storage="local", data_dir=str(tmp_path), batch_size=2)
    try:
        inst.capture_interaction("to disk", "ok")
        assert inst.flush(timeout_s=5) == 0
    finally:
        inst.destroy(timeout_s=1)
    text = "".join(p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    assert "to disk" in text


def test_feedback_mapping_onto_core_types(inst: RLHFInstrumentation) -> None:
    """thumbs-up/down → binary, rating → rating, text → text, custom → by value (dict of numbers → multi-dimensional)."""
    iid = inst.capture_interaction("q", "a").id  # type: ignore[union-attr]
    up = inst.capture_feedback(iid, "thumbs-up", True, comment="nice")
    down = inst.capture_feedback({"interactionId": iid, "type": "thumbs-down", "value": False})
    rating = inst.capture_feedback(iid, "rating", 4, comment="solid")
    text = inst.capture_feedback(iid, "text", "Too long")
    multi = inst.capture_feedback(iid, "custom", {"accuracy": 4, "clarity": 5})
    flag = inst.capture_feedback(iid, "custom", False)
    assert up and up.type is FeedbackType.BINARY and up.data.value is BinaryFeedback.THUMBS_UP  # type: ignore[union-attr]
    assert down and down.data.value is BinaryFeedback.THUMBS_DOWN  # type: ignore[union-attr]
    assert rating and rating.type is FeedbackType.RATING and rating.data.comment == "solid"  # type: ignore[union-attr]
    assert text and text.type is FeedbackType.TEXT and text.data.comment == "Too long"  # type: ignore[union-attr]
    assert multi and multi.type is FeedbackType.MULTI_DIMENSIONAL and multi.metadata["event_type"] == "custom"
    assert flag and flag.type is FeedbackType.BINARY
    with pytest.raises(ValidationError) as bad_type:
        inst.capture_feedback(iid, "stars", 3)
    assert bad_type.value.field == "type"
    with pytest.raises(ValidationError):
        inst.capture_feedback(iid, "rating", 9)
    (interaction,) = inst.get_interactions(has_feedback=True)
    assert len(interaction.feedback_ids) == 6
    metrics = inst.get_metrics()
    assert metrics.feedback_rate == 1.0 and metrics.total_feedback == 6


def test_get_interactions_filters(inst: RLHFInstrumentation) -> None:
    """Filters: session, model, feedback, dates (datetime or epoch ms) and limit (most recent)."""
    with inst.context(session_id="s-1"):
        a = inst.capture_interaction("one", "r", model="m1")
        inst.capture_interaction("two", "r", model="m2")
    inst.capture_interaction("three", "r", model="m1")
    inst.capture_feedback(a.id, "thumbs-up")  # type: ignore[union-attr]
    assert [i.prompt for i in inst.get_interactions(session_id="s-1")] == ["one", "two"]
    assert [i.prompt for i in inst.get_interactions(model="m1")] == ["one", "three"]
    assert [i.prompt for i in inst.get_interactions(has_feedback=True)] == ["one"]
    assert [i.prompt for i in inst.get_interactions(has_feedback=False)] == ["two", "three"]
    assert [i.prompt for i in inst.get_interactions(limit=2)] == ["two", "three"]
    hour_ago_ms = (datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000
    assert len(inst.get_interactions(start_date=hour_ago_ms)) == 3
    assert inst.get_interactions(end_date=datetime.now(UTC) - timedelta(hours=1)) == []
    assert inst.get_metrics().interactions_per_session == {"s-1": 2}
    inst.clear()
    assert inst.get_interactions() == []


def test_usage_patterns_and_latency_percentiles(server: FakeLLMServer) -> None:
    """get_metrics reports counts by model and hour, top normalised prompts, error rate by model, p50/p95."""
    inst = RLHFInstrumentation()
    client = client_for(inst, server)
    try:
        for text in ("What is RLHF?", "what is rlhf", "Other"):
            client.chat.completions.create(model="gpt-a", messages=user(text))
        for _ in client.chat.completions.create(model="gpt-b", messages=user("stream"), stream=True):
            pass
        server.queue_error(400)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-b", messages=user("bad"))
        m = inst.get_metrics()
        assert m.total_interactions == 5 and m.error_rate == pytest.approx(0.2)
        assert m.interactions_by_model == {"gpt-a": 3, "gpt-b": 2}
        assert m.error_rate_by_model == {"gpt-a": 0.0, "gpt-b": 0.5}
        assert m.top_prompts[0] == ("what is rlhf", 2)
        assert sum(m.interactions_by_hour.values()) == 5
        assert (
            m.p50_latency_ms is not None
            and m.p95_latency_ms is not None
            and m.p50_latency_ms <= m.p95_latency_ms
        )
        assert m.p50_ttft_ms is not None and m.average_response_time > 0
    finally:
        inst.destroy(timeout_s=1)


def test_capture_interaction_accepts_spec_messages_and_refuses_bad_input(inst: RLHFInstrumentation) -> None:
    """Spec Message dicts are accepted; an empty prompt raises a ValidationError naming the field and stores nothing."""
    got = inst.capture_interaction(
        {"id": "msg-1", "role": "user", "content": "Hello"},
        {"id": "msg-2", "role": "assistant", "content": "Hi there!"},
        usage={"prompt_tokens": 3, "completion_tokens": 4},
        error=RuntimeError("late"),
    )
    assert got is not None and got.prompt == "Hello" and got.response == "Hi there!"
    assert (
        got.token_usage is not None
        and got.token_usage.total == 7
        and got.error
        and got.error.type == "RuntimeError"
    )
    with pytest.raises(ValidationError) as bad:
        inst.capture_interaction("   ", "x")
    assert bad.value.field.startswith("interaction")
    assert len(inst.get_interactions()) == 1


def test_logger_receives_records(tmp_path: Path) -> None:
    """With logger=RLHFLogger, captured interactions and feedback go through log_record into its backend."""
    from rlhfkit import create_rlhf_logger

    storage = MemoryStorage()
    rlhf_logger = create_rlhf_logger(storage=storage)
    inst = RLHFInstrumentation(logger=rlhf_logger)
    try:
        interaction = inst.capture_interaction("logged", "yes")
        assert interaction is not None
        inst.capture_feedback(interaction.id, "thumbs-down")
        assert inst.flush(timeout_s=5) == 0
        assert storage.get_interaction(interaction.id) is not None
        assert rlhf_logger.get_feedback_stats().binary.thumbs_down == 1
    finally:
        inst.destroy(timeout_s=1)
        rlhf_logger.close()


def test_destroy_uninstruments_and_closes(server: FakeLLMServer) -> None:
    """destroy() flushes, restores clients, and refuses further use."""
    inst = create_instrumentation(storage="memory")
    client = client_for(inst, server)
    inst.destroy(timeout_s=1)
    assert "create" not in vars(client.chat.completions)
    with pytest.raises(ClosedError):
        inst.instrument(client)
    with pytest.raises(ValidationError):
        RLHFInstrumentation().instrument(object())


def test_concurrent_calls_from_threads_are_all_captured(server: FakeLLMServer) -> None:
    """Calls from several threads are each captured once, with their own retry counts."""
    inst = RLHFInstrumentation()
    client = client_for(inst, server)
    try:
        threads = [
            threading.Thread(
                target=lambda n=n: client.chat.completions.create(model="m", messages=user(f"t{n}"))
            )
            for n in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        found = inst.get_interactions()
        assert sorted(i.prompt for i in found) == sorted(f"t{n}" for n in range(8))
        assert all(i.metrics and i.metrics.retry_count == 0 for i in found)
        assert json.dumps([i.model_dump(mode="json") for i in found])
    finally:
        inst.destroy(timeout_s=1)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """RLHFKIT_SAMPLE_RATE and RLHFKIT_INSTRUMENTATION_ENABLED apply when the argument is not given."""
    monkeypatch.setenv("RLHFKIT_SAMPLE_RATE", "0.25")
    monkeypatch.setenv("RLHFKIT_INSTRUMENTATION_ENABLED", "false")
    config = InstrumentationConfig.from_kwargs()
    assert config.sample_rate == 0.25 and config.enabled is False
    assert InstrumentationConfig.from_kwargs(sample_rate=1.0).sample_rate == 1.0
    monkeypatch.setenv("RLHFKIT_SAMPLE_RATE", "lots")
    with pytest.raises(ValidationError) as bad:
        InstrumentationConfig.from_kwargs()
    assert bad.value.field == "RLHFKIT_SAMPLE_RATE"


async def test_aflush_and_context_manager() -> None:
    """aflush delivers from async code without blocking the loop; leaving `with` destroys the instrumentation."""
    storage = MemoryStorage()
    with RLHFInstrumentation(storage_backend=storage, batch_size=50) as inst:
        got = inst.capture_interaction("async flush", "ok")
        assert got is not None
        assert await inst.aflush(timeout_s=2) == 0
        assert storage.get_interaction(got.id) is not None
    with pytest.raises(ClosedError):
        inst.capture_interaction("after", "closed")
