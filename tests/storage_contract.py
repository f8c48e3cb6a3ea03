"""The storage contract: what every backend must do, as a reusable test class.

A backend's tests subclass :class:`StorageContract` and provide one fixture,
``storage_factory``: a callable that opens a storage over the same data every
time it is called (a second call after ``close()`` is a restart). Set
``persistent = False`` on the subclass when the data does not survive a
restart (memory)::

    class TestMyBackend(StorageContract):
        @pytest.fixture
        def storage_factory(self, tmp_path):
            return lambda: MyStorage(tmp_path)

The data set (:func:`dataset`) is small and hand-made; the expected numbers
in the tests are worked out by hand from it, not computed by rlhfkit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rlhfkit._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackType,
    Interaction,
    InteractionFilter,
    RecordBatch,
    TokenUsage,
)
from rlhfkit.storage.base import Storage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    """T0 plus ``hours``."""
    return T0 + timedelta(hours=hours)


def _interaction(id: str, hours: float, **fields: Any) -> Interaction:
    fields.setdefault("response", "")
    return Interaction(id=id, timestamp=at(hours), **fields)


def _fb(id: str, interaction_id: str, hours: float, data: dict[str, Any], **fields: Any) -> Feedback:
    return Feedback(id=id, interaction_id=interaction_id, type=data["type"], data=data, timestamp=at(hours), **fields)


def dataset() -> RecordBatch:
    """Five interactions of three models (one without) and twelve feedback of all five types."""
    interactions = [
        _interaction(
            "i01", 0, prompt="What is the capital of France?", response="Paris.", model="gpt-4", provider="openai",
            user_id="u1", session_id="s1", latency=100.0,
            token_usage={"prompt": 10, "completion": 15, "total": 25, "cached": 2},
            context=[{"role": "system", "content": "Be brief."}], metadata={"app": "demo", "n": [1, 2]},
            model_params={"temperature": 0.2}, metrics={"time_to_first_token_ms": 12.5, "retry_count": 1},
            environment={"hostname": "h1", "custom": {"k": "v"}}, tools=[{"name": "search"}],
            finish_reason="stop", response_id="resp-1",
        ),
        _interaction(
            "i02", 1, prompt="Tell me a joke", response="Why did the chicken CROSS the road?", model="gpt-4",
            provider="openai", user_id="u2", session_id="s1", latency=300.0,
        ),
        _interaction(
            "i03", 2, prompt="Summarise 100% of this_text", response="", model="claude", provider="anthropic",
            user_id="u1", latency=200.0, error={"type": "RateLimitError", "message": "slow down", "status_code": 429},
        ),
        _interaction("i04", 25, prompt="hello", response="hi"),
        _interaction("i05", 3, prompt="Translate bonjour", response="hello", model="claude", latency=400.0),
    ]  # fmt: skip
    up = {"type": "binary", "value": "thumbs_up"}
    feedback = [
        _fb("f01", "i01", 0.5, up, user_id="u1", session_id="s1", source="web"),
        _fb("f02", "i02", 1.5, {"type": "binary", "value": "thumbs_down"}, user_id="u2"),
        _fb("f03", "i01", 0.67, {"type": "rating", "value": 4, "comment": "good"}),
        _fb("f04", "i02", 1.67, {"type": "rating", "value": 2}, source="api"),
        _fb("f05", "i03", 2.5, {"type": "rating", "value": 7, "max_rating": 10}),
        _fb("f06", "i02", 1.83, {"type": "text", "comment": "too long", "sentiment": "negative"}),
        _fb("f07", "i01", 0.83, {"type": "text", "comment": "great", "sentiment": "positive"}, session_id="s1"),
        _fb("f08", "i01", 0.92, {"type": "multi_dimensional", "dimensions": {"accuracy": 5, "clarity": 3},
                                 "weights": {"accuracy": 3, "clarity": 1}, "overall_comment": "ok"},
            metadata={"reviewer": {"team": "a"}}),
        _fb("f09", "i03", 2.67, {"type": "multi_dimensional", "dimensions": {"accuracy": 2, "clarity": 4}}),
        _fb("f10", "i01", 3.0, {"type": "comparative", "preferred_id": "i01", "alternative_ids": ["i03"],
                                "reason": "shorter", "confidence": 0.9}),
        _fb("f11", "i03", 3.17, {"type": "comparative", "preferred_id": "i03", "alternative_ids": ["i02", "i01"]}),
        _fb("f12", "i04", 26, up),
    ]  # fmt: skip
    sessions = [FeedbackSession(id="s1", user_id="u1", start_time=T0, metadata={"channel": "chat"})]
    return RecordBatch(interactions=interactions, feedback=feedback, sessions=sessions)


def ids(records: Iterator[Any] | list[Any]) -> list[str]:
    """The ids of records, in the order given."""
    return [r.id for r in records]


class StorageContract:
    """The behaviour every :class:`~rlhfkit.storage.base.Storage` must have."""

    persistent = True
    """Whether records survive closing the storage and opening it again."""

    @pytest.fixture
    def storage_factory(self) -> Callable[[], Storage]:
        """Override: a callable opening a storage over the same data at each call."""
        raise NotImplementedError

    @pytest.fixture
    def storage(self, storage_factory: Callable[[], Storage]) -> Iterator[Storage]:
        """A fresh, initialised, empty storage."""
        storage = storage_factory()
        storage.initialize()
        yield storage
        storage.close()

    @pytest.fixture
    def filled(self, storage: Storage) -> Storage:
        """The storage with :func:`dataset` written in it, in several batches (so that files may rotate)."""
        data = dataset()
        for interaction in data.interactions:
            storage.write(RecordBatch(interactions=[interaction]))
        for start in range(0, len(data.feedback), 4):
            storage.write(RecordBatch(feedback=data.feedback[start : start + 4]))
        storage.write(RecordBatch(sessions=data.sessions))
        return storage

    # ------------------------------------------------------------------ writing and reading back

    def test_implements_the_protocol(self, storage: Storage) -> None:
        """The backend is a Storage and initialize() may be called twice."""
        assert isinstance(storage, Storage)
        storage.initialize()

    def test_records_read_back_equal_to_what_was_written(self, filled: Storage) -> None:
        """Every field of every interaction and feedback comes back unchanged (feedback_ids aside)."""
        data = dataset()
        for interaction in data.interactions:
            stored = filled.get_interaction(interaction.id)
            assert stored is not None
            assert stored.model_dump(exclude={"feedback_ids"}) == interaction.model_dump(exclude={"feedback_ids"})
        for fb in data.feedback:
            assert filled.get_feedback(fb.id) == fb

    def test_unknown_ids_read_as_none(self, filled: Storage) -> None:
        """get_* of an id never written returns None."""
        assert filled.get_interaction("nope") is None
        assert filled.get_feedback("nope") is None
        assert filled.get_session("nope") is None

    def test_feedback_ids_include_comparisons_naming_the_interaction(self, filled: Storage) -> None:
        """feedback_ids lists, in id order, the feedback about the interaction, comparisons included."""
        assert filled.get_interaction("i01").feedback_ids == ["f01", "f03", "f07", "f08", "f10", "f11"]
        assert filled.get_interaction("i02").feedback_ids == ["f02", "f04", "f06", "f11"]
        assert filled.get_interaction("i03").feedback_ids == ["f05", "f09", "f10", "f11"]
        assert filled.get_interaction("i05").feedback_ids == []
        listed = {i.id: i.feedback_ids for i in filled.iter_interactions(InteractionFilter())}
        assert listed["i01"] == ["f01", "f03", "f07", "f08", "f10", "f11"]
        assert listed["i04"] == ["f12"]

    def test_writing_a_batch_twice_stores_it_once_and_first_copy_wins(self, filled: Storage) -> None:
        """Writes are idempotent on ids: a repeated id is ignored, even with other content."""
        filled.write(dataset())
        changed = dataset()
        changed.interactions[0].response = "Lyon."
        changed.feedback[0] = changed.feedback[0].model_copy(update={"source": "other"})
        changed.feedback[9] = changed.feedback[9].model_copy(
            update={"data": changed.feedback[9].data.model_copy(update={"alternative_ids": ["i05"]})}
        )
        filled.write(changed)
        assert filled.get_interaction("i05").feedback_ids == []
        assert filled.get_feedback("f10").data.alternative_ids == ["i03"]
        assert len(list(filled.iter_interactions(InteractionFilter()))) == 5
        assert len(list(filled.iter_feedback(FeedbackFilter()))) == 12
        assert filled.get_interaction("i01").response == "Paris."
        assert filled.get_feedback("f01").source == "web"
        assert filled.feedback_stats().total_feedback == 12

    def test_missing_interactions_names_only_unknown_ids(self, filled: Storage) -> None:
        """missing_interactions returns the ids that are not stored."""
        assert filled.missing_interactions(["i01", "x1", "i05", "x2"]) == {"x1", "x2"}
        assert filled.missing_interactions([]) == set()

    def test_sessions_list_their_records_and_a_later_write_replaces_them(self, filled: Storage) -> None:
        """get_session fills interaction and feedback ids; a session written again is replaced."""
        session = filled.get_session("s1")
        assert session is not None
        assert session.user_id == "u1" and session.metadata == {"channel": "chat"}
        assert session.interaction_ids == ["i01", "i02"]
        assert session.feedback_ids == ["f01", "f07"]
        ended = FeedbackSession(id="s1", user_id="u1", start_time=T0, end_time=at(4), metadata={"channel": "web"})
        filled.write(RecordBatch(sessions=[ended]))
        session = filled.get_session("s1")
        assert session.end_time == at(4) and session.metadata == {"channel": "web"}
        assert session.interaction_ids == ["i01", "i02"]

    def test_records_come_in_id_order_whatever_the_write_order(self, storage: Storage) -> None:
        """Reads are in id order even when records were written in reverse, across batches."""
        data = dataset()
        for interaction in reversed(data.interactions):
            storage.write(RecordBatch(interactions=[interaction]))
        storage.write(RecordBatch(feedback=list(reversed(data.feedback))))
        assert ids(storage.iter_interactions(InteractionFilter())) == ["i01", "i02", "i03", "i04", "i05"]
        assert ids(storage.iter_feedback(FeedbackFilter())) == [f"f{n:02d}" for n in range(1, 13)]

    def test_long_strings_are_stored_whole(self, storage: Storage) -> None:
        """Long names, ids and dimensions (up to the indexed limits: 300 bytes for a model name) are stored whole."""
        long = "x" * 1000
        interaction = Interaction(
            id="L" * 200, prompt=long, model="m" * 300, provider=long, user_id=long, session_id=long
        )
        fb = Feedback(
            id="F" * 200, interaction_id=interaction.id, type="multi_dimensional", source=long, user_id=long,
            data={"type": "multi_dimensional", "dimensions": {long: 3}},
        )  # fmt: skip
        interaction.token_usage = TokenUsage(prompt=2**40, completion=2**70)
        session = FeedbackSession(id="S" * 500, user_id=long)
        storage.write(RecordBatch(interactions=[interaction], feedback=[fb], sessions=[session]))
        assert storage.get_interaction(interaction.id).model_dump(exclude={"feedback_ids"}) == interaction.model_dump(
            exclude={"feedback_ids"}
        )
        assert storage.get_feedback(fb.id) == fb
        assert storage.get_session(session.id).user_id == long
        assert storage.feedback_stats().multi_dimensional.dimension_averages == {long: 3.0}

    def test_id_order_is_byte_order(self, storage: Storage) -> None:
        """Ids sort by their bytes (upper case before lower case), whatever the database's collation."""
        storage.write(RecordBatch(interactions=[Interaction(id=x, prompt="p") for x in ("b1", "a1", "B1", "A1")]))
        assert ids(storage.iter_interactions(InteractionFilter())) == ["A1", "B1", "a1", "b1"]
        assert ids(storage.iter_interactions(InteractionFilter(after_id="B1"))) == ["a1", "b1"]

    # ------------------------------------------------------------------ interaction filters

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({}, ["i01", "i02", "i03", "i04", "i05"]),
            ({"start_time": at(1), "end_time": at(3)}, ["i02", "i03"]),
            ({"ids": ["i03", "i01", "zz"]}, ["i01", "i03"]),
            ({"user_id": "u1"}, ["i01", "i03"]),
            ({"session_id": "s1"}, ["i01", "i02"]),
            ({"models": ["claude"]}, ["i03", "i05"]),
            ({"models": ["claude", "gpt-4"]}, ["i01", "i02", "i03", "i05"]),
            ({"provider": "anthropic"}, ["i03"]),
            ({"has_feedback": True}, ["i01", "i02", "i03", "i04"]),
            ({"has_feedback": False}, ["i05"]),
            ({"feedback_types": [FeedbackType.MULTI_DIMENSIONAL]}, ["i01", "i03"]),
            ({"feedback_types": [FeedbackType.COMPARATIVE]}, ["i01", "i02", "i03"]),
            ({"feedback_types": [FeedbackType.TEXT, FeedbackType.BINARY]}, ["i01", "i02", "i04"]),
            ({"min_rating": 4}, ["i01", "i03"]),
            ({"max_rating": 2}, ["i02"]),
            ({"min_rating": 5}, ["i03"]),
            ({"errors_only": True}, ["i03"]),
            ({"search": "cross"}, ["i02"]),
            ({"search": "PARIS"}, ["i01"]),
            ({"search": "100%"}, ["i03"]),
            ({"search": "%"}, ["i03"]),
            ({"search": "a_e"}, []),
            ({"search": "this_text"}, ["i03"]),
            ({"models": ["gpt-4"], "has_feedback": True, "user_id": "u2"}, ["i02"]),
        ],
    )
    def test_interaction_filter_fields(self, filled: Storage, fields: dict[str, Any], expected: list[str]) -> None:
        """Each InteractionFilter field selects exactly the interactions it describes."""
        assert ids(filled.iter_interactions(InteractionFilter(**fields))) == expected

    # ------------------------------------------------------------------ feedback filters

    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"start_time": at(1), "end_time": at(2)}, ["f02", "f04", "f06"]),
            ({"ids": ["f12", "f01"]}, ["f01", "f12"]),
            ({"interaction_ids": ["i02"]}, ["f02", "f04", "f06", "f11"]),
            ({"types": [FeedbackType.RATING]}, ["f03", "f04", "f05"]),
            ({"types": [FeedbackType.RATING, FeedbackType.TEXT], "max_rating": 2}, ["f04", "f06", "f07"]),
            ({"max_rating": 2}, ["f04"]),
            ({"min_rating": 4}, ["f03", "f05"]),
            ({"sentiment": "negative"}, ["f06"]),
            ({"source": "web"}, ["f01"]),
            ({"user_id": "u2"}, ["f02"]),
            ({"session_id": "s1"}, ["f01", "f07"]),
            ({"model": "claude"}, ["f05", "f09", "f11"]),
            ({"model": "gpt-4"}, ["f01", "f02", "f03", "f04", "f06", "f07", "f08", "f10"]),
            ({"model": "gpt-4", "types": [FeedbackType.BINARY]}, ["f01", "f02"]),
        ],
    )
    def test_feedback_filter_fields(self, filled: Storage, fields: dict[str, Any], expected: list[str]) -> None:
        """Each FeedbackFilter field selects exactly the feedback it describes."""
        assert ids(filled.iter_feedback(FeedbackFilter(**fields))) == expected

    # ------------------------------------------------------------------ paging

    @pytest.mark.parametrize(
        ("paging", "expected"),
        [
            ({"limit": 3}, ["f01", "f02", "f03"]),
            ({"offset": 10}, ["f11", "f12"]),
            ({"after_id": "f10"}, ["f11", "f12"]),
            ({"after_id": "f03", "offset": 1, "limit": 2}, ["f05", "f06"]),
            ({"after_id": "f12"}, []),
            ({"types": [FeedbackType.BINARY], "after_id": "f01", "limit": 1}, ["f02"]),
        ],
    )
    def test_feedback_paging(self, filled: Storage, paging: dict[str, Any], expected: list[str]) -> None:
        """limit, offset and after_id page through feedback in id order (after_id first)."""
        assert ids(filled.iter_feedback(FeedbackFilter(**paging))) == expected

    def test_cursor_walk_visits_every_interaction_once(self, filled: Storage) -> None:
        """Following after_id page by page returns every interaction exactly once, in order."""
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = ids(filled.iter_interactions(InteractionFilter(limit=2, after_id=cursor)))
            if not page:
                break
            seen += page
            cursor = page[-1]
        assert seen == ["i01", "i02", "i03", "i04", "i05"]

    def test_paging_across_many_records(self, storage: Storage) -> None:
        """Offsets and limits larger than any internal read chunk still cut at the right records."""
        many = [Interaction(id=f"m{n:05d}", prompt=f"p{n}", timestamp=T0) for n in range(2300)]
        storage.write(RecordBatch(interactions=many))
        got = ids(storage.iter_interactions(InteractionFilter(offset=700, limit=1500)))
        assert got == [f"m{n:05d}" for n in range(700, 2200)]
        assert len(ids(storage.iter_interactions(InteractionFilter()))) == 2300
        assert ids(storage.iter_interactions(InteractionFilter(after_id="m02298"))) == ["m02299"]

    def test_iteration_is_lazy(self, filled: Storage) -> None:
        """iter_* return iterators, not lists."""
        assert isinstance(filled.iter_interactions(InteractionFilter()), Iterator)
        assert isinstance(filled.iter_feedback(FeedbackFilter()), Iterator)
        assert not isinstance(filled.iter_interactions(InteractionFilter()), list)

    # ------------------------------------------------------------------ stats

    def test_stats_over_everything(self, filled: Storage) -> None:
        """feedback_stats over all records gives the numbers worked out by hand."""
        s = filled.feedback_stats()
        assert (s.total_interactions, s.total_feedback, s.interactions_with_feedback) == (5, 12, 4)
        assert s.feedback_rate == pytest.approx(0.8)
        assert s.by_type == {"binary": 3, "comparative": 2, "multi_dimensional": 2, "rating": 3, "text": 2}
        assert (s.binary.thumbs_up, s.binary.thumbs_down) == (2, 1)
        assert s.binary.ratio == pytest.approx(2 / 3)
        assert s.rating.count == 3
        assert s.rating.average == pytest.approx((4 + 2 + (1 + 4 * 6 / 9)) / 3)
        assert s.rating.median == pytest.approx(1 + 4 * 6 / 9)
        assert s.rating.distribution == {1: 0, 2: 1, 3: 0, 4: 2, 5: 0}
        assert (s.text.count, s.text.positive, s.text.negative, s.text.neutral, s.text.unknown) == (2, 1, 1, 0, 0)
        assert s.multi_dimensional.count == 2
        assert s.multi_dimensional.dimension_averages == pytest.approx({"accuracy": 3.5, "clarity": 3.5})
        assert s.multi_dimensional.average_weighted_score == pytest.approx(3.75)
        assert s.comparative.count == 2
        assert s.comparative.wins_by_model == {"claude": 2, "gpt-4": 1}
        assert s.comparative.losses_by_model == {"claude": 1, "gpt-4": 2}
        assert s.comparative.win_rate_by_model == pytest.approx({"claude": 2 / 3, "gpt-4": 1 / 3})
        assert sorted(s.by_model) == ["claude", "gpt-4", "unknown"]
        gpt, claude, unknown = s.by_model["gpt-4"], s.by_model["claude"], s.by_model["unknown"]
        assert (gpt.interactions, gpt.feedback, gpt.thumbs_up, gpt.thumbs_down) == (2, 8, 1, 1)
        assert gpt.average_rating == pytest.approx(3.0)
        assert gpt.average_latency_ms == pytest.approx(200.0)
        assert (claude.interactions, claude.feedback, claude.thumbs_up, claude.thumbs_down) == (2, 3, 0, 0)
        assert claude.average_rating == pytest.approx(1 + 4 * 6 / 9)
        assert claude.average_latency_ms == pytest.approx(300.0)
        assert (unknown.interactions, unknown.feedback, unknown.thumbs_up) == (1, 1, 1)
        assert unknown.average_rating is None and unknown.average_latency_ms is None

    def test_stats_over_a_time_range(self, filled: Storage) -> None:
        """Only records with start <= timestamp < end count, feedback and interactions alike."""
        s = filled.feedback_stats(T0, at(24))
        assert (s.total_interactions, s.total_feedback, s.interactions_with_feedback) == (4, 11, 3)
        assert s.feedback_rate == pytest.approx(0.75)
        assert (s.binary.thumbs_up, s.binary.thumbs_down) == (1, 1)
        assert "unknown" not in s.by_model
        assert s.start_time == T0 and s.end_time == at(24)
        s = filled.feedback_stats(at(1), at(2))
        assert (s.total_interactions, s.total_feedback, s.interactions_with_feedback) == (1, 3, 1)
        assert s.by_type == {"binary": 1, "rating": 1, "text": 1}
        assert s.rating.median == pytest.approx(2.0)
        assert s.rating.distribution == {1: 0, 2: 1, 3: 0, 4: 0, 5: 0}
        assert s.comparative.count == 0 and s.comparative.wins_by_model == {}
        assert (s.by_model["gpt-4"].interactions, s.by_model["gpt-4"].feedback) == (1, 3)

    def test_stats_of_an_empty_storage_are_zero(self, storage: Storage) -> None:
        """An empty storage reports zeros, not errors."""
        s = storage.feedback_stats()
        assert (s.total_interactions, s.total_feedback, s.feedback_rate) == (0, 0, 0.0)
        assert s.rating.count == 0 and s.rating.distribution == {} and s.by_model == {}

    def test_rating_median_of_an_even_count_is_the_mean_of_the_middle_two(self, storage: Storage) -> None:
        """Median with an even number of ratings averages the two middle ones (on the 1..5 scale)."""
        storage.write(RecordBatch(interactions=[Interaction(id="a", prompt="p", timestamp=T0)]))
        values = [(1, 5), (5, 5), (3, 3), (4, 5)]  # on five: 1, 5, 5, 4
        storage.write(RecordBatch(feedback=[
            _fb(f"r{n}", "a", 0, {"type": "rating", "value": v, "max_rating": m}) for n, (v, m) in enumerate(values)
        ]))  # fmt: skip
        s = storage.feedback_stats()
        assert s.rating.median == pytest.approx(4.5)
        assert s.rating.average == pytest.approx(15 / 4)
        assert s.rating.distribution == {1: 1, 2: 0, 3: 0, 4: 1, 5: 2}

    # ------------------------------------------------------------------ restart

    def test_everything_is_read_back_after_a_restart(
        self, storage_factory: Callable[[], Storage], filled: Storage
    ) -> None:
        """Closing and opening the storage again loses nothing (persistent backends)."""
        if not self.persistent:
            return
        before_i = list(filled.iter_interactions(InteractionFilter()))
        before_f = list(filled.iter_feedback(FeedbackFilter()))
        before_stats = filled.feedback_stats()
        before_session = filled.get_session("s1")
        filled.close()
        reopened = storage_factory()
        reopened.initialize()
        try:
            assert list(reopened.iter_interactions(InteractionFilter())) == before_i
            assert list(reopened.iter_feedback(FeedbackFilter())) == before_f
            assert reopened.feedback_stats() == before_stats
            assert reopened.get_session("s1") == before_session
            assert reopened.missing_interactions(["i01", "zz"]) == {"zz"}
            reopened.write(dataset())
            assert len(list(reopened.iter_feedback(FeedbackFilter()))) == 12
        finally:
            reopened.close()
