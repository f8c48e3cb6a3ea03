"""LocalStorage: append-only JSONL files in a directory, optionally gzipped.

Layout of ``data_dir``::

    interactions-000001.jsonl      one JSON object per line
    feedback-000001.jsonl
    sessions-000001.jsonl
    interactions-000002.jsonl.gz   with compress=True: one gzip member per write

Files are never rewritten. Each storage opened on the directory writes to new
files (the next sequence number, created exclusively), so that a file torn
by a crash is never appended to; a file rotates when it reaches
``max_file_size_mb``. Every write is flushed to the operating system (not
fsynced): a process crash loses nothing written, a power loss may.

Reading back: every file, plain or gzipped, in sequence order. A torn last
line (or a truncated gzip member) is skipped with a warning. A repeated id
is ignored, the first copy wins; for sessions the last copy wins.

On open the files are scanned once to build an in-memory index (id → place
in a file, plus the few fields filters need), so ``get_*`` and
``missing_interactions`` do not scan; iteration reads records one by one in
id order from the files. The index costs roughly 200 bytes per record.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Collection, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import pydantic_core

from .._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    Interaction,
    InteractionFilter,
    RatingData,
    RecordBatch,
)
from ..analytics._stats import (
    compute_stats,
    feedback_targets,
    matches_feedback,
    matches_feedback_summary,
    matches_interaction,
    needs_feedback,
    paginate,
)
from ..errors import StorageError, ValidationError

__all__ = ["LocalStorage"]

logger = logging.getLogger("rlhfkit.storage.local")

_KINDS = ("interactions", "feedback", "sessions")
_FILE_NAME = re.compile(r"^(interactions|feedback|sessions)-(\d+)\.jsonl(\.gz)?$")
_FEEDBACK_DUMP: Any = {"data": {"weighted_score"}}
_INTERACTION_DUMP: Any = {"feedback_ids"}
_dump_interaction = Interaction.__pydantic_serializer__.to_json  # model_dump_json(...).encode() in one step


_Loc = tuple[int, int, int, int]
"""Where a record is: (file, byte offset of the line (plain) or of the gzip member, and for gzip the
line's span inside the decompressed member: start, end). A plain tuple of ints, not a NamedTuple:
the garbage collector stops tracking such tuples, so an index of millions of records costs the
collections nothing (it never untracks instances of tuple subclasses)."""


class _Writer:
    """The file one kind of record is appended to, rotated by size."""

    def __init__(self) -> None:
        self.handle: IO[bytes] | None = None
        self.file = -1
        self.size = 0


class LocalStorage:
    """Interactions, feedback and sessions in append-only JSONL files under ``data_dir``.

    ``compress`` writes gzip files; ``max_file_size_mb`` rotates a file once it
    reaches that size (when ``rotate_files``; otherwise one file per kind and
    open grows without bound).

    Example::

        storage = LocalStorage("./rlhf-data", compress=True)
        storage.initialize()
        storage.write(RecordBatch(interactions=[Interaction(prompt="hi", response="hello")]))
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        compress: bool = False,
        max_file_size_mb: float = 100.0,
        rotate_files: bool = True,
    ) -> None:
        if not max_file_size_mb > 0:
            raise ValidationError("max_file_size_mb", "must be positive", max_file_size_mb)
        self.data_dir = Path(data_dir)
        self.compress = compress
        self.max_file_size_mb = max_file_size_mb
        self.rotate_files = rotate_files
        self.skipped_lines = 0
        """Lines that could not be read (torn by a crash, or corrupt), counted since open."""
        self._lock = threading.RLock()
        self._files: list[Path] = []
        self._readers: dict[int, IO[bytes]] = {}
        self._members: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._writers = {kind: _Writer() for kind in _KINDS}
        self._i_loc: dict[str, _Loc] = {}
        self._i_model: dict[str, str | None] = {}
        self._i_by_session: dict[str, list[str]] = defaultdict(list)
        self._f_loc: dict[str, _Loc] = {}
        self._f_summary: dict[str, tuple[str, float | None]] = {}
        self._f_by_session: dict[str, list[str]] = defaultdict(list)
        self._targets: dict[str, list[str]] = defaultdict(list)
        self._sessions: dict[str, FeedbackSession] = {}
        self._opened = False
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    def initialize(self) -> None:
        """Create ``data_dir`` and index the files already there. Safe to call twice."""
        with self._lock:
            if self._opened:
                return
            self.data_dir.mkdir(parents=True, exist_ok=True)
            found = []
            for path in self.data_dir.iterdir():
                match = _FILE_NAME.match(path.name)
                if match:
                    found.append((int(match.group(2)), _KINDS.index(match.group(1)), path))
            for _seq, _kind, path in sorted(found):
                self._index_file(path)
            self._opened = True
            self._closed = False

    def close(self) -> None:
        """Close file handles. Safe to call twice; the storage may be initialised again."""
        with self._lock:
            for writer in self._writers.values():
                if writer.handle is not None:
                    writer.handle.close()
                    writer.handle = None
            for handle in self._readers.values():
                handle.close()
            self._readers.clear()
            self._members.clear()
            self._closed = True

    def _ensure_open(self) -> None:
        if not self._opened:
            self.initialize()

    # ------------------------------------------------------------------ reading files

    def _lines(self, file_no: int) -> Iterator[tuple[bytes, _Loc]]:
        """Every complete line of a file with its location; torn tails are skipped with a warning."""
        path = self._files[file_no]
        data = path.read_bytes()
        if not path.name.endswith(".gz"):
            pos = 0
            while pos < len(data):
                newline = data.find(b"\n", pos)
                if newline < 0:
                    self._skip(path, "a torn last line")
                    return
                yield data[pos:newline], (file_no, pos, 0, newline - pos)
                pos = newline + 1
            return
        pos = 0
        while pos < len(data):
            member, used, complete = self._decompress(data, pos)
            start = 0
            while start < len(member):
                newline = member.find(b"\n", start)
                if newline < 0:
                    break
                yield member[start:newline], (file_no, pos, start, newline)
                start = newline + 1
            if not complete or start < len(member):
                self._skip(path, "a truncated gzip member")
                return
            pos += used

    @staticmethod
    def _decompress(data: bytes, pos: int) -> tuple[bytes, int, bool]:
        """One gzip member at ``pos``: (its bytes as far as readable, bytes used, whether complete)."""
        inflater = zlib.decompressobj(wbits=31)
        try:
            member = inflater.decompress(data[pos:])
        except zlib.error:
            return b"", len(data) - pos, False
        used = len(data) - pos - len(inflater.unused_data)
        return member, used, inflater.eof

    def _skip(self, path: Path, what: str) -> None:
        self.skipped_lines += 1
        logger.warning("%s: skipped %s (left by an interrupted write)", path, what)

    def _index_file(self, path: Path) -> None:
        file_no = len(self._files)
        self._files.append(path)
        kind = _FILE_NAME.match(path.name).group(1)  # type: ignore[union-attr]
        for line, loc in self._lines(file_no):
            try:
                record = pydantic_core.from_json(line)
                if kind == "interactions":
                    self._index_interaction(record, loc)
                elif kind == "feedback":
                    self._index_feedback(Feedback.model_validate(record), loc)
                else:
                    session = FeedbackSession.model_validate(record)
                    self._sessions[session.id] = session
            except (ValueError, TypeError, KeyError) as exc:
                self.skipped_lines += 1
                logger.warning("%s: skipped an unreadable line: %s", path, exc)

    def _index_interaction(self, record: dict[str, Any], loc: _Loc) -> None:
        record_id = record["id"]
        if not isinstance(record_id, str) or not record.get("prompt"):
            raise ValueError("not an interaction")
        if record_id in self._i_loc:
            return
        self._i_loc[record_id] = loc
        self._i_model[record_id] = record.get("model")
        if record.get("session_id"):
            self._i_by_session[record["session_id"]].append(record_id)

    def _index_new_interactions(self, interactions: list[Interaction], locs: list[_Loc]) -> None:
        """Index interactions just written (none of them indexed yet): _index_interaction for many."""
        i_loc, i_model, by_session = self._i_loc, self._i_model, self._i_by_session
        for i, loc in zip(interactions, locs, strict=True):
            i_loc[i.id] = loc
            i_model[i.id] = i.model
            if i.session_id:
                by_session[i.session_id].append(i.id)

    def _index_feedback(self, fb: Feedback, loc: _Loc) -> None:
        if fb.id in self._f_loc:
            return
        self._f_loc[fb.id] = loc
        rating = fb.data.value if isinstance(fb.data, RatingData) else None
        self._f_summary[fb.id] = (fb.type.value, rating)
        if fb.session_id:
            self._f_by_session[fb.session_id].append(fb.id)
        for target in feedback_targets(fb):
            self._targets[target].append(fb.id)

    def _read(self, loc: _Loc) -> bytes:
        file, offset, start, end = loc
        path = self._files[file]
        if not path.name.endswith(".gz"):
            handle = self._readers.get(file)
            if handle is None:
                handle = self._readers[file] = open(path, "rb")  # noqa: SIM115 - kept open for reuse
            handle.seek(offset)
            return handle.read(end)
        key = (file, offset)
        member = self._members.get(key)
        if member is None:
            with open(path, "rb") as handle:
                handle.seek(offset)
                member = self._decompress(handle.read(), 0)[0]
            self._members[key] = member
            if len(self._members) > 8:
                self._members.popitem(last=False)
        return member[start:end]

    # ------------------------------------------------------------------ writes

    def _append(self, kind: str, lines: list[bytes]) -> list[_Loc]:
        """Append lines to the current file of ``kind``; return their locations."""
        writer = self._writers[kind]
        limit = self.max_file_size_mb * 1024 * 1024
        if writer.handle is None or (self.rotate_files and writer.size >= limit):
            self._new_file(kind, writer)
        assert writer.handle is not None
        payload = b"\n".join(lines) + b"\n"
        start = writer.size
        file = writer.file
        locs = []
        if self.compress:
            writer.handle.write(_gzip_member(payload))
            pos = 0
            for line in lines:
                size = len(line)
                locs.append((file, start, pos, pos + size))
                pos += size + 1
        else:
            writer.handle.write(payload)
            pos = start
            for line in lines:
                size = len(line)
                locs.append((file, pos, 0, size))
                pos += size + 1
        writer.handle.flush()
        writer.size = writer.handle.tell()
        return locs

    def _new_file(self, kind: str, writer: _Writer) -> None:
        if writer.handle is not None:
            writer.handle.close()
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        seq = 1 + max((int(m.group(2)) for p in self.data_dir.iterdir() if (m := _FILE_NAME.match(p.name))), default=0)
        for _ in range(1000):
            path = self.data_dir / f"{kind}-{seq:06d}{suffix}"
            try:
                writer.handle = open(path, "xb")  # noqa: SIM115 - the writer keeps it open
                break
            except FileExistsError:
                seq += 1
        else:  # pragma: no cover - a thousand concurrent creators
            raise StorageError(f"could not create a new file in {self.data_dir}")
        writer.file = len(self._files)
        writer.size = 0
        self._files.append(path)

    def write(self, batch: RecordBatch) -> None:
        """Append the batch; records whose id is already stored are skipped, sessions replaced."""
        with self._lock:
            self._ensure_open()
            try:
                seen: set[str] = set()
                interactions = []
                for i in batch.interactions:
                    if i.id not in self._i_loc and i.id not in seen:
                        seen.add(i.id)
                        interactions.append(i)
                if interactions:
                    lines = [_dump_interaction(i, exclude=_INTERACTION_DUMP) for i in interactions]
                    self._index_new_interactions(interactions, self._append("interactions", lines))
                seen.clear()
                feedback = []
                for f in batch.feedback:
                    if f.id not in self._f_loc and f.id not in seen:
                        seen.add(f.id)
                        feedback.append(f)
                if feedback:
                    lines = [f.model_dump_json(exclude=_FEEDBACK_DUMP).encode() for f in feedback]
                    for f, loc in zip(feedback, self._append("feedback", lines), strict=True):
                        self._index_feedback(f, loc)
                if batch.sessions:
                    self._append("sessions", [s.model_dump_json().encode() for s in batch.sessions])
                    for session in batch.sessions:
                        self._sessions[session.id] = session
            except OSError as exc:
                raise StorageError(f"could not write to {self.data_dir}: {exc}") from exc

    # ------------------------------------------------------------------ reads

    def _interaction(self, interaction_id: str) -> Interaction:
        interaction = Interaction.model_validate_json(self._read(self._i_loc[interaction_id]))
        interaction.feedback_ids = sorted(self._targets.get(interaction_id, ()))
        return interaction

    def _feedback(self, feedback_id: str) -> Feedback:
        return Feedback.model_validate_json(self._read(self._f_loc[feedback_id]))

    def get_interaction(self, interaction_id: str) -> Interaction | None:
        """The interaction with this id, ``feedback_ids`` filled, or None."""
        with self._lock:
            self._ensure_open()
            return self._interaction(interaction_id) if interaction_id in self._i_loc else None

    def get_feedback(self, feedback_id: str) -> Feedback | None:
        """The feedback with this id, or None."""
        with self._lock:
            self._ensure_open()
            return self._feedback(feedback_id) if feedback_id in self._f_loc else None

    def get_session(self, session_id: str) -> FeedbackSession | None:
        """The last written copy of the session, with the ids of its interactions and feedback, or None."""
        with self._lock:
            self._ensure_open()
            session = self._sessions.get(session_id)
            if session is None:
                return None
            interaction_ids = sorted(set(session.interaction_ids) | set(self._i_by_session.get(session_id, ())))
            feedback_ids = sorted(set(session.feedback_ids) | set(self._f_by_session.get(session_id, ())))
            return session.model_copy(update={"interaction_ids": interaction_ids, "feedback_ids": feedback_ids})

    def missing_interactions(self, interaction_ids: Collection[str]) -> set[str]:
        """Those of ``interaction_ids`` that are not stored."""
        with self._lock:
            self._ensure_open()
            return {iid for iid in interaction_ids if iid not in self._i_loc}

    def iter_interactions(self, filter: InteractionFilter) -> Iterator[Interaction]:
        """Interactions matching ``filter`` in id order, read one by one from the files."""
        with self._lock:
            self._ensure_open()
            order = sorted(self._i_loc)
        if filter.after_id is not None:
            order = order[_bisect_after(order, filter.after_id) :]
        wanted = None if filter.ids is None else set(filter.ids)
        models = None if filter.models is None else set(filter.models)
        plain = filter.model_copy(update=_NO_FEEDBACK_FIELDS)

        def matching() -> Iterator[Interaction]:
            for interaction_id in order:
                with self._lock:
                    if wanted is not None and interaction_id not in wanted:
                        continue
                    if models is not None and self._i_model.get(interaction_id) not in models:
                        continue
                    if needs_feedback(filter):
                        summary = [self._f_summary[f] for f in self._targets.get(interaction_id, ())]
                        if not matches_feedback_summary(summary, filter):
                            continue
                    interaction = self._interaction(interaction_id)
                if matches_interaction(interaction, plain):
                    yield interaction

        return paginate(matching(), filter.model_copy(update={"after_id": None}))

    def iter_feedback(self, filter: FeedbackFilter) -> Iterator[Feedback]:
        """Feedback matching ``filter`` in id order, read one by one from the files."""
        with self._lock:
            self._ensure_open()
            order = sorted(self._f_loc)
        if filter.after_id is not None:
            order = order[_bisect_after(order, filter.after_id) :]
        wanted = None if filter.ids is None else set(filter.ids)

        def matching() -> Iterator[Feedback]:
            for feedback_id in order:
                if wanted is not None and feedback_id not in wanted:
                    continue
                with self._lock:
                    if filter.types is not None and self._f_summary[feedback_id][0] not in filter.types:
                        continue
                    fb = self._feedback(feedback_id)
                    model = self._i_model.get(fb.interaction_id)
                if matches_feedback(fb, filter, model):
                    yield fb

        return paginate(matching(), filter.model_copy(update={"after_id": None}))

    def feedback_stats(self, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """Aggregates over interactions and feedback in [start_time, end_time), streamed from the files."""
        with self._lock:
            self._ensure_open()
            models = dict(self._i_model)
        return compute_stats(
            self.iter_interactions(InteractionFilter(start_time=start_time, end_time=end_time)),
            self.iter_feedback(FeedbackFilter(start_time=start_time, end_time=end_time)),
            start_time,
            end_time,
            model_of=models.get,
        )


_NO_FEEDBACK_FIELDS: dict[str, Any] = {"has_feedback": None, "feedback_types": None, "min_rating": None,
                                        "max_rating": None}  # fmt: skip


def _bisect_after(order: list[str], after_id: str) -> int:
    import bisect

    return bisect.bisect_right(order, after_id)


def _gzip_member(payload: bytes) -> bytes:
    """``payload`` as one complete gzip member."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    return compressor.compress(payload) + compressor.flush()
