"""check_storable in process: the quick checks of the usual record still refuse every bad value, by name."""

from __future__ import annotations

from typing import Any

import pytest

from rlhfkit import Interaction, RecordBatch
from rlhfkit._limits import check_storable
from rlhfkit.errors import ValidationError

_DEEP: Any = [[[]]]
for _ in range(70):
    _DEEP = [_DEEP]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": "m" * 301}, "interactions[1].model"),
        ({"session_id": "é" * 1001}, "interactions[1].session_id"),
        ({"user_id": "u" * 2001}, "interactions[1].user_id"),
        ({"latency": float("inf")}, "interactions[1].latency"),
        ({"model_params": {"temperature": float("nan")}}, "interactions[1].model_params.temperature"),
        (
            {"metadata": {"ok": "yes", "n": 1, "deep": {"x": [1.0, float("-inf")]}}},
            "interactions[1].metadata.deep.x[1]",
        ),
        ({"tools": [{"name": "t", "schema": _DEEP}]}, "interactions[1].tools"),
        (
            {"metrics": {"time_to_first_token_ms": float("inf")}},
            "interactions[1].metrics.time_to_first_token_ms",
        ),
    ],
)
def test_bad_values_are_refused_by_name(fields: dict[str, Any], field: str) -> None:
    """Over-long indexed strings, non-finite numbers and deep nesting in the second record name that record."""
    batch = RecordBatch(interactions=[Interaction(prompt="fine"), Interaction(prompt="bad", **fields)])
    with pytest.raises(ValidationError) as refused:
        check_storable(batch, ["interactions[0]", "interactions[1]"], [])
    assert refused.value.field == field


def test_usual_records_pass() -> None:
    """Plain and one-level values, long but storable strings and nested finite values are accepted."""
    usual = Interaction(
        prompt="p", model="m" * 300, user_id="é" * 1000, latency=12.5, model_params={"temperature": 0.7, "n": 2},
        metadata={"app": "x", "flag": True, "none": None, "nested": {"a": [1, 2.5]}},
        tools=[{"name": "t", "parameters": {"type": "object"}}],
    )  # fmt: skip
    check_storable(RecordBatch(interactions=[usual]), ["interactions[0]"], [])
