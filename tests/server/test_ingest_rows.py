"""The SQL rows an ingest writes: the quick paths agree with the plain ones they replace."""

from __future__ import annotations

from typing import Any

import pytest

from rlhfkit import Interaction, InteractionFilter, RecordBatch
from rlhfkit.storage import _sql_rows as rows


def _slow_nul_column(records: list[tuple[Any, ...]], columns: tuple[str, ...]) -> tuple[int, str] | None:
    for index, record in enumerate(records):
        for column, value in zip(columns, record, strict=False):
            if isinstance(value, str) and ("\x00" in value or "\\u0000" in value):
                return index, column
    return None


def _interactions() -> list[Interaction]:
    return [
        Interaction(
            prompt=f"question {k}",
            response="answer",
            model="m",
            token_usage={"prompt": k, "completion": 2},
            metadata={"k": k},
            user_id=f"user-{k}",
        )  # fmt: skip
        for k in range(5)
    ]


def test_interaction_doc_is_the_models_json_without_its_columns() -> None:
    """The doc column is exactly model_dump_json(exclude=columns); out-of-range token counts stay in it only."""
    big = Interaction(prompt="p", token_usage={"prompt": 2**40, "completion": 1})
    for interaction in [*_interactions(), big]:
        row = rows.interaction_row("proj", interaction)
        assert row[-1] == interaction.model_dump_json(exclude=rows._INTERACTION_IN_COLUMNS)
        assert row[:2] == ("proj", interaction.id)
    assert rows.interaction_row("proj", big)[8:11] == (None, 1, None)


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (None, None),
        ((3, "prompt"), "a\x00b"),
        ((0, "doc"), '{"metadata": {"k": "\\u0000"}}'),
        ((4, "user_id"), "\x00"),
    ],
)
def test_nul_column_names_the_first_nul_as_a_walk_does(
    where: tuple[int, str] | None, value: str | None
) -> None:
    """nul_column finds the same (row, column) as walking every value, and None when there is none."""
    records = [rows.interaction_row("proj", i) for i in _interactions()]
    if where is not None:
        index = rows.INTERACTION_COLUMNS.index(where[1])
        records[where[0]] = records[where[0]][:index] + (value,) + records[where[0]][index + 1 :]
    assert rows.nul_column(records, rows.INTERACTION_COLUMNS) == where
    assert _slow_nul_column(records, rows.INTERACTION_COLUMNS) == where


def test_nul_column_is_not_fooled_by_an_escape_split_across_values() -> None:
    """A backslash-u at the end of one value and zeros at the start of the next is no NUL."""
    records = [("proj", "id", "ends with \\u00", "00 starts the next")]
    assert rows.nul_column(records, ("project", "id", "a", "b")) is None


def test_postgres_write_of_a_batch_with_stored_ids_stores_only_the_new_ones(pg_storage: Any) -> None:
    """A batch whose straight COPY meets a stored id (or a repeated one) falls back to insert-if-new, in one write."""
    import uuid

    from rlhfkit import RecordBatch
    from rlhfkit._models import InteractionFilter

    storage = pg_storage.for_project(f"rows-{uuid.uuid4().hex[:12]}")
    stored = _interactions()
    storage.write(RecordBatch(interactions=stored[:2]))
    fresh = Interaction(prompt="new one")
    again = [stored[0].model_copy(update={"prompt": "changed"}), fresh, stored[2], stored[2], stored[1]]
    storage.write(RecordBatch(interactions=again))
    found = {i.id: i.prompt for i in storage.iter_interactions(InteractionFilter())}
    assert found == {stored[0].id: "question 0", stored[1].id: "question 1", stored[2].id: "question 2",
                     fresh.id: "new one"}  # fmt: skip
    storage.write(RecordBatch(interactions=[Interaction(prompt="after a fallback")]))
    assert storage.count_interactions(InteractionFilter()) == 5


def test_sqlite_rows_inserted_several_per_statement_match_one_per_row(tmp_path: Any, monkeypatch: Any) -> None:
    """Multi-row INSERT OR IGNORE stores what executemany stores: every row once, the first copy of an id."""
    import sqlite3

    from rlhfkit.storage import _sql_write
    from rlhfkit.storage.sql import SQLStorage

    monkeypatch.setattr(_sql_write, "_ROWS_PER_INSERT", 7)  # five statements
    interactions = [Interaction(prompt=f"q{k}", user_id=f"u{k % 3}") for k in range(30)]
    interactions.insert(9, interactions[2].model_copy(update={"prompt": "later copy"}))
    records = [rows.interaction_row("p", i) for i in interactions]
    stored = {}
    for name in ("chunked", "one_per_row"):
        storage = SQLStorage(f"sqlite:///{tmp_path / name}.db")
        storage.initialize()
        with storage._connect(write=True) as connection:
            if name == "chunked":
                _sql_write._insert_interactions(connection, "p", interactions)
            else:
                marks = ", ".join("?" * len(rows.INTERACTION_COLUMNS))
                sql = f"INSERT OR IGNORE INTO interactions ({', '.join(rows.INTERACTION_COLUMNS)}) VALUES ({marks})"
                connection.exec_driver_sql(sql, records)
        storage.close()
        with sqlite3.connect(tmp_path / f"{name}.db") as db:
            stored[name] = db.execute("SELECT * FROM interactions ORDER BY rowid").fetchall()
    assert stored["chunked"] == stored["one_per_row"]
    assert len(stored["chunked"]) == 30
    assert [r for r in stored["chunked"] if r[1] == interactions[2].id][0][12] == "q2"


def test_a_failing_statement_of_a_multi_statement_sqlite_insert_stores_nothing(tmp_path: Any, monkeypatch: Any) -> None:
    """An error in a later statement fails the write, and its transaction stores nothing.

    The trigger refuses the data itself, so the write raises ValidationError (sending it again cannot help).
    """

    from rlhfkit.errors import ValidationError
    from rlhfkit.storage import _sql_write
    from rlhfkit.storage.sql import SQLStorage

    monkeypatch.setattr(_sql_write, "_ROWS_PER_INSERT", 5)
    storage = SQLStorage(f"sqlite:///{tmp_path / 'x.db'}")
    storage.initialize()
    with storage._connect(write=True) as connection:  # a trigger that refuses the 13th row
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON interactions WHEN NEW.prompt = 'q12' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(ValidationError, match="refused"):
        storage.write(RecordBatch(interactions=[Interaction(prompt=f"q{k}") for k in range(20)]))
    assert storage.count_interactions(InteractionFilter()) == 0
    storage.write(RecordBatch(interactions=[Interaction(prompt=f"ok{k}") for k in range(20)]))
    assert storage.count_interactions(InteractionFilter()) == 20
    storage.close()
