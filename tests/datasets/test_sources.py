"""The SQL fast path of the dataset readers returns what the Storage Protocol path returns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlhfkit._models import FeedbackFilter, FeedbackType, InteractionFilter
from rlhfkit.datasets._sources import (
    _feedback_row,
    _interaction_row,
    iter_feedback_rows,
    iter_interaction_rows,
)
from rlhfkit.storage.sql import SQLStorage

from .conftest import Recorder


@pytest.fixture(params=["sqlite", "postgres"])
def sql(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStorage]:
    """A SQLStorage on SQLite, then on PostgreSQL (a project of its own)."""
    if request.param == "sqlite":
        store = SQLStorage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        store = SQLStorage(dsn, project=f"datasets-{uuid.uuid4().hex}")
    store.initialize()
    yield store
    store.close()


def _fill(rec: Recorder) -> None:
    a = rec.ask("p", "r", model="m1", context=[{"role": "system", "content": 'say "hi"'},
                                               {"role": "tool", "content": "x"}])  # fmt: skip
    b = rec.ask("p", "", error={"type": "Boom"}, model=None)
    c = rec.ask("q", "half", incomplete=True, context=[{"role": "developer", "content": "dev"}])
    rec.rate(a, 4, max_rating=7, user="u1", comment="fine")
    rec.thumb(b, False, user="u2")
    rec.say(c, "bad", sentiment="negative")
    rec.say(c, "meh")
    rec.score(a, {"x": 2, "y": 4}, {"x": 1, "y": 3})
    rec.prefer(a, b, c, confidence=0.4)


def test_sql_rows_match_protocol_rows(sql: SQLStorage, rec: Recorder) -> None:
    """Feedback and interaction rows read straight from SQL equal those built from the Protocol's models."""
    _fill(rec)
    rec.save(sql)
    for with_data in (False, True):
        fast = list(iter_feedback_rows(sql, FeedbackFilter(), with_data=with_data))
        slow = [_feedback_row(fb, with_data) for fb in sql.iter_feedback(FeedbackFilter())]
        assert fast == slow
    ids = [i.id for i in rec.interactions]
    fast_i = sorted(iter_interaction_rows(sql, ids))
    slow_i = sorted(_interaction_row(i) for i in sql.iter_interactions(InteractionFilter(ids=ids)))
    assert fast_i == slow_i
    assert fast_i[0].context in ([("system", 'say "hi"')], [("system", "dev")], [])


def test_sql_rows_honour_filters_and_paging(sql: SQLStorage, rec: Recorder) -> None:
    """Types, limit, offset and after_id apply on the SQL path as on the Protocol."""
    _fill(rec)
    rec.save(sql)
    flt = FeedbackFilter(types=[FeedbackType.TEXT, FeedbackType.RATING], limit=2, offset=1)
    assert [r.id for r in iter_feedback_rows(sql, flt)] == [f.id for f in sql.iter_feedback(flt)]
    first = rec.feedback[0].id
    after = FeedbackFilter(after_id=first)
    assert [r.id for r in iter_feedback_rows(sql, after)] == [f.id for f in sql.iter_feedback(after)]


def test_sqlalchemy_fallback_reads_the_same_interactions(sql: SQLStorage, rec: Recorder,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Without a hand-written statement for the dialect, the SQLAlchemy query gives the same rows."""
    from rlhfkit.datasets import _sources

    _fill(rec)
    rec.save(sql)
    ids = [i.id for i in rec.interactions]
    direct = sorted(iter_interaction_rows(sql, ids))
    monkeypatch.setattr(_sources, "_INTERACTIONS_BY_ID", {})
    assert sorted(iter_interaction_rows(sql, ids)) == direct


def test_exports_from_sql_and_memory_are_identical(sql: SQLStorage, rec: Recorder, tmp_path: Path) -> None:
    """The same records give byte-identical dataset files from SQLite / PostgreSQL and from memory."""
    from rlhfkit.datasets import export_dataset
    from rlhfkit.storage.memory import MemoryStorage

    _fill(rec)
    for n in range(5):
        a, b = rec.ask(f"p{n}", "one"), rec.ask(f"p{n}", "two")
        rec.rate(a, 5)
        rec.rate(b, 1 + n % 3)
    memory = MemoryStorage(max_entries=1000)
    rec.save(memory)
    rec.save(sql)
    for kind in ("preference", "unpaired", "sft", "reward"):
        left = export_dataset(memory, kind, tmp_path / f"m-{kind}", conversational=True, test_fraction=0.3)
        right = export_dataset(sql, kind, tmp_path / f"s-{kind}", conversational=True, test_fraction=0.3)
        assert left.counts == right.counts and left.skipped == right.skipped
        for split, path in left.files.items():
            assert Path(path).read_bytes() == Path(right.files[split]).read_bytes()
