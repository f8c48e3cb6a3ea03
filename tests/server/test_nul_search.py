"""The search for NUL characters before a PostgreSQL write agrees with a walk over every value."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rlhfkit.storage import _sql_rows as rows


def _escaped_nul(json_text: str) -> bool:
    """Whether JSON text holds the escape \\u0000: a backslash-u0000 after an even number of backslashes."""
    start = json_text.find("\\u0000")
    while start != -1:
        before = len(json_text[:start]) - len(json_text[:start].rstrip("\\"))
        if before % 2 == 0:
            return True
        start = json_text.find("\\u0000", start + 1)
    return False


def _walk(records: list[tuple[Any, ...]], columns: tuple[str, ...]) -> tuple[int, str] | None:
    for index, record in enumerate(records):
        for column, value in zip(columns, record, strict=False):
            if isinstance(value, str) and (
                "\x00" in value or (column in ("doc", "data", "metadata") and _escaped_nul(value))
            ):
                return index, column
    return None


def test_an_escape_counts_only_after_an_even_number_of_backslashes() -> None:
    """In JSON, \\\\u0000 is a backslash then u0000 (storable); \\u0000 and \\\\\\u0000 hold a NUL."""
    doc = ("project", "id")
    assert rows.nul_column([("p", '{"a": "\\\\u0000"}')], ("project", "doc")) is None
    assert rows.nul_column([("p", '{"a": "\\u0000"}')], ("project", "doc")) == (0, "doc")
    assert rows.nul_column([("p", '{"a": "\\\\\\u0000"}')], ("project", "doc")) == (0, "doc")
    assert rows.nul_column([("p", "plain text with \\u0000")], doc) is None


_texts = st.text(alphabet=st.sampled_from(["a", "\\", "u", "0", "\x00", "é", " "]), max_size=8)
_values = st.none() | _texts | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)


def _row(columns: tuple[str, ...], values: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*[values for _ in columns])


_interaction_rows = st.lists(
    st.tuples(
        _texts, _texts, st.integers(0, 10**15), st.none() | _texts, st.none() | _texts, st.none() | _texts,
        st.none() | _texts, st.none() | st.floats(allow_nan=False), st.none() | st.integers(0, 9),
        st.none() | st.integers(0, 9), st.none() | st.integers(0, 9), st.booleans(), _texts, _texts, _texts,
    ),
    max_size=6,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(records=_interaction_rows)
def test_interaction_rows_give_the_first_nul_a_walk_finds(records: list[tuple[Any, ...]]) -> None:
    """Interaction rows with NULs, escapes and backslashes anywhere: the same (row, column) as the walk, or None."""
    assert rows.nul_column(records, rows.INTERACTION_COLUMNS) == _walk(records, rows.INTERACTION_COLUMNS)


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(st.sampled_from(["id", "doc", "value", "has_error", "a", "b", "timestamp"]), min_size=1,
                     max_size=5).map(tuple),
    data=st.data(),
)  # fmt: skip
def test_any_columns_and_values_give_what_the_walk_gives(columns: tuple[str, ...], data: st.DataObject) -> None:
    """Unknown columns, numbers where text is expected and short rows fall back to looking at every value."""
    records = data.draw(st.lists(st.lists(_values, max_size=len(columns)).map(tuple), max_size=5))
    assert rows.nul_column(records, columns) == _walk(records, columns)
