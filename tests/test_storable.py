"""Records no backend could store are refused when logged, and one a backend refuses later never blocks the rest.

Before these checks, a NUL character, a NaN in metadata or a 4 KB user id was
accepted by the logger and then failed every background write of its batch,
again and again, taking the records queued with it down too.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rlhfkit import Interaction, InteractionFilter, RecordBatch, RLHFConfig, RLHFLogger, create_rlhf_logger
from rlhfkit._batching import BatchProcessor
from rlhfkit._limits import check_record
from rlhfkit.errors import ConfigurationError, ValidationError
from rlhfkit.storage.memory import MemoryStorage
from rlhfkit.storage.sql import SQLStorage
from tests.test_logger import backend_settings

_DEEP: Any = []
for _ in range(80):
    _DEEP = [_DEEP]

LONG = secrets.token_hex(1500)  # 3,000 random characters: no compression brings them under the index limit

POISON_INTERACTIONS = [
    ({"user_id": LONG}, "user_id"),
    ({"model": LONG}, "model"),
    ({"session_id": LONG}, "session_id"),
    ({"prompt": "a\x00b"}, "prompt"),
    ({"response": "ok\x00"}, "response"),
    ({"model": "gpt\x00"}, "model"),
    ({"latency": float("inf")}, "latency"),
    ({"metadata": {"score": float("nan")}}, "metadata.score"),
    ({"metadata": {"deep": _DEEP}}, "metadata"),
    ({"metadata": {"bad\x00key": 1}}, "metadata.<key>"),
    ({"metadata": {"text": "a\ud800"}}, "metadata.text"),
    ({"metadata": {"thing": object()}}, "metadata.thing"),
    ({"context": [{"role": "user", "content": "hi\x00"}]}, "context[0].content"),
    ({"model_params": {"temperature": float("nan")}}, "model_params.temperature"),
    ({"model": "m" * 301}, "model"),
    ({"latency": 10**400}, "latency"),
    ({"metadata": {"scores": (1.0, float("nan"))}}, "metadata.scores[1]"),
    ({"metadata": {"blob": b"a\x00b"}}, "metadata.blob"),
    ({"model_params": "abc"}, "model_params"),
    ({"context": 5}, "context"),
]


@pytest.fixture(params=["memory", "local", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """create_rlhf_logger settings for every backend kept in this process or this machine."""
    if request.param == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        return {"backend": "postgres", "backend_config": {"postgres": {"url": dsn, "project": secrets.token_hex(6)}}}
    return backend_settings(request.param, tmp_path)


@pytest.mark.parametrize(("fields", "field"), POISON_INTERACTIONS)
def test_unstorable_interaction_is_refused_and_the_next_one_is_stored(
    backend: dict[str, Any], fields: dict[str, Any], field: str
) -> None:
    """The call raises ValidationError naming the field; the backend gets only the good record, flush leaves 0."""
    fields = dict(fields)
    prompt = fields.pop("prompt", "question")
    with create_rlhf_logger(**backend, batch_flush_interval_s=0.05, enable_session_tracking=False) as logger:
        with pytest.raises(ValidationError) as refused:
            logger.log_interaction(prompt, fields.pop("response", "answer"), **fields)
        assert refused.value.field == field
        good = logger.log_interaction("the next question", "its answer", model="m", metadata={"n": 1.5})
        assert logger.flush(10) == 0
        stored = logger.query_interactions()
        assert [i.id for i in stored] == [good]
        assert logger.refused_records == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lg, i: lg.log_rating(i, 4, metadata={"x": float("nan")}), "metadata.x"),
        (lambda lg, i: lg.log_text_feedback(i, "fine\x00"), "data.comment"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, {LONG: 3}), "data.dimensions"),
        (lambda lg, i: lg.log_binary_feedback(i, True, source="ui\x00"), "source"),
        (lambda lg, i: lg.log_rating(i, 4, metadata={"k": (float("inf"),)}), "metadata.k[0]"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, None), "dimensions"),
        (lambda lg, i: lg.log_multi_dimensional_feedback(i, {"a": 3}, weights=[1]), "weights"),
        (lambda lg, i: lg.log_comparative_feedback(i, None), "alternative_ids"),
    ],
)
def test_unstorable_feedback_is_refused_and_stores_nothing(backend: dict[str, Any], call: Any, field: str) -> None:
    """Feedback too is checked when logged: ValidationError naming the field, no feedback stored."""
    with create_rlhf_logger(**backend, batch_flush_interval_s=0.05) as logger:
        iid = logger.log_interaction("p", "r")
        with pytest.raises(ValidationError) as refused:
            call(logger, iid)
        assert refused.value.field == field
        logger.log_rating(iid, 5)
        assert logger.flush(10) == 0
        assert logger.get_feedback_stats().total_feedback == 1


@pytest.mark.parametrize(
    ("user_id", "metadata", "field"),
    [("u1", {"x": float("inf")}, "metadata.x"), ("u1", [1], "metadata"), (5, None, "user_id")],
)
def test_session_is_checked_when_it_starts(user_id: Any, metadata: Any, field: str) -> None:
    """start_session refuses what no backend could store with a ValidationError; no session is started."""
    with create_rlhf_logger(backend="memory") as logger:
        with pytest.raises(ValidationError) as refused:
            logger.start_session(user_id, metadata=metadata)
        assert refused.value.field == field
        assert logger.get_current_session() is None


def test_log_record_validates_records_built_or_changed_without_validation() -> None:
    """A record built with model_construct or changed after validation is refused, naming the field."""
    changed = Interaction(prompt="p")
    changed.prompt = 5  # type: ignore[assignment]
    with create_rlhf_logger(backend="memory") as logger:
        for record, field in ((changed, "prompt"), (Interaction.model_construct(), "prompt")):
            with pytest.raises(ValidationError) as refused:
                logger.log_record(record)
            assert refused.value.field == field
        assert logger.flush(5) == 0 and logger.query_interactions() == []


def test_literal_backslash_u0000_text_is_stored_on_postgres(postgres_dsn: str) -> None:
    """Text holding a backslash then u0000 (not a NUL) is stored, in columns and in JSON alike."""
    text = "in JSON, \\u0000 is how NUL is written"
    settings = {"postgres": {"url": postgres_dsn, "project": secrets.token_hex(6)}}
    with create_rlhf_logger(backend="postgres", backend_config=settings, batch_flush_interval_s=0.05) as logger:
        iid = logger.log_interaction(text, text, metadata={"note": text})
        logger.log_text_feedback(iid, text, metadata={"note": text})
        assert logger.flush(10) == 0 and logger.refused_records == 0
        stored = logger.get_interaction(iid)
        assert stored is not None and (stored.prompt, stored.metadata["note"]) == (text, text)
        assert logger.get_feedback_stats().total_feedback == 1


def test_comparison_of_models_with_the_longest_names_is_stored_on_postgres(postgres_dsn: str) -> None:
    """Two models at the 300-byte limit fit the comparison pairs' index entry beside both ids."""
    settings = {"postgres": {"url": postgres_dsn, "project": secrets.token_hex(6)}}
    with create_rlhf_logger(backend="postgres", backend_config=settings, batch_flush_interval_s=0.05) as logger:
        first = logger.log_interaction("p", "a", model=secrets.token_hex(150))
        second = logger.log_interaction("p", "b", model=secrets.token_hex(150))
        logger.log_comparative_feedback(first, [second])
        assert logger.flush(10) == 0 and logger.refused_records == 0
        assert logger.get_feedback_stats().comparative.count == 1


def test_log_record_checks_records_built_elsewhere() -> None:
    """log_record (the instrumentation's way in) refuses an unstorable Interaction too."""
    with create_rlhf_logger(backend="memory") as logger:
        with pytest.raises(ValidationError) as refused:
            logger.log_record(Interaction(prompt="p", tool_calls=[{"args": ("x\x00",)}]))
        assert refused.value.field == "tool_calls[0].args[0]"


def test_an_export_failing_on_the_data_is_isolated_like_a_refusal() -> None:
    """A TypeError from one record (not an outage) sets that record aside; the queue does not jam."""
    exported: list[Any] = []

    def export(items: Any) -> None:
        lengths = [len(item) for item in items]  # len(None) raises TypeError
        exported.extend(lengths)

    processor: BatchProcessor[Any] = BatchProcessor(export, batch_size=10)
    for item in ["a", "bb", None, "dddd"]:
        processor.submit(item)
    assert processor.flush(5) == 0 and processor.refused == 1
    assert sorted(exported) == [1, 2, 4]
    processor.shutdown(1)


def test_storable_text_that_only_looks_suspect_is_accepted() -> None:
    """A literal backslash-u0000 and a real U+FFFD are ordinary text: the screen's second look lets them pass."""
    check_record(Interaction(prompt="escape \\u0000 in code", response="a replacement character: \ufffd"))


class RefusingStorage(MemoryStorage):
    """A backend with a rule of its own: it refuses interactions whose prompt says so, as a whole batch."""

    def write(self, batch: RecordBatch) -> None:
        for interaction in batch.interactions:
            if interaction.prompt.startswith("refuse"):
                raise ValidationError("prompt", "this backend refuses it")
        super().write(batch)


def test_a_record_the_backend_refuses_is_isolated_and_the_rest_are_stored(caplog: pytest.LogCaptureFixture) -> None:
    """The batch is split until the refused record is alone: it is counted and logged whole; the others are stored."""
    storage = RefusingStorage()
    logger = RLHFLogger(RLHFConfig(batch_size=1000, enable_session_tracking=False), storage=storage)
    ids = [logger.log_interaction(f"question {n}", "r") for n in range(40)]
    refused = logger.log_interaction("refuse me", "r")
    ids += [logger.log_interaction(f"question {n}", "r") for n in range(40, 80)]
    with caplog.at_level(logging.ERROR, logger="rlhfkit"):
        assert logger.flush(10) == 0
    assert logger.refused_records == 1
    assert sorted(i.id for i in storage.iter_interactions(InteractionFilter())) == sorted(ids)
    assert refused in caplog.text and "refuse me" in caplog.text
    logger.close()


def test_batch_processor_isolates_refused_items_and_keeps_retrying_outages() -> None:
    """A refusal reaches on_refused once; an outage (any other error) is retried until the items are exported."""
    exported: list[int] = []
    refused: list[int] = []
    outages = [2]

    def export(items: Any) -> None:
        if outages[0]:
            outages[0] -= 1
            raise OSError("down")
        if 13 in items or 57 in items:
            raise ValidationError("item", "refused")
        exported.extend(items)

    processor: BatchProcessor[int] = BatchProcessor(
        export, batch_size=100, on_refused=lambda item, exc: refused.append(item)
    )
    for n in range(100):
        processor.submit(n)
    assert processor.flush(10) == 0
    assert sorted(refused) == [13, 57] and processor.refused == 2
    assert sorted(exported) == [n for n in range(100) if n not in (13, 57)]
    assert processor.failed_exports == 2
    processor.shutdown(1)


def test_postgres_refusal_is_a_validation_error(postgres_dsn: str) -> None:
    """Written straight to SQLStorage, a record PostgreSQL refuses raises ValidationError, not a retryable error."""
    storage = SQLStorage(postgres_dsn, project=secrets.token_hex(6))
    storage.initialize()
    try:
        batch = RecordBatch(interactions=[Interaction(prompt="p", user_id=LONG)])
        with pytest.raises(ValidationError) as refused:
            storage.write(batch)
        assert "index row size" in refused.value.message
        assert list(storage.iter_interactions(InteractionFilter())) == []
    finally:
        storage.close()


def test_default_metadata_no_backend_could_store_is_refused_by_the_config() -> None:
    """default_metadata joins every record, so a NaN in it is a ConfigurationError up front, not a refusal per call."""
    with pytest.raises(ConfigurationError, match="default_metadata"):
        create_rlhf_logger(backend="memory", default_metadata={"x": float("nan")})


def test_a_timestamp_at_the_epoch_is_kept() -> None:
    """timestamp=0 (1970-01-01) is a time, not a missing value: it is stored as given, for feedback too."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with create_rlhf_logger(backend="memory") as logger:
        iid = logger.log_interaction("p", "r", timestamp=0)
        fid = logger.log_rating(iid, 3, timestamp=0)
        interaction, feedback = logger.get_interaction(iid), logger.get_feedback(fid)
        assert interaction is not None and interaction.timestamp == epoch
        assert feedback is not None and feedback.timestamp == epoch


def test_nested_metadata_changed_after_the_call_is_stored_as_it_was(tmp_path: Path) -> None:
    """The record is written later, on the worker: the caller changing nested metadata afterwards changes nothing."""
    settings = backend_settings("sqlite", tmp_path)
    with create_rlhf_logger(**settings, batch_flush_interval_s=60) as logger:
        tags = {"scores": [1.0, 2.0]}
        iid = logger.log_interaction("p", "r", metadata={"tags": tags})
        fid = logger.log_rating(iid, 4, metadata={"tags": tags})
        tags["scores"].append(float("nan"))  # would be refused, and lost, if it reached the backend
        assert logger.flush(10) == 0 and logger.refused_records == 0
        interaction, feedback = logger.get_interaction(iid), logger.get_feedback(fid)
        assert interaction is not None and interaction.metadata == {"tags": {"scores": [1.0, 2.0]}}
        assert feedback is not None and feedback.metadata == {"tags": {"scores": [1.0, 2.0]}}
