"""Limits every database accepts, checked before a record reaches one.

PostgreSQL refuses NUL characters in text and JSON, non-finite numbers in
JSONB, strings longer than a ``VARCHAR(n)`` column and integers beyond its
integer columns. The collector refuses such input with a 422 naming the
field, so that no request can fail inside the database.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .._models import ComparativeData, MultiDimensionalData, RecordBatch
from ..errors import ValidationError

__all__ = ["BodyScan", "check_body_values", "check_storable", "check_text"]

MAX_TEXT = 10_000
MAX_INDEXED_BYTES = 2000
MAX_DEPTH = 64


class BodyScan:
    """Hooks for ``json.loads`` that note whether a body holds a value a database refuses.

    NaN and infinities (also from overflowing literals such as ``1e400``) are
    noted while parsing; NUL and surrogate escapes are found in the raw text.
    Only a noted body is walked by :func:`check_body_values` (to name the field).
    """

    def __init__(self) -> None:
        self.suspect = False

    def parse_float(self, text: str) -> float:
        """Parse a JSON number with a fraction or exponent."""
        value = float(text)
        if not math.isfinite(value):
            self.suspect = True
        return value

    def parse_constant(self, name: str) -> float:
        """Parse NaN, Infinity or -Infinity (which JSON does not allow, and Python's parser does)."""
        self.suspect = True
        return float(name)

    def loads(self, body: bytes) -> Any:
        """``json.loads(body)`` with the hooks; also notes NUL and surrogate escapes."""
        if b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body:
            self.suspect = True
        return json.loads(body, parse_float=self.parse_float, parse_constant=self.parse_constant)


def check_text(value: str | None, field: str, max_length: int | None = None) -> None:
    """Refuse NUL characters, lone surrogates and, with ``max_length``, strings longer than that."""
    if value is None:
        return
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters", value)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(field, "must be valid Unicode (no lone surrogates)", None) from None
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters", value)


def check_body_values(value: Any, field: str) -> None:
    """Refuse NUL characters, lone surrogates and non-finite floats anywhere in ``value``.

    Integers are checked where they reach an integer column (:func:`check_storable`).
    """
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(where, "must be a finite number", item)
        elif isinstance(item, dict):
            for key, sub in item.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str):
                    check_text(key, f"{where}.<key>" if where else "<key>")
                stack.append((sub, name))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))


def check_storable(batch: RecordBatch, interaction_paths: list[str], feedback_paths: list[str]) -> None:
    """Refuse what the database cannot store: NaN, infinities, deep nesting, over-long indexed values.

    Values the database indexes (model, user and session ids, feedback
    targets, dimension names) are limited to MAX_INDEXED_BYTES. NUL characters
    and lone surrogates are refused earlier, on the request body; other strings
    of any length and integers of any size are stored (the SQL backend keeps
    out-of-range integers in the record's JSON only). Field names are only
    built for a refusal: this runs on every record.
    """
    for interaction, where in zip(batch.interactions, interaction_paths, strict=False):
        model, user_id, session_id = interaction.model, interaction.user_id, interaction.session_id
        if (model and len(model) > _SHORT) or (user_id and len(user_id) > _SHORT) or (
            session_id and len(session_id) > _SHORT
        ):
            _indexable(model, where, "model")
            _indexable(user_id, where, "user_id")
            _indexable(session_id, where, "session_id")
        latency = interaction.latency
        if latency is not None and not math.isfinite(latency):
            _finite(latency, where, "latency")
        metrics = interaction.metrics
        if metrics is not None:
            for name in _METRIC_FLOATS:
                _finite(getattr(metrics, name), where, f"metrics.{name}")
        for name in _FREE_FORM:
            value = getattr(interaction, name)
            # Values holding only strings, integers, booleans and None need no walk (the usual case).
            if value and not _PLAIN.issuperset(map(type, value.values() if type(value) is dict else value)):
                _shallow(value, where, name)
        for i, message in enumerate(interaction.context):
            _shallow(message.model_extra, where, f"context[{i}]")
        if interaction.environment is not None:
            _shallow(interaction.environment.custom, where, "environment.custom")
    for feedback, where in zip(batch.feedback, feedback_paths, strict=False):
        _shallow(feedback.metadata, where, "metadata")
        _indexable(feedback.interaction_id, where, "interaction_id")
        data = feedback.data
        if isinstance(data, MultiDimensionalData):
            _finite(data.max_score, where, "data.max_score")
            for name in data.dimensions:
                _indexable(name, where, "data.dimensions")
        elif isinstance(data, ComparativeData):
            _finite(data.confidence, where, "data.confidence")
            _indexable(data.preferred_id, where, "data.preferred_id")
            for i, other in enumerate(data.alternative_ids):
                _indexable(other, where, f"data.alternative_ids[{i}]")
    for i, session in enumerate(batch.sessions):
        _shallow(session.metadata, f"sessions[{i}]", "metadata")
        _indexable(session.id, f"sessions[{i}]", "id")


_SHORT = MAX_INDEXED_BYTES // 4  # no string of this many characters or fewer exceeds MAX_INDEXED_BYTES
_PLAIN = frozenset({str, int, bool, type(None)})


def _indexable(value: str | None, where: str, name: str) -> None:
    # PostgreSQL cannot index a value above about 2,700 bytes (a third of a page).
    if value is not None and len(value) > _SHORT and len(value.encode()) > MAX_INDEXED_BYTES:
        raise ValidationError(
            _at(where, name), f"must be at most {MAX_INDEXED_BYTES} bytes (it is indexed by the database)", None
        )


def _finite(value: float | None, where: str, name: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValidationError(_at(where, name), "must be a finite number", value)


_FREE_FORM = ("model_params", "metadata", "tools", "tool_calls")
_METRIC_FLOATS = (
    "time_to_first_token_ms", "total_response_time_ms", "streaming_time_ms", "tokens_per_second", "network_latency_ms",
)


def _shallow(value: Any, where: str, name: str) -> None:
    """Refuse free-form values nested deeper than MAX_DEPTH (JSON encoders give up around 256) or holding NaN."""
    if not value:
        return
    # The usual case, one level of plain strings, numbers and booleans, needs no stack.
    for sub in value.values() if isinstance(value, dict) else value:
        if isinstance(sub, dict | list) or (isinstance(sub, float) and not math.isfinite(sub)):
            break
    else:
        return
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(_at(where, name), f"must not be nested deeper than {MAX_DEPTH} levels", None)
        for sub in item.values() if isinstance(item, dict) else item:
            if isinstance(sub, dict | list):
                stack.append((sub, depth + 1))
            elif isinstance(sub, float) and not math.isfinite(sub):
                check_body_values(value, _at(where, name))  # names the exact place


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
