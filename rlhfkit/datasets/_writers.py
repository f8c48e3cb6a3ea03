"""Writers of dataset splits: JSON Lines and Parquet.

Both stream: JSONL writes a line per row, Parquet a row group per few
thousand rows, with an explicit schema so that the column types do not depend
on the data (an empty split still has its columns). Files are written under a
temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any

from ..errors import require
from ._format import BOOL, FLOAT, INPUT, MESSAGES, TEXT

__all__ = ["SPLITS", "SplitWriter"]

SPLITS = ("train", "test")
_PARQUET_BATCH = 5_000


class SplitWriter:
    """Writes the rows of one dataset kind to ``{kind}-{split}.{ext}`` files in ``directory``."""

    def __init__(self, directory: Path, kind: str, fmt: str, columns: dict[str, str]) -> None:
        self.directory = directory
        self.kind = kind
        self.format = fmt
        self.columns = columns
        self.counts = dict.fromkeys(SPLITS, 0)
        self._jsonl: dict[str, IO[str]] = {}
        self._parquet: dict[str, Any] = {}
        self._buffers: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
        self._schema: Any = None
        self._encode = _line_encoder(columns)
        if fmt == "parquet":
            pa = require("pyarrow", "parquet")
            self._schema = pa.schema([(name, _arrow_type(pa, tag)) for name, tag in columns.items()])

    def path(self, split: str) -> Path:
        """Where the ``split`` file goes."""
        return self.directory / f"{self.kind}-{split}.{self.format}"

    def _tmp(self, split: str) -> Path:
        return self.path(split).with_name(f".{self.path(split).name}.tmp")

    def write(self, split: str, row: dict[str, Any]) -> None:
        """Append one row to ``split``."""
        self.counts[split] += 1
        if self.format == "jsonl":
            out = self._jsonl.get(split)
            if out is None:
                out = self._jsonl[split] = open(self._tmp(split), "w", encoding="utf-8")  # noqa: SIM115
            out.write(self._encode(row))
            out.write("\n")
        else:
            buffer = self._buffers[split]
            buffer.append(row)
            if len(buffer) >= _PARQUET_BATCH:
                self._flush_parquet(split)

    def _flush_parquet(self, split: str) -> None:
        pa = require("pyarrow", "parquet")
        pq = require("pyarrow.parquet", "parquet")
        writer = self._parquet.get(split)
        if writer is None:
            writer = self._parquet[split] = pq.ParquetWriter(str(self._tmp(split)), self._schema)
        rows = self._buffers[split]
        writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))
        rows.clear()

    def close(self) -> dict[str, str]:
        """Finish every file; returns split -> path of the files written.

        Splits without rows get no file, and an older file of that split is
        removed; when no split has rows, an empty ``train`` file is written so
        that the dataset still loads with its columns (Parquet) or exists (JSONL).
        """
        if not any(self.counts.values()):
            self._open_empty("train")
        for split in SPLITS:
            if self.format == "parquet" and (self._buffers[split] or split in self._parquet):
                if self._buffers[split]:
                    self._flush_parquet(split)
                self._parquet.pop(split).close()
            elif split in self._jsonl:
                self._jsonl.pop(split).close()
        files: dict[str, str] = {}
        for split in SPLITS:
            tmp = self._tmp(split)
            if tmp.exists():
                os.replace(tmp, self.path(split))
                files[split] = str(self.path(split))
            elif self.path(split).exists():
                self.path(split).unlink()
        return files

    def _open_empty(self, split: str) -> None:
        if self.format == "jsonl":
            self._jsonl[split] = open(self._tmp(split), "w", encoding="utf-8")  # noqa: SIM115
        else:
            pq = require("pyarrow.parquet", "parquet")
            self._parquet[split] = pq.ParquetWriter(str(self._tmp(split)), self._schema)

    def abort(self) -> None:
        """Close and delete the temporary files after a failure."""
        handles: Iterable[Any] = [*self._jsonl.values(), *self._parquet.values()]
        for handle in handles:
            try:
                handle.close()
            except Exception:  # cleanup after another failure; the first error matters
                pass
        for split in SPLITS:
            self._tmp(split).unlink(missing_ok=True)


def _line_encoder(columns: dict[str, str]) -> Callable[[dict[str, Any]], str]:
    """A function writing a row as one JSON object, the same text as ``json.dumps(row, ensure_ascii=False)``.

    Rows have a fixed layout, so composing the object from escaped strings is
    several times faster than the generic encoder, which matters for millions of rows.
    """
    escape = encode_basestring

    def messages(value: list[dict[str, str]]) -> str:
        return "[" + ", ".join(f'{{"role": {escape(m["role"])}, "content": {escape(m["content"])}}}' for m in value) + "]"

    def number(value: float) -> str:
        return json.dumps(float(value))

    encoders: dict[str, Callable[[Any], str]] = {
        TEXT: escape,
        MESSAGES: messages,
        BOOL: lambda value: "true" if value else "false",
        FLOAT: number,
        INPUT: lambda value: f'{{"messages": {messages(value["messages"])}}}',
    }
    parts = [(name, f"{escape(name)}: ", encoders[tag]) for name, tag in columns.items()]

    def encode(row: dict[str, Any]) -> str:
        return "{" + ", ".join(prefix + enc(row[name]) for name, prefix, enc in parts) + "}"

    return encode


def _arrow_type(pa: Any, tag: str) -> Any:
    messages = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return {
        TEXT: pa.string(),
        MESSAGES: messages,
        BOOL: pa.bool_(),
        FLOAT: pa.float64(),
        INPUT: pa.struct([("messages", messages)]),
    }[tag]
