"""SQLStorage reads: every query shape chosen for speed (search index, per-row rating, sorted time range) keeps the rows.

Each shape is forced on and off on the same data, in SQLite and PostgreSQL,
and must return exactly the rows of the plain shape (a scan with ``LIKE``,
the ids selected once, the primary key walked in id order).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rlhfkit._models import Feedback, Interaction, InteractionFilter, RecordBatch
from rlhfkit.server.dashboard._queries import interaction_page
from rlhfkit.storage import _sql_filters, _sql_search, _sql_search_pg, sql
from rlhfkit.storage.sql import SQLStorage
from tests.storage_contract import at
from tests.test_storage_sql_search_pg import schema_url  # noqa: F401  (a fixture)

TEXTS = [
    "Question {k}: how do I parse JSON in Python?",
    "QUESTION {k}: Sort a CSV by date",
    "ünïcödé Straße {k} — naïve café",
    "100% sure {k}? a_b and c%d",
    'quote "{k}" and back\\slash',
]
SEARCHES = [
    "question 1", "Question 12:", "QUESTION 7", "straße", "café", "100%", "a_b", "c%d", '"3"', "\\sl", "zz", "on",
    "Python?", "nothing like this at all", "Answer 4", "answer", "NAÏVE CAFÉ", "ÜNÏCÖDÉ", "d 3", "and back\\",
]  # fmt: skip
FILTERS: list[dict[str, Any]] = [
    {"min_rating": 4}, {"max_rating": 2}, {"min_rating": 2, "max_rating": 3},
    {"min_rating": 4, "models": ["m1"]}, {"start_time": at(10), "end_time": at(20)}, {"start_time": at(55)},
    {"end_time": at(3)}, {"start_time": at(10), "min_rating": 3}, {"search": "question 1", "min_rating": 3},
    {"search": "café", "start_time": at(20)}, {"has_feedback": True, "start_time": at(30)},
    {"min_rating": 4, "feedback_types": ["rating"]},
    *({"search": s} for s in SEARCHES),
]  # fmt: skip


def _data() -> RecordBatch:
    interactions, feedback = [], []
    for k in range(120):
        interactions.append(Interaction(
            id=f"i{k:03d}", timestamp=at(k / 2), prompt=TEXTS[k % len(TEXTS)].format(k=k),
            response=f"Answer {k}" if k % 3 else "", model=f"m{k % 3}", user_id=f"u{k % 4}",
        ))  # fmt: skip
        if k % 4:
            feedback.append(Feedback(id=f"f{k:03d}", interaction_id=f"i{k:03d}", type="rating", timestamp=at(k / 2),
                                     data={"type": "rating", "value": float(1 + k % 5), "max_rating": 5}))  # fmt: skip
    return RecordBatch(interactions=interactions, feedback=feedback)


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStorage]:
    """A storage holding :func:`_data`, on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        store = SQLStorage(f"sqlite:///{tmp_path / 'plans.db'}")
    else:  # a schema of its own: the search index's mark is the schema's, not the project's
        store = SQLStorage(request.getfixturevalue("schema_url"), project=f"plans-{uuid.uuid4().hex[:12]}")
    store.initialize()
    store.write(_data())
    yield store
    store.close()


def _read(store: SQLStorage, flt: dict[str, Any]) -> tuple[list[str], int, list[str], list[str]]:
    """The API's ids, the count, and two dashboard pages (newest first, then the older one)."""
    found = [i.id for i in store.iter_interactions(InteractionFilter(**flt))]
    paged = [i.id for i in store.iter_interactions(InteractionFilter(**flt, limit=7, after_id="i050"))]
    first = interaction_page(store, InteractionFilter(**flt), size=10)
    second = (
        interaction_page(store, InteractionFilter(**flt), before=first.older, size=10)
        if first.older
        else None
    )
    pages = [r.id for r in first.rows], [r.id for r in second.rows] if second else []
    return found + ["|"] + paged, store.count_interactions(InteractionFilter(**flt)), *pages


def _plain(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fast shape off: scan for search, ids selected once for ratings, id order walked."""
    monkeypatch.setattr(_sql_search, "candidates", lambda connection, search: None)
    monkeypatch.setattr(_sql_filters, "NARROW", 10**9)
    monkeypatch.setattr(sql, "_FEW", 0)


def _index(store: SQLStorage, rows: int | None) -> None:
    """Index the first ``rows`` interactions written (all when None); the others stay above the mark."""
    if store.dialect == "sqlite":
        with store._connect(write=True) as connection:
            _sql_search.index_rows(connection, rows)
        return
    with store._connect() as connection:
        bound = _sql_search_pg.settle(connection)
    with store._connect() as connection:
        _sql_search_pg.index_rows(connection, bound, rows)


@pytest.mark.parametrize("indexed", [None, 50, 0])
def test_every_fast_shape_returns_the_rows_of_the_plain_one(
    storage: SQLStorage, monkeypatch: pytest.MonkeyPatch, indexed: int | None
) -> None:
    """Search through the index (all, part or none of the rows indexed), ratings per row, time ranges sorted: same rows."""
    _index(storage, indexed)
    with monkeypatch.context() as plain:
        _plain(plain)
        expected = {str(f): _read(storage, f) for f in FILTERS}
    assert expected[str({"search": "question 1"})][1] == 13  # the data is what these cases need
    with storage._connect() as connection:  # and the index is asked
        assert _sql_search.candidates(connection, "Question 12:") is not None
    for narrow in (1, 10**9):  # many ratings (checked per row) / few (selected once, sorted)
        with monkeypatch.context() as forced:
            forced.setattr(_sql_filters, "NARROW", narrow)
            forced.setattr(sql, "_FEW", 10**9)
            assert {str(f): _read(storage, f) for f in FILTERS} == expected


def test_search_index_narrows_to_the_matching_rows(tmp_path: Path) -> None:
    """Once indexed, a search asks the index: a rare text gives a narrowing condition, a text everywhere does not."""
    store = SQLStorage(f"sqlite:///{tmp_path / 'idx.db'}")
    store.initialize()
    store.write(_data())
    _index(store, None)
    with store._connect() as connection:
        assert _sql_search.indexed_to(connection) == 120
        assert _sql_search.candidates(connection, "Question 12:") is not None
        assert _sql_search.candidates(connection, "on") is None  # no trigram
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_sql_search, "BROAD", 10)
        with store._connect() as connection:
            assert _sql_search.candidates(connection, "Answer") is None  # 80 candidates: scan instead
    store.close()


def test_match_expression_quotes_and_bounds_its_terms() -> None:
    """Trigrams are quoted (quotes doubled), repeated ones asked once, long texts capped at a spread of terms."""
    assert _sql_search.match_expression("ab") is None
    assert _sql_search.match_expression('a"bc') == '"a""b" AND """bc"'
    assert _sql_search.match_expression("aaaa") == '"aaa"'
    long = _sql_search.match_expression("x" * 5 + "".join(chr(0x4E00 + k) for k in range(200)))
    assert long is not None and long.count(" AND ") == 23


def test_rows_written_after_indexing_are_found_and_indexed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search sees rows above the mark at once; past TAIL_ROWS of them, a background thread indexes them all."""
    store = SQLStorage(f"sqlite:///{tmp_path / 'tail.db'}")
    store.initialize()
    store.write(_data())
    _index(store, None)
    store.write(
        RecordBatch(interactions=[Interaction(id=f"n{k}", prompt=f"late arrival {k}") for k in range(30)])
    )
    assert [i.id for i in store.iter_interactions(InteractionFilter(search="arrival 2"))] == ["n2"] + [
        f"n{k}" for k in range(20, 30)
    ]
    monkeypatch.setattr(_sql_search, "TAIL_ROWS", 10)
    monkeypatch.setattr(_sql_search, "CATCH_UP_BATCH", 7)
    thread = _sql_search.start_catch_up(store)
    assert thread is not None
    thread.join(30)
    with store._connect() as connection:
        assert _sql_search.indexed_to(connection) == 150
    assert _sql_search.start_catch_up(store) is None  # nothing left to index
    assert store.count_interactions(InteractionFilter(search="LATE ARRIVAL 1")) == 11
    store.close()
