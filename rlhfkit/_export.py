"""Export interactions with their feedback, or feedback alone, as JSON, JSONL, CSV or Parquet.

Everything streams: interactions are read from storage in chunks, each chunk's
feedback is fetched by id, and rows are encoded and written (or yielded) one
chunk at a time, so exporting millions of records never holds them in memory.

JSON and JSONL rows keep the nested record shape; CSV and Parquet rows are flat
(nested parts as JSON text). CSV cells starting with ``= + - @`` (or a tab or
carriage return) are prefixed with ``'`` so spreadsheets don't run them as
formulas.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ._models import (
    BinaryData,
    ExportFormat,
    Feedback,
    FeedbackFilter,
    Interaction,
    InteractionFilter,
    RatingData,
)
from .errors import ValidationError, require
from .storage.base import Storage

__all__ = ["export_records", "export_stream", "flat_feedback_row", "flat_interaction_row"]

CHUNK_SIZE = 2_000

INTERACTION_COLUMNS = [
    "id", "timestamp", "model", "provider", "prompt", "response", "latency_ms", "prompt_tokens",
    "completion_tokens", "total_tokens", "user_id", "session_id", "finish_reason", "error_type",
    "feedback_count", "thumbs_up", "thumbs_down", "average_rating", "context", "metadata", "feedback",
]  # fmt: skip
FEEDBACK_COLUMNS = [
    "id", "interaction_id", "type", "timestamp", "user_id", "session_id", "source", "value",
    "comment", "data", "metadata",
]  # fmt: skip
_NUMERIC = {"latency_ms", "average_rating", "value"}
_INTEGER = {
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "feedback_count",
    "thumbs_up",
    "thumbs_down",
}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _format(value: ExportFormat | str) -> ExportFormat:
    try:
        return ExportFormat(str(value).lower())
    except ValueError:
        valid = ", ".join(f.value for f in ExportFormat)
        raise ValidationError("format", f"unknown export format {value!r}; valid formats: {valid}") from None


# --------------------------------------------------------------------------- rows


def _records(
    storage: Storage,
    start_time: datetime | None,
    end_time: datetime | None,
    include_interactions: bool,
    include_feedback: bool,
) -> Iterator[list[tuple[Interaction | None, list[Feedback]]]]:
    """Chunks of (interaction, its feedback) pairs, or (None, [feedback]) when feedback alone."""
    if not include_interactions:
        chunk: list[tuple[Interaction | None, list[Feedback]]] = []
        for feedback in storage.iter_feedback(FeedbackFilter(start_time=start_time, end_time=end_time)):
            chunk.append((None, [feedback]))
            if len(chunk) >= CHUNK_SIZE:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        return
    interactions: list[Interaction] = []
    for interaction in storage.iter_interactions(InteractionFilter(start_time=start_time, end_time=end_time)):
        interactions.append(interaction)
        if len(interactions) >= CHUNK_SIZE:
            yield _with_feedback(storage, interactions, include_feedback)
            interactions = []
    if interactions:
        yield _with_feedback(storage, interactions, include_feedback)


def _with_feedback(
    storage: Storage, interactions: list[Interaction], include_feedback: bool
) -> list[tuple[Interaction | None, list[Feedback]]]:
    by_id: dict[str, list[Feedback]] = {i.id: [] for i in interactions}
    if include_feedback and any(i.feedback_ids for i in interactions):
        for feedback in storage.iter_feedback(FeedbackFilter(interaction_ids=list(by_id))):
            for target in feedback.interaction_ids():
                if target in by_id:
                    by_id[target].append(feedback)
    return [(i, by_id[i.id]) for i in interactions]


def _nested_row(interaction: Interaction | None, feedback: list[Feedback]) -> dict[str, Any]:
    if interaction is None:
        return feedback[0].model_dump(mode="json")
    row = interaction.model_dump(mode="json")
    row["feedback"] = [f.model_dump(mode="json") for f in feedback]
    return row


def _feedback_value(feedback: Feedback) -> float | None:
    data = feedback.data
    if isinstance(data, BinaryData):
        return 1.0 if data.value == "thumbs_up" else 0.0
    if isinstance(data, RatingData):
        return data.value
    score = getattr(data, "weighted_score", None)
    if score is not None:
        return float(score)
    return getattr(data, "confidence", None)


def flat_feedback_row(feedback: Feedback) -> dict[str, Any]:
    """One feedback as a flat row (nested parts as JSON text)."""
    data = feedback.data
    comment = (
        getattr(data, "comment", None)
        or getattr(data, "overall_comment", None)
        or getattr(data, "reason", None)
    )
    return {
        "id": feedback.id,
        "interaction_id": feedback.interaction_id,
        "type": feedback.type.value,
        "timestamp": feedback.timestamp.isoformat(),
        "user_id": feedback.user_id,
        "session_id": feedback.session_id,
        "source": feedback.source,
        "value": _feedback_value(feedback),
        "comment": comment,
        "data": json.dumps(data.model_dump(mode="json"), ensure_ascii=False),
        "metadata": json.dumps(feedback.metadata, ensure_ascii=False, default=str),
    }


def flat_interaction_row(interaction: Interaction, feedback: list[Feedback]) -> dict[str, Any]:
    """One interaction and a summary of its feedback as a flat row."""
    usage = interaction.token_usage
    ratings = [f.data.value / f.data.max_rating * 5 for f in feedback if isinstance(f.data, RatingData)]
    binary = [f.data.value for f in feedback if isinstance(f.data, BinaryData)]
    return {
        "id": interaction.id,
        "timestamp": interaction.timestamp.isoformat(),
        "model": interaction.model,
        "provider": interaction.provider,
        "prompt": interaction.prompt,
        "response": interaction.response,
        "latency_ms": interaction.latency,
        "prompt_tokens": usage.prompt if usage else None,
        "completion_tokens": usage.completion if usage else None,
        "total_tokens": usage.total if usage else None,
        "user_id": interaction.user_id,
        "session_id": interaction.session_id,
        "finish_reason": interaction.finish_reason,
        "error_type": interaction.error.type if interaction.error else None,
        "feedback_count": len(feedback),
        "thumbs_up": sum(1 for v in binary if v == "thumbs_up"),
        "thumbs_down": sum(1 for v in binary if v == "thumbs_down"),
        "average_rating": sum(ratings) / len(ratings) if ratings else None,
        "context": _compact([m.model_dump(mode="json") for m in interaction.context]),
        "metadata": _compact(interaction.metadata),
        "feedback": _compact([f.model_dump(mode="json", exclude=_DERIVED) for f in feedback]),
    }


_DERIVED = {"data": {"weighted_score"}}


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _flat_row(interaction: Interaction | None, feedback: list[Feedback]) -> dict[str, Any]:
    return (
        flat_feedback_row(feedback[0]) if interaction is None else flat_interaction_row(interaction, feedback)
    )


def _flat_pages(
    storage: Storage,
    start_time: datetime | None,
    end_time: datetime | None,
    include_interactions: bool,
    include_feedback: bool,
) -> Iterator[Any]:
    """Pages of flat rows, as tuples in column order or as Arrow tables of the columns.

    SQLite interactions take the fast path (Arrow tables) when pyarrow is installed.
    """
    if include_interactions and _sqlite_fast_path(storage):
        from ._export_sqlite import sqlite_flat_interactions

        yield from sqlite_flat_interactions(storage, start_time, end_time, include_feedback)
        return
    columns = INTERACTION_COLUMNS if include_interactions else FEEDBACK_COLUMNS
    for chunk in _records(storage, start_time, end_time, include_interactions, include_feedback):
        rows = [_flat_row(interaction, feedback) for interaction, feedback in chunk]
        yield [tuple(row[c] for c in columns) for row in rows]


def _sqlite_fast_path(storage: Storage) -> bool:
    if getattr(storage, "dialect", None) != "sqlite" or not hasattr(storage, "scan_connection"):
        return False
    try:
        import pyarrow.compute  # noqa: F401
    except ImportError:
        return False
    return True


def _rows(page: Any) -> list[tuple[Any, ...]]:
    """A page's rows as tuples (an Arrow table's columns turned into Python values)."""
    if isinstance(page, list):
        return page
    return list(zip(*(column.to_pylist() for column in page.columns), strict=True))


def _csv_safe(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


# --------------------------------------------------------------------------- encoders


def _encode_csv(pages: Iterable[Any], columns: list[str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(columns)
    yield buffer.getvalue().encode()
    for page in pages:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in _rows(page):
            writer.writerow([_csv_safe(value) for value in row])
        yield buffer.getvalue().encode()


def _encode_json(
    chunks: Iterable[list[tuple[Interaction | None, list[Feedback]]]], fmt: ExportFormat
) -> Iterator[bytes]:
    first = True
    if fmt is ExportFormat.JSON:
        yield b"["
    for chunk in chunks:
        parts = []
        for interaction, feedback in chunk:
            text = json.dumps(_nested_row(interaction, feedback), ensure_ascii=False, default=str)
            if fmt is ExportFormat.JSON:
                parts.append(("\n" if first else ",\n") + text)
                first = False
            else:
                parts.append(text + "\n")
        yield "".join(parts).encode()
    if fmt is ExportFormat.JSON:
        yield b"\n]\n" if not first else b"]\n"


def _parquet_schema(columns: list[str]) -> Any:
    pa = require("pyarrow", "parquet")
    fields = []
    for column in columns:
        if column in _INTEGER:
            fields.append(pa.field(column, pa.int64()))
        elif column in _NUMERIC:
            fields.append(pa.field(column, pa.float64()))
        else:
            fields.append(pa.field(column, pa.string()))
    return pa.schema(fields)


def _write_parquet(pages: Iterable[Any], columns: list[str], sink: str | BinaryIO) -> None:
    pa = require("pyarrow", "parquet")
    pq = require("pyarrow.parquet", "parquet")
    schema = _parquet_schema(columns)
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for page in pages:
            if not isinstance(page, list):
                writer.write_table(page)
                continue
            values = list(zip(*page, strict=True)) if page else [() for _ in columns]
            arrays = [
                pa.array(column, type=schema.field(name).type)
                for name, column in zip(columns, values, strict=True)
            ]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


# --------------------------------------------------------------------------- entry points


def export_stream(
    storage: Storage,
    format: ExportFormat | str,
    *,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    include_interactions: bool = True,
    include_feedback: bool = True,
) -> Iterator[bytes]:
    """The export as an iterator of byte chunks (for HTTP downloads).

    Parquet needs its footer written last, so it is built in a temporary file
    first (kept on disk, not in memory) and then streamed.
    """
    fmt = _format(format)
    if not include_interactions and not include_feedback:
        raise ValidationError("include_feedback", "nothing to export: include interactions, feedback or both")
    columns = INTERACTION_COLUMNS if include_interactions else FEEDBACK_COLUMNS
    if fmt in (ExportFormat.JSON, ExportFormat.JSONL):
        yield from _encode_json(
            _records(storage, start_time, end_time, include_interactions, include_feedback), fmt
        )
        return
    pages = _flat_pages(storage, start_time, end_time, include_interactions, include_feedback)
    if fmt is ExportFormat.CSV:
        yield from _encode_csv(pages, columns)
        return
    with tempfile.TemporaryFile() as spool:
        _write_parquet(pages, columns, spool)
        spool.seek(0)
        while block := spool.read(1 << 20):
            yield block


def export_records(
    storage: Storage,
    format: ExportFormat | str,
    *,
    path: str | Path | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
    include_interactions: bool = True,
    include_feedback: bool = True,
) -> str | bytes | Path:
    """Write the export to ``path`` (returning it), or return it as str (bytes for Parquet)."""
    fmt = _format(format)
    options = {
        "start_time": start_time,
        "end_time": end_time,
        "include_interactions": include_interactions,
        "include_feedback": include_feedback,
    }
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt is ExportFormat.PARQUET:
            columns = INTERACTION_COLUMNS if include_interactions else FEEDBACK_COLUMNS
            _write_parquet(
                _flat_pages(storage, start_time, end_time, include_interactions, include_feedback),
                columns,
                str(target),
            )
        else:
            with target.open("wb") as out:
                for block in export_stream(storage, fmt, **options):  # type: ignore[arg-type]
                    out.write(block)
        return target
    data = b"".join(export_stream(storage, fmt, **options))  # type: ignore[arg-type]
    return data if fmt is ExportFormat.PARQUET else data.decode()
