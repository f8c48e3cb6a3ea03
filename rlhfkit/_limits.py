"""What every backend can store: the limits a record is checked against before it is accepted.

PostgreSQL refuses NUL characters in text and JSON, non-finite numbers in
JSONB and index entries over about 2,700 bytes (a third of a page); JSON
encoders give up on deep nesting; a lone surrogate cannot be written as
UTF-8. A record that passes these checks is stored by every backend, so the
logger checks each record when it is logged (:func:`check_record`) and the
collector each record of a request (:func:`check_storable`): a refused call is
refused at once, with the field named, instead of failing later in a
background write where it would hold up every record queued behind it.
"""

from __future__ import annotations

import math
from typing import Any

import pydantic_core
from pydantic_core import PydanticSerializationError

from ._models import (
    ComparativeData,
    Feedback,
    FeedbackSession,
    Interaction,
    MultiDimensionalData,
    RecordBatch,
)
from .errors import ValidationError

__all__ = [
    "MAX_DEPTH",
    "MAX_INDEXED_BYTES",
    "MAX_MODEL_BYTES",
    "PLAIN_TYPES",
    "SAFE_INDEXED_CHARS",
    "SAFE_MODEL_CHARS",
    "check_record",
    "check_storable",
    "check_text",
    "check_values",
    "encodable",
    "plain_metadata",
    "plain_texts",
]

MAX_INDEXED_BYTES = 2000
MAX_MODEL_BYTES = 300
"""Model names are tighter: a comparison's index entry holds two of them beside two ids."""
MAX_DEPTH = 64
SAFE_INDEXED_CHARS = MAX_INDEXED_BYTES // 4
"""No string of this many characters or fewer exceeds MAX_INDEXED_BYTES in UTF-8."""
SAFE_MODEL_CHARS = MAX_MODEL_BYTES // 4
"""No model name of this many characters or fewer exceeds MAX_MODEL_BYTES in UTF-8."""


PLAIN_TYPES = frozenset({str, int, bool, type(None)})
"""Types of values that need no further look (floats are plain only when finite)."""
_INF = float("inf")


def plain_texts(*texts: str | None) -> bool:
    """Whether these strings hold no NUL character and no lone surrogate: a screen for hot paths."""
    for text in texts:
        if text is not None and ("\x00" in text or not (text.isascii() or encodable(text))):
            return False
    return True


def plain_metadata(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` is one level of plain, storable values: a screen for hot paths.

    False says only "look closer" (:func:`check_record` names what is wrong).
    """
    for key, value in meta.items():
        kind = type(value)
        if type(key) is not str or not plain_texts(key):
            return False
        if kind is str:
            if not plain_texts(value):
                return False
        elif kind not in PLAIN_TYPES and not (kind is float and -_INF < value < _INF):
            return False
    return True


def check_text(value: str | None, field: str, max_length: int | None = None) -> None:
    """Refuse NUL characters, lone surrogates and, with ``max_length``, strings longer than that."""
    if value is None:
        return
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters", value)
    if not (value.isascii() or encodable(value)):
        raise ValidationError(field, "must be valid Unicode (no lone surrogates)", None)
    if max_length is not None and len(value) > max_length:
        raise ValidationError(field, f"must be at most {max_length} characters", value)


def encodable(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_values(value: Any, field: str) -> None:
    """Refuse NUL characters, lone surrogates, non-finite floats and values JSON has no form for in ``value``.

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
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
        elif isinstance(item, bytes):
            if b"\x00" in item:
                raise ValidationError(where, "must not contain NUL characters", None)
        elif item is not None and not isinstance(item, int):  # a value JSON may have no form for
            try:
                pydantic_core.to_json(item)
            except PydanticSerializationError as exc:
                raise ValidationError(where, f"cannot be written as JSON (a {type(item).__name__}): {exc}", None) from None


def check_storable(batch: RecordBatch, interaction_paths: list[str], feedback_paths: list[str]) -> None:
    """Refuse what the database cannot store: NaN, infinities, deep nesting, over-long indexed values.

    Values the database indexes (user and session ids, feedback targets,
    dimension names) are limited to MAX_INDEXED_BYTES, model names to
    MAX_MODEL_BYTES. NUL characters
    and lone surrogates are refused earlier, on the request body; other strings
    of any length and integers of any size are stored (the SQL backend keeps
    out-of-range integers in the record's JSON only). Field names are only
    built for a refusal: this runs on every record.
    """
    for interaction, where in zip(batch.interactions, interaction_paths, strict=False):
        _check_interaction(interaction, where)
    for feedback, where in zip(batch.feedback, feedback_paths, strict=False):
        _check_feedback(feedback, where)
    for i, session in enumerate(batch.sessions):
        _check_session(session, f"sessions[{i}]")


def _check_interaction(interaction: Interaction, where: str) -> None:
    model, user_id, session_id = interaction.model, interaction.user_id, interaction.session_id
    if (model and len(model) > SAFE_MODEL_CHARS) or (user_id and len(user_id) > SAFE_INDEXED_CHARS) or (
        session_id and len(session_id) > SAFE_INDEXED_CHARS
    ):
        _indexable(model, where, "model", MAX_MODEL_BYTES)
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
        if value and not PLAIN_TYPES.issuperset(map(type, value.values() if type(value) is dict else value)):
            _shallow(value, where, name)
    for i, message in enumerate(interaction.context):
        _shallow(message.model_extra, where, f"context[{i}]")
    if interaction.environment is not None:
        _shallow(interaction.environment.custom, where, "environment.custom")


def _check_feedback(feedback: Feedback, where: str) -> None:
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


def _check_session(session: FeedbackSession, where: str) -> None:
    _shallow(session.metadata, where, "metadata")
    _indexable(session.id, where, "id")




def _indexable(value: str | None, where: str, name: str, limit: int = MAX_INDEXED_BYTES) -> None:
    # PostgreSQL cannot index a value above about 2,700 bytes (a third of a page).
    if value is not None and len(value) > limit // 4 and len(value.encode()) > limit:
        raise ValidationError(_at(where, name), f"must be at most {limit} bytes (it is indexed by the database)", None)


def _finite(value: float | None, where: str, name: str) -> None:
    if value is not None and not math.isfinite(value):
        raise ValidationError(_at(where, name), "must be a finite number", value)


_FREE_FORM = ("model_params", "metadata", "tools", "tool_calls")
_METRIC_FLOATS = (
    "time_to_first_token_ms", "total_response_time_ms", "streaming_time_ms", "tokens_per_second", "network_latency_ms",
)


_CONTAINERS = (dict, list, tuple, set, frozenset)


def _shallow(value: Any, where: str, name: str) -> None:
    """Refuse free-form values nested deeper than MAX_DEPTH (JSON encoders give up around 256) or holding NaN."""
    if not value:
        return
    # The usual case, one level of plain strings, numbers and booleans, needs no stack.
    for sub in value.values() if isinstance(value, dict) else value:
        if isinstance(sub, _CONTAINERS) or (isinstance(sub, float) and not math.isfinite(sub)):
            break
    else:
        return
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(_at(where, name), f"must not be nested deeper than {MAX_DEPTH} levels", None)
        for sub in item.values() if isinstance(item, dict) else item:
            if isinstance(sub, _CONTAINERS):
                stack.append((sub, depth + 1))
            elif isinstance(sub, float) and not math.isfinite(sub):
                check_values(value, _at(where, name))  # names the exact place


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_record(record: Interaction | Feedback | FeedbackSession) -> None:
    """Refuse a record built in this process that some backend could not store, naming the field.

    Pydantic has checked the types, and :func:`check_storable`'s checks run
    here too. NUL characters and lone surrogates can hide in any string, so
    the record's JSON (pydantic writes a NUL as the escape ``\\u0000`` and a
    lone surrogate as U+FFFD) screens for them at C speed; only a record that
    trips the screen is walked, to name the field.
    """
    if isinstance(record, Interaction):
        _check_interaction(record, "")
    elif isinstance(record, Feedback):
        _check_feedback(record, "")
    else:
        _check_session(record, "")
    try:
        text = record.__pydantic_serializer__.to_json(record)
    except PydanticSerializationError as exc:  # a lone surrogate, or a value JSON has no form for
        check_values(record.model_dump(), "")
        raise ValidationError("record", f"cannot be written as JSON: {exc}") from None
    if (b"\\" in text and b"\\u0000" in text) or (not text.isascii() and _REPLACEMENT in text):
        check_values(record.model_dump(), "")


_REPLACEMENT = "\ufffd".encode()
