"""RLHFLogger: every method, every config option and every bad-input rule, on each backend."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from rlhfkit import (
    AsyncRLHFLogger,
    BinaryFeedback,
    ExportFormat,
    FeedbackFilter,
    FeedbackType,
    InteractionFilter,
    RecordBatch,
    RLHFConfig,
    RLHFLogger,
    StorageBackend,
    create_rlhf_logger,
)
from rlhfkit._models import utc_now
from rlhfkit.errors import ClosedError, ConfigurationError, NotFoundError, ValidationError
from rlhfkit.storage.memory import MemoryStorage

BACKENDS = ["memory", "local", "sqlite"]


def backend_settings(kind: str, tmp_path: Path) -> dict[str, Any]:
    """Settings of create_rlhf_logger for one backend kind, under tmp_path."""
    if kind == "memory":
        return {"backend": StorageBackend.MEMORY}
    if kind == "local":
        return {
            "backend": StorageBackend.LOCAL,
            "backend_config": {"local": {"data_dir": str(tmp_path / "data")}},
        }
    return {
        "backend": StorageBackend.SQLITE,
        "backend_config": {"sqlite": {"path": str(tmp_path / "rlhf.db")}},
    }


@pytest.fixture(params=BACKENDS)
def logger(request: pytest.FixtureRequest, tmp_path: Path):
    """A batching logger on each embedded backend."""
    with create_rlhf_logger(
        **backend_settings(request.param, tmp_path), batch_flush_interval_s=0.05
    ) as logger:
        yield logger


# --------------------------------------------------------------------------- the spec's examples


def test_quick_start_runs_on_every_backend(logger: RLHFLogger) -> None:
    """The spec's Quick Start: an interaction, a thumbs up, and a feedback rate of 1."""
    interaction_id = logger.log_interaction(
        "What is the capital of France?",
        "The capital of France is Paris.",
        model="gpt-4",
        latency=250,
        token_usage={"prompt": 10, "completion": 15, "total": 25},
    )
    logger.log_binary_feedback(interaction_id, BinaryFeedback.THUMBS_UP)
    stats = logger.get_feedback_stats()
    assert stats.total_interactions == 1
    assert stats.feedback_rate == 1.0
    stored = logger.get_interaction(interaction_id)
    assert stored is not None and stored.model == "gpt-4" and stored.latency == 250
    assert stored.token_usage is not None and stored.token_usage.total == 25


def test_feedback_types_section_examples(logger: RLHFLogger) -> None:
    """Every example of the spec's "Feedback Types" section, read back by value."""
    a = logger.log_interaction("Explain DNS", "DNS maps names to addresses.", model="gpt-4")
    b = logger.log_interaction("Explain DNS", "It is a phone book.", model="claude-2")
    c = logger.log_interaction("Explain DNS", "No idea.", model="llama-2")
    up = logger.log_binary_feedback(a, BinaryFeedback.THUMBS_UP)
    logger.log_binary_feedback(c, BinaryFeedback.THUMBS_DOWN)
    logger.log_binary_feedback(a, BinaryFeedback.THUMBS_UP, user_id="user123", source="web")
    logger.log_rating(a, 5)
    logger.log_rating(a, 4, "Very helpful response!")
    ten = logger.log_rating(b, 8, "Great!", max_rating=10)
    logger.log_text_feedback(a, "The response was accurate but could be more concise.")
    logger.log_text_feedback(a, "Excellent explanation!", "positive")
    logger.log_text_feedback(c, "This answer is incorrect.", "negative")
    logger.log_multi_dimensional_feedback(
        a, {"accuracy": 5, "helpfulness": 4, "clarity": 5, "completeness": 3, "tone": 4}
    )
    weighted = logger.log_multi_dimensional_feedback(
        a,
        {"accuracy": 5, "helpfulness": 4, "clarity": 5},
        weights={"accuracy": 0.5, "helpfulness": 0.3, "clarity": 0.2},
        overall_comment="Great response overall, but could include more examples.",
    )
    logger.log_comparative_feedback(a, [b, c])
    compared = logger.log_comparative_feedback(
        a, [b, c], reason="More detailed and accurate", confidence_level=0.9
    )

    thumbs = logger.get_feedback(up)
    assert (
        thumbs is not None
        and thumbs.type is FeedbackType.BINARY
        and thumbs.data.value == BinaryFeedback.THUMBS_UP
    )
    rating = logger.get_feedback(ten)
    assert rating is not None and rating.data.value == 8 and rating.data.max_rating == 10
    multi = logger.get_feedback(weighted)
    assert multi is not None and multi.data.weighted_score == pytest.approx(5 * 0.5 + 4 * 0.3 + 5 * 0.2)
    comparison = logger.get_feedback(compared)
    assert (
        comparison is not None
        and comparison.data.confidence == 0.9
        and comparison.data.alternative_ids == [b, c]
    )
    assert comparison.data.reason == "More detailed and accurate"

    stats = logger.get_feedback_stats()
    assert (stats.binary.thumbs_up, stats.binary.thumbs_down) == (2, 1)
    assert stats.binary.ratio == pytest.approx(2 / 3)
    assert stats.rating.count == 3
    # 5/5 → 5, 4/5 → 4, 8/10 → 1 + 4 * 7/9 on the 1..5 scale
    assert stats.rating.average == pytest.approx((5 + 4 + (1 + 4 * 7 / 9)) / 3)
    assert (stats.text.positive, stats.text.negative) == (1, 1)
    assert stats.multi_dimensional.count == 2
    assert stats.comparative.count == 2
    assert stats.comparative.wins_by_model["gpt-4"] == 4  # pairwise: 2 comparisons x 2 alternatives
    assert stats.comparative.losses_by_model["llama-2"] == 2
    assert stats.comparative.win_rate_by_model["gpt-4"] == 1.0
    assert stats.by_model["gpt-4"].interactions == 1
    # Each interaction took part in a comparison, so each has feedback.
    assert stats.feedback_rate == 1.0


def test_analytics_section_examples(logger: RLHFLogger) -> None:
    """The spec's "Analytics and Insights" examples: stats, time ranges, queries, exports."""
    old = logger.log_interaction("q1", "a1", model="m", timestamp=utc_now() - timedelta(days=30))
    new = logger.log_interaction("q2", "a2", model="m")
    logger.log_rating(old, 1, "bad", timestamp=utc_now() - timedelta(days=30))
    logger.log_rating(new, 2, "meh")
    logger.log_text_feedback(new, "Wrong units", "negative")
    logger.log_rating(new, 5, "great")

    last_week = utc_now() - timedelta(days=7)
    weekly = logger.get_feedback_stats(last_week, utc_now() + timedelta(seconds=1))
    assert weekly.total_interactions == 1
    assert weekly.total_feedback == 3

    negative = logger.query_feedback(
        types=[FeedbackType.RATING, FeedbackType.TEXT], max_rating=2, start_time=last_week
    )
    # As in the spec's loop over the result, max_rating bounds ratings and lets text through.
    assert [f.type for f in negative] == [FeedbackType.RATING, FeedbackType.TEXT]
    assert negative[0].data.value == 2 and negative[1].data.comment == "Wrong units"

    json_data = logger.export_feedback(ExportFormat.JSON, start_time=last_week)
    rows = json.loads(json_data)
    assert [r["id"] for r in rows] == [new]
    assert len(rows[0]["feedback"]) == 3
    csv_data = logger.export_feedback(ExportFormat.CSV)
    assert len(list(csv.DictReader(io.StringIO(csv_data)))) == 2


# --------------------------------------------------------------------------- every method


def test_get_feedback_for_interaction_includes_comparisons(logger: RLHFLogger) -> None:
    """get_feedback_for_interaction returns direct feedback and comparisons the interaction lost."""
    a = logger.log_interaction("p", "a")
    b = logger.log_interaction("p", "b")
    logger.log_rating(b, 3)
    comparison = logger.log_comparative_feedback(a, [b])
    ids = {f.id for f in logger.get_feedback_for_interaction(b)}
    assert comparison in ids and len(ids) == 2
    interaction = logger.get_interaction(b)
    assert interaction is not None and set(interaction.feedback_ids) == ids


def test_query_interactions_filters_and_paginates(logger: RLHFLogger) -> None:
    """query_interactions honours model, user and limit/after_id criteria."""
    ids = [
        logger.log_interaction(f"prompt {n}", "r", model="a" if n % 2 else "b", user_id=f"u{n % 3}")
        for n in range(9)
    ]
    assert [i.id for i in logger.query_interactions(models=["a"])] == [i for n, i in enumerate(ids) if n % 2]
    assert len(logger.query_interactions(user_id="u0")) == 3
    first = logger.query_interactions(limit=4)
    rest = logger.query_interactions(after_id=first[-1].id)
    assert [i.id for i in first + rest] == ids


def test_get_missing_records_return_none(logger: RLHFLogger) -> None:
    """Unknown ids read as None, not as an error."""
    assert logger.get_interaction("missing") is None
    assert logger.get_feedback("missing") is None
    assert logger.get_feedback_for_interaction("missing") == []


def test_get_analytics_returns_stats_and_trends(logger: RLHFLogger) -> None:
    """get_analytics carries the same stats as get_feedback_stats."""
    a = logger.log_interaction("p", "a", model="x")
    logger.log_binary_feedback(a, True)
    analytics = logger.get_analytics()
    assert analytics.stats.binary.thumbs_up == 1
    assert analytics.stats.total_interactions == 1


def test_export_every_format_to_path_and_memory(logger: RLHFLogger, tmp_path: Path) -> None:
    """JSON, JSONL, CSV and Parquet exports hold every interaction, to a path or in memory."""
    import pyarrow.parquet as pq

    for n in range(5):
        iid = logger.log_interaction(f"prompt {n}", f"response {n}", model="m")
        logger.log_rating(iid, 1 + n % 5)
    jsonl = logger.export_feedback("jsonl")
    assert [json.loads(line)["prompt"] for line in jsonl.splitlines()] == [f"prompt {n}" for n in range(5)]
    parquet = logger.export_feedback(ExportFormat.PARQUET)
    assert isinstance(parquet, bytes)
    table = pq.read_table(io.BytesIO(parquet))
    assert table.num_rows == 5 and table.column("average_rating").to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    path = logger.export_feedback(ExportFormat.PARQUET, path=tmp_path / "out.parquet")
    assert pq.read_table(path).num_rows == 5
    feedback_only = json.loads(logger.export_feedback("json", include_interactions=False))
    assert len(feedback_only) == 5 and all(r["type"] == "rating" for r in feedback_only)


def test_csv_export_escapes_formulas(logger: RLHFLogger) -> None:
    """CSV cells beginning with = + - @ are prefixed so spreadsheets do not run them."""
    logger.log_interaction('=HYPERLINK("http://evil")', "+1+1", model="@model")
    logger.log_interaction("-2", "safe", model="m")
    rows = list(csv.DictReader(io.StringIO(logger.export_feedback("csv"))))
    assert (
        rows[0]["prompt"].startswith("'=")
        and rows[0]["response"] == "'+1+1"
        and rows[0]["model"] == "'@model"
    )
    assert rows[1]["prompt"] == "'-2" and rows[1]["response"] == "safe"


def test_unknown_export_format_lists_valid_ones(logger: RLHFLogger) -> None:
    """An unknown export format is refused with the valid ones named."""
    with pytest.raises(ValidationError) as info:
        logger.export_feedback("xml")
    assert info.value.field == "format" and "jsonl" in str(info.value)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lg, i: lg.log_rating(i, 6), "rating"),
        (lambda lg, i: lg.log_rating(i, 0), "rating"),
        (lambda lg, i: lg.log_rating(i, 11, max_rating=10), "rating"),
        (lambda lg, i: lg.log_comparative_feedback(i, ["x"], confidence=1.5), "confidence"),
        (lambda lg, i: lg.log_comparative_feedback(i, [i]), "alternative_ids"),
        (lambda lg, i: lg.log_comparative_feedback(i, []), "alternative_ids"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, {"a": 3}, weights={"b": 1.0}), "weights"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, {"a": 3}, weights={"a": 0.0}), "weights"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, {}), "dimensions"),
        (lambda lg, i: lg.log_binary_feedback("no-such-id", True), "interaction_id"),
        (lambda lg, i: lg.log_rating("no-such-id", 3), "interaction_id"),
        (lambda lg, i: lg.log_comparative_feedback(i, ["no-such-id"]), "interaction_id"),
        (lambda lg, i: lg.log_interaction("", "r"), "prompt"),
        (lambda lg, i: lg.log_interaction("   ", "r"), "prompt"),
        (lambda lg, i: lg.log_interaction("p", "r", latency=-1), "latency"),
        (lambda lg, i: lg.log_interaction("p", "r", token_usage={"prompt": -1}), "token_usage.prompt"),
        (
            lambda lg, i: lg.log_interaction("p", "r", context=[{"role": "wizard", "content": "x"}]),
            "context.0.role",
        ),
        (lambda lg, i: lg.log_text_feedback(i, ""), "comment"),
        (lambda lg, i: lg.log_text_feedback(i, "ok", "ecstatic"), "sentiment"),
        (lambda lg, i: lg.log_binary_feedback(i, "sideways"), "value"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_stores_nothing(
    logger: RLHFLogger, call: Any, field: str
) -> None:
    """Each invalid call raises ValidationError naming the field, and nothing is stored."""
    iid = logger.log_interaction("p", "r")
    before = logger.get_feedback_stats()
    with pytest.raises(ValidationError) as info:
        call(logger, iid)
    assert info.value.field == field
    after = logger.get_feedback_stats()
    assert (after.total_interactions, after.total_feedback) == (
        before.total_interactions,
        before.total_feedback,
    )


def test_feedback_for_unknown_interaction_is_not_found_error(logger: RLHFLogger) -> None:
    """Feedback on an id that does not exist raises NotFoundError (a ValidationError)."""
    with pytest.raises(NotFoundError):
        logger.log_binary_feedback("ghost", BinaryFeedback.THUMBS_DOWN)


def test_logging_after_close_raises(tmp_path: Path) -> None:
    """A closed logger refuses new records instead of silently dropping them."""
    logger = create_rlhf_logger(backend=StorageBackend.MEMORY)
    logger.close()
    with pytest.raises(ClosedError):
        logger.log_interaction("p", "r")


# --------------------------------------------------------------------------- config options


def test_auto_generate_ids_off_requires_an_id() -> None:
    """With auto_generate_ids=False a call without id raises the spec's error; with one it works."""
    with create_rlhf_logger(backend=StorageBackend.MEMORY, auto_generate_ids=False) as logger:
        with pytest.raises(
            ValidationError, match="Interaction ID required when auto_generate_ids is disabled"
        ):
            logger.log_interaction("p", "r")
        assert logger.log_interaction("p", "r", id="custom-id-123") == "custom-id-123"
        with pytest.raises(ValidationError, match="Feedback ID required"):
            logger.log_rating("custom-id-123", 3)
        assert logger.log_rating("custom-id-123", 3, id="f-1") == "f-1"
        assert logger.get_interaction("custom-id-123") is not None


def test_allow_anonymous_false_refuses_records_without_user() -> None:
    """allow_anonymous=False refuses records with no user_id and stores nothing."""
    with create_rlhf_logger(backend=StorageBackend.MEMORY, allow_anonymous=False) as logger:
        with pytest.raises(ValidationError) as info:
            logger.log_interaction("p", "r")
        assert info.value.field == "user_id"
        iid = logger.log_interaction("p", "r", user_id="u1")
        with pytest.raises(ValidationError):
            logger.log_rating(iid, 4)
        logger.log_rating(iid, 4, user_id="u1")
        assert logger.get_feedback_stats().total_interactions == 1
        assert logger.get_feedback_stats().total_feedback == 1


def test_default_metadata_is_merged_into_every_record() -> None:
    """default_metadata appears on interactions and feedback; per-call metadata wins."""
    with create_rlhf_logger(
        backend=StorageBackend.MEMORY, default_metadata={"app": "demo", "env": "test"}
    ) as lg:
        iid = lg.log_interaction("p", "r", metadata={"env": "prod"}, experiment="b")
        fid = lg.log_rating(iid, 5)
        interaction, feedback = lg.get_interaction(iid), lg.get_feedback(fid)
    assert interaction is not None and interaction.metadata == {
        "app": "demo",
        "env": "prod",
        "experiment": "b",
    }
    assert feedback is not None and feedback.metadata == {"app": "demo", "env": "test"}


def test_batching_holds_records_until_flush() -> None:
    """With batching on, records reach storage at flush (and not one by one)."""
    storage = MemoryStorage()
    logger = RLHFLogger(RLHFConfig(batch_size=1000, batch_flush_interval_s=60), storage=storage)
    for n in range(10):
        logger.log_interaction(f"p{n}", "r")
    assert storage.feedback_stats().total_interactions == 0
    assert logger.flush(5) == 0
    assert storage.feedback_stats().total_interactions == 10
    logger.close()


def test_batch_size_triggers_a_background_flush() -> None:
    """Reaching batch_size stores the batch without any flush call."""
    storage = MemoryStorage()
    logger = RLHFLogger(RLHFConfig(batch_size=5, batch_flush_interval_s=60), storage=storage)
    for n in range(5):
        logger.log_interaction(f"p{n}", "r")
    deadline = time.monotonic() + 5
    while storage.feedback_stats().total_interactions < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert storage.feedback_stats().total_interactions == 5
    logger.close()


def test_flush_interval_stores_without_flush() -> None:
    """A partial batch is stored after batch_flush_interval_s."""
    storage = MemoryStorage()
    logger = RLHFLogger(RLHFConfig(batch_size=1000, batch_flush_interval_s=0.05), storage=storage)
    logger.log_interaction("p", "r")
    deadline = time.monotonic() + 5
    while storage.feedback_stats().total_interactions < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert storage.feedback_stats().total_interactions == 1
    logger.close()


def test_batching_off_writes_immediately() -> None:
    """enable_batching=False stores each record before the call returns."""
    storage = MemoryStorage()
    logger = RLHFLogger(RLHFConfig(enable_batching=False), storage=storage)
    logger.log_interaction("p", "r")
    assert storage.feedback_stats().total_interactions == 1
    logger.close()


class FlakyStorage(MemoryStorage):
    """A memory backend whose first ``failures`` writes raise."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def write(self, batch: RecordBatch) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk unavailable")
        super().write(batch)


def test_failed_writes_are_retried_and_nothing_is_lost() -> None:
    """A backend that fails twice still receives every accepted record."""
    storage = FlakyStorage(failures=2)
    logger = RLHFLogger(RLHFConfig(batch_size=10, batch_flush_interval_s=0.01), storage=storage)
    for n in range(25):
        logger.log_interaction(f"p{n}", "r")
    assert logger.flush(10) == 0
    assert storage.feedback_stats().total_interactions == 25
    logger.close()


class DeadStorage(MemoryStorage):
    """A backend that always fails."""

    def write(self, batch: RecordBatch) -> None:
        raise OSError("gone")


def test_flush_and_close_report_what_remains_and_never_hang() -> None:
    """With a dead backend, flush(timeout) and close(timeout) return the undelivered count."""
    logger = RLHFLogger(RLHFConfig(batch_size=100, enable_session_tracking=False), storage=DeadStorage())
    for n in range(7):
        logger.log_interaction(f"p{n}", "r")
    started = time.monotonic()
    assert logger.flush(0.3) == 7
    assert logger.close(0.3) == 7
    assert time.monotonic() - started < 10


def test_interpreter_exit_flushes_pending_records(tmp_path: Path) -> None:
    """Records still queued when a script ends are stored by the exit hook (in several SQLite statements)."""
    db = tmp_path / "exit.db"
    script = f"""
from rlhfkit import create_rlhf_logger, StorageBackend
logger = create_rlhf_logger(backend=StorageBackend.SQLITE, backend_config={{"sqlite": {{"path": {str(db)!r}}}}},
                            batch_size=100000, batch_flush_interval_s=3600)
for n in range(2000):
    logger.log_interaction(f"prompt {{n}}", "response")
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    with create_rlhf_logger(
        backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": str(db)}}
    ) as lg:
        assert lg.get_feedback_stats().total_interactions == 2000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_logs_its_own_and_parent_keeps_its_records(tmp_path: Path) -> None:
    """After fork the child delivers only its records and the parent delivers the ones queued before."""
    db = tmp_path / "fork.db"
    logger = create_rlhf_logger(
        backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": str(db)}},
        batch_size=100000, batch_flush_interval_s=3600, enable_session_tracking=False,
    )  # fmt: skip
    logger.initialize()
    for n in range(50):
        logger.log_interaction(f"parent {n}", "r")
    pid = os.fork()
    if pid == 0:  # the child
        try:
            for n in range(30):
                logger.log_interaction(f"child {n}", "r")
            os._exit(0 if logger.close(30) == 0 else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert logger.close(30) == 0
    with create_rlhf_logger(
        backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": str(db)}}
    ) as reader:
        prompts = [i.prompt for i in reader.query_interactions()]
    assert len(prompts) == 80 and len(set(prompts)) == 80


def test_debug_logs_through_the_rlhfkit_logger(caplog: pytest.LogCaptureFixture) -> None:
    """debug=True makes the 'rlhfkit' logger emit debug records."""
    with (
        caplog.at_level(logging.DEBUG, logger="rlhfkit"),
        create_rlhf_logger(backend=StorageBackend.MEMORY, debug=True) as logger,
    ):
        logger.log_interaction("p", "r")
    assert any(r.name.startswith("rlhfkit") and r.levelno == logging.DEBUG for r in caplog.records)


def test_custom_backend_requires_an_implementation() -> None:
    """StorageBackend.CUSTOM without an implementation raises the spec's error."""
    with pytest.raises(ConfigurationError, match="Custom storage backend implementation required"):
        create_rlhf_logger(backend=StorageBackend.CUSTOM)


def test_custom_backend_receives_the_records() -> None:
    """A user's class implementing the Protocol is used as the backend."""
    custom = MemoryStorage()
    with create_rlhf_logger(
        backend=StorageBackend.CUSTOM, backend_config={"custom": {"implementation": custom}}
    ) as lg:
        lg.log_interaction("p", "r")
    assert custom.feedback_stats().total_interactions == 1


def test_invalid_config_names_the_setting() -> None:
    """A bad setting raises ConfigurationError naming it."""
    with pytest.raises(ConfigurationError, match="batch_size"):
        create_rlhf_logger(batch_size=0)


def test_spec_millisecond_settings_are_converted() -> None:
    """batch_flush_interval and session_timeout in milliseconds (the spec's unit) become seconds."""
    config = RLHFConfig.build(batch_flush_interval=10_000, session_timeout=3_600_000)
    assert config.batch_flush_interval_s == 10 and config.session_timeout_s == 3600


def test_settings_fall_back_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """RLHFKIT_<NAME> environment variables fill settings not given as arguments."""
    monkeypatch.setenv("RLHFKIT_BATCH_SIZE", "123")
    assert RLHFConfig.build().batch_size == 123
    assert RLHFConfig.build(batch_size=7).batch_size == 7


def test_enable_compression_gzips_local_files(tmp_path: Path) -> None:
    """enable_compression makes the LOCAL backend write gzip files that read back."""
    settings = backend_settings("local", tmp_path)
    with create_rlhf_logger(**settings, enable_compression=True) as logger:
        logger.log_interaction("compressed prompt", "r")
    assert list((tmp_path / "data").rglob("*.gz"))
    with create_rlhf_logger(**settings, enable_compression=True) as logger:
        assert [i.prompt for i in logger.query_interactions()] == ["compressed prompt"]


# --------------------------------------------------------------------------- sessions


def test_sessions_group_interactions_and_feedback(logger: RLHFLogger) -> None:
    """start_session / end_session group records; the stored session lists them."""
    session_id = logger.start_session("user-1", {"channel": "web"})
    iid = logger.log_interaction("p", "r")
    fid = logger.log_binary_feedback(iid, True)
    current = logger.get_current_session()
    assert current is not None and current.id == session_id and current.interaction_ids == [iid]
    ended = logger.end_session()
    assert ended is not None and ended.end_time is not None and ended.feedback_ids == [fid]
    assert logger.get_current_session() is None
    stored = logger.get_session(session_id)
    assert stored is not None and stored.user_id == "user-1" and stored.interaction_ids == [iid]
    assert stored.feedback_ids == [fid] and stored.metadata == {"channel": "web"}
    interaction = logger.get_interaction(iid)
    assert interaction is not None and interaction.session_id == session_id


def test_session_tracking_starts_a_session_automatically() -> None:
    """With session tracking on, the first record opens a session."""
    with create_rlhf_logger(backend=StorageBackend.MEMORY) as logger:
        iid = logger.log_interaction("p", "r")
        session = logger.get_current_session()
        assert session is not None and session.interaction_ids == [iid]


def test_idle_session_ends_and_a_new_one_starts() -> None:
    """After session_timeout_s of idleness the next record starts a new session."""
    with create_rlhf_logger(backend=StorageBackend.MEMORY, session_timeout_s=0.1) as logger:
        first = logger.get_interaction(logger.log_interaction("p1", "r"))
        time.sleep(0.25)
        second = logger.get_interaction(logger.log_interaction("p2", "r"))
        assert first is not None and second is not None
        assert first.session_id and second.session_id and first.session_id != second.session_id
        old = logger.get_session(first.session_id)
        assert old is not None and old.end_time is not None


def test_session_tracking_off_leaves_session_empty() -> None:
    """enable_session_tracking=False logs without a session unless one is started."""
    with create_rlhf_logger(backend=StorageBackend.MEMORY, enable_session_tracking=False) as logger:
        iid = logger.log_interaction("p", "r")
        assert logger.get_current_session() is None
        interaction = logger.get_interaction(iid)
        assert interaction is not None and interaction.session_id is None


# --------------------------------------------------------------------------- restart, processes, async


def test_sqlite_restart_reads_everything_back(tmp_path: Path) -> None:
    """Records logged before close are all there in a new logger on the same file."""
    settings = backend_settings("sqlite", tmp_path)
    with create_rlhf_logger(**settings) as logger:
        ids = [logger.log_interaction(f"p{n}", "r") for n in range(20)]
        for iid in ids[:5]:
            logger.log_rating(iid, 4)
    with create_rlhf_logger(**settings) as logger:
        assert [i.id for i in logger.query_interactions()] == ids
        assert logger.get_feedback_stats().total_feedback == 5


def test_local_restart_reads_rotated_gzip_files(tmp_path: Path) -> None:
    """A LOCAL backend with rotation and gzip reads every record back after a restart."""
    settings = {
        "backend": StorageBackend.LOCAL,
        "backend_config": {
            "local": {"data_dir": str(tmp_path / "d"), "compress": True, "max_file_size": 0.01}
        },
    }
    noise, ids = random.Random(1), []
    with create_rlhf_logger(**settings) as logger:
        for n in range(200):
            ids.append(logger.log_interaction(f"prompt {n} {noise.getrandbits(2048):x}", "r"))
            if n % 20 == 19:
                logger.flush()  # several writes, so the files rotate
    assert len(list((tmp_path / "d").rglob("interactions*.gz"))) > 1
    with create_rlhf_logger(**settings) as logger:
        assert [i.id for i in logger.query_interactions()] == ids


def test_two_processes_writing_one_sqlite_file_lose_nothing(tmp_path: Path) -> None:
    """Two processes logging 300 interactions each into one file store all 600."""
    db = tmp_path / "shared.db"
    script = f"""
import sys
from rlhfkit import create_rlhf_logger, StorageBackend
with create_rlhf_logger(backend=StorageBackend.SQLITE, backend_config={{"sqlite": {{"path": {str(db)!r}}}}},
                        batch_size=20, batch_flush_interval_s=0.01) as logger:
    for n in range(300):
        logger.log_interaction(f"{{sys.argv[1]}} {{n}}", "r")
"""
    procs = [subprocess.Popen([sys.executable, "-c", script, name]) for name in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with create_rlhf_logger(
        backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": str(db)}}
    ) as logger:
        prompts = {i.prompt for i in logger.query_interactions()}
    assert len(prompts) == 600


async def test_async_logger_gives_the_same_results_as_sync(tmp_path: Path) -> None:
    """The same calls through AsyncRLHFLogger and RLHFLogger give the same stats and records."""

    def script_sync(logger: RLHFLogger) -> Any:
        a = logger.log_interaction("p", "a", model="x", id="a")
        b = logger.log_interaction("p", "b", model="y", id="b")
        logger.log_rating(a, 5, id="f1")
        logger.log_comparative_feedback(a, [b], confidence=0.7, id="f2")
        return logger.get_feedback_stats(), [f.id for f in logger.query_feedback()]

    async def script_async(logger: AsyncRLHFLogger) -> Any:
        a = await logger.log_interaction("p", "a", model="x", id="a")
        b = await logger.log_interaction("p", "b", model="y", id="b")
        await logger.log_rating(a, 5, id="f1")
        await logger.log_comparative_feedback(a, [b], confidence=0.7, id="f2")
        return await logger.get_feedback_stats(), [f.id for f in await logger.query_feedback()]

    with create_rlhf_logger(**backend_settings("sqlite", tmp_path / "s")) as sync_logger:
        (tmp_path / "s").mkdir(exist_ok=True)
        sync_stats, sync_ids = script_sync(sync_logger)
    (tmp_path / "a").mkdir()
    async with AsyncRLHFLogger(**backend_settings("sqlite", tmp_path / "a")) as async_logger:
        async_stats, async_ids = await script_async(async_logger)
        session = await async_logger.get_current_session()
        assert session is not None
        with pytest.raises(ValidationError):
            await async_logger.log_rating("a", 9)
    drop = {"start_time", "end_time"}
    assert sync_stats.model_dump(exclude=drop) == async_stats.model_dump(exclude=drop)
    assert sync_ids == async_ids == ["f1", "f2"]


async def test_async_logging_from_many_tasks_loses_nothing() -> None:
    """Concurrent asyncio tasks logging through one AsyncRLHFLogger store every record."""
    async with AsyncRLHFLogger(backend=StorageBackend.MEMORY) as logger:
        await asyncio.gather(*(logger.log_interaction(f"p{n}", "r") for n in range(200)))
        stats = await logger.get_feedback_stats()
    assert stats.total_interactions == 200


def test_threads_logging_at_once_lose_nothing(tmp_path: Path) -> None:
    """Eight threads logging into one SQLite logger store every record exactly once."""
    import threading

    with create_rlhf_logger(**backend_settings("sqlite", tmp_path), batch_size=25) as logger:

        def work(t: int) -> None:
            for n in range(100):
                logger.log_interaction(f"t{t} p{n}", "r")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert logger.get_feedback_stats().total_interactions == 800


def test_query_feedback_accepts_a_filter_object(logger: RLHFLogger) -> None:
    """query_feedback takes a FeedbackFilter as the spec's queryFeedback does."""
    iid = logger.log_interaction("p", "r")
    logger.log_rating(iid, 2)
    logger.log_rating(iid, 5)
    assert [f.data.value for f in logger.query_feedback(FeedbackFilter(min_rating=4))] == [5]
    with pytest.raises(ValidationError):
        logger.query_feedback(FeedbackFilter(), min_rating=4)


def test_search_similar_without_vector_backend_says_what_to_use() -> None:
    """search_similar on a backend without vectors raises ConfigurationError naming ZeroDB."""
    with (
        create_rlhf_logger(backend=StorageBackend.MEMORY) as logger,
        pytest.raises(ConfigurationError, match="ZERODB"),
    ):
        logger.search_similar("hello")


def test_storage_backends_section_examples(tmp_path: Path) -> None:
    """The spec's "Storage Backends" configurations (memory, local, custom) work as written."""
    memory = create_rlhf_logger(
        backend=StorageBackend.MEMORY, backend_config={"memory": {"max_entries": 10000}}
    )
    local = create_rlhf_logger(
        backend=StorageBackend.LOCAL,
        backend_config={
            "local": {
                "data_dir": str(tmp_path / "rlhf-data"),
                "compress": True,
                "max_file_size": 100,
                "rotate_files": True,
            }
        },
    )
    custom = create_rlhf_logger(
        backend=StorageBackend.CUSTOM,
        backend_config={"custom": {"implementation": MemoryStorage(), "config": {"anything": 1}}},
    )
    for logger in (memory, local, custom):
        with logger:
            iid = logger.log_interaction("p", "r", model="m")
            logger.log_binary_feedback(iid, BinaryFeedback.THUMBS_UP)
            assert logger.get_feedback_stats().binary.thumbs_up == 1
    assert list((tmp_path / "rlhf-data").rglob("*.jsonl.gz"))


def test_memory_backend_evicts_oldest_and_counts() -> None:
    """MEMORY with max_entries keeps the newest interactions and counts evictions."""
    with create_rlhf_logger(
        backend=StorageBackend.MEMORY, backend_config={"memory": {"max_entries": 10}}
    ) as logger:
        ids = [logger.log_interaction(f"p{n}", "r") for n in range(15)]
        kept = [i.id for i in logger.query_interactions()]
        assert kept == ids[5:]
        assert logger.storage.evictions == 5  # type: ignore[attr-defined]


def test_backend_config_accepts_the_spec_camel_case_keys(tmp_path: Path) -> None:
    """backend_config keys written as in the spec (dataDir, maxFileSize) work like snake_case ones."""
    settings = {
        "local": {
            "dataDir": str(tmp_path / "camel"),
            "compress": False,
            "maxFileSize": 1,
            "rotateFiles": True,
        }
    }
    with create_rlhf_logger(backend=StorageBackend.LOCAL, backend_config=settings) as logger:
        logger.log_interaction("p", "r")
    assert list((tmp_path / "camel").rglob("interactions*.jsonl"))


def test_sqlite_flat_export_fast_path_matches_the_record_path(tmp_path: Path) -> None:
    """CSV and Parquet rows read straight from SQLite equal those built from the stored records."""
    import pyarrow.parquet as pq

    from rlhfkit._export import export_records
    from rlhfkit.storage.sql import SQLStorage

    settings = backend_settings("sqlite", tmp_path)
    with create_rlhf_logger(**settings) as logger:
        a = logger.log_interaction(
            "p1",
            "=a",
            model="x",
            token_usage={"prompt": 2, "completion": 3},
            context=[{"role": "system", "content": "be brief"}],
            metadata={"k": [1, "é"]},
        )
        b = logger.log_interaction("p1", "b", model="y", latency=12.5)
        logger.log_interaction("p2", "c")
        logger.log_binary_feedback(a, True, metadata={"m": 1})
        logger.log_rating(a, 4, "ok", user_id="u")
        logger.log_rating(a, 8, max_rating=10)
        logger.log_multi_dimensional_feedback(b, {"x": 4, "y": 2}, weights={"x": 1, "y": 1})
        logger.log_comparative_feedback(a, [b], reason="better", confidence=0.5)
    storage = SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
    fast = pq.read_table(io.BytesIO(export_records(storage, "parquet"))).to_pylist()  # type: ignore[arg-type]
    memory = MemoryStorage()
    memory.write(RecordBatch(interactions=list(storage.iter_interactions(InteractionFilter())),
                             feedback=list(storage.iter_feedback(FeedbackFilter()))))  # fmt: skip
    slow = pq.read_table(io.BytesIO(export_records(memory, "parquet"))).to_pylist()  # type: ignore[arg-type]
    assert len(fast) == 3 and fast == slow
    assert fast[0]["thumbs_up"] == 1 and fast[0]["average_rating"] == pytest.approx(4.0)
    assert export_records(storage, "csv") == export_records(memory, "csv")


# --------------------------------------------------------------------------- the fast path


def _fast_and_validated(calls: list[dict[str, Any]], **settings: Any) -> list[tuple[Any, Any]]:
    """Log each call as given (the fast path) and with token_usage as a read-only mapping (validated)."""
    from types import MappingProxyType

    pairs = []
    with create_rlhf_logger(backend=StorageBackend.MEMORY, **settings) as logger:
        for call in calls:
            slow = dict(call)
            slow["token_usage"] = MappingProxyType(call.get("token_usage") or {"prompt": 0, "completion": 0})
            if "token_usage" not in call:
                slow["model_params"] = {"temperature": 0.5}  # another way off the fast path
            fast_id, slow_id = logger.log_interaction(**call), logger.log_interaction(**slow)
            pairs.append((logger.get_interaction(fast_id), logger.get_interaction(slow_id)))
    return pairs


def test_fast_path_stores_what_validation_stores() -> None:
    """Plain calls (queued unvalidated) are stored exactly as the validated path stores the same call."""
    calls: list[dict[str, Any]] = [
        {"prompt": "p", "response": "r", "model": "m", "latency": 812.5, "user_id": "u",
         "token_usage": {"prompt": 12, "completion": 48, "total": 60}},
        {"prompt": "p", "response": "r", "latency": 3, "token_usage": {"prompt": 12, "completion": 48}},
        {"prompt": "p", "response": "", "token_usage": {"prompt": 0, "completion": 0}},
        {"prompt": "p", "response": "r", "token_usage": {"prompt": 0, "completion": 0, "total": 0}},
        {"prompt": "p", "response": "r", "token_usage": {"prompt": 5, "completion": 1, "total": 0}},
        {"prompt": "p", "response": "r", "metadata": {"env": "prod"}, "experiment": "b", "session_id": "s-1"},
    ]  # fmt: skip
    for settings in (
        {},
        {"default_metadata": {"app": "demo", "env": "test"}},
        {"enable_session_tracking": False},
    ):
        for fast, slow in _fast_and_validated(calls, **settings):
            assert fast is not None and slow is not None
            fast_fields, slow_fields = fast.model_dump(), slow.model_dump()
            for name in ("id", "timestamp", "model_params"):
                fast_fields.pop(name), slow_fields.pop(name)
            if (
                slow.model_params
            ):  # that call had no token_usage: its twin had one only to leave the fast path
                slow_fields["token_usage"] = None
            assert fast_fields == slow_fields
            assert fast.timestamp.tzinfo is not None and len(fast.id) == 32 and fast.id < slow.id
            assert type(fast.latency) is type(slow.latency)


def test_fast_path_refusals_name_the_field_and_store_nothing() -> None:
    """Calls the fast path does not take still reach validation, which names the field; nothing is stored."""
    storage = MemoryStorage()
    with RLHFLogger(RLHFConfig(), storage=storage) as logger:
        for kwargs, field in (
            ({"token_usage": {"prompt": 1, "completion": -2}}, "token_usage.completion"),
            ({"token_usage": {"prompt": 1, "completion": 2, "cached": "x"}}, "token_usage.cached"),
            ({"latency": float("nan")}, "latency"),
            ({"id": "x" * 201}, "id"),
        ):
            with pytest.raises(ValidationError) as info:
                logger.log_interaction("p", "r", **kwargs)
            assert info.value.field == field
        logger.flush()
        assert storage.feedback_stats().total_interactions == 0


def test_known_ids_keep_the_newest_and_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bound the logger forgets its oldest ids at once; feedback on any id still works."""
    import rlhfkit._logger as logger_module

    monkeypatch.setattr(logger_module, "_KNOWN_IDS_KEPT", 10)
    monkeypatch.setattr(logger_module, "_KNOWN_IDS_SLACK", 5)
    with create_rlhf_logger(backend=StorageBackend.MEMORY) as logger:
        ids = [logger.log_interaction(f"p{n}", "r") for n in range(40)]
        assert len(logger._known_ids) <= 15 and ids[-1] in logger._known_ids
        assert ids[0] not in logger._known_ids
        logger.flush()  # the real bound (200,000) exceeds the queue (100,000): a forgotten id is stored
        logger.log_rating(ids[0], 4)  # forgotten here, found in storage
        logger.log_rating(ids[-1], 5)
        assert logger.get_feedback_stats().total_feedback == 2
