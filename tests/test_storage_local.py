"""LocalStorage: what differs from the contract (files, rotation, gzip, crashes)."""

from __future__ import annotations

import gzip
import json
import logging
import secrets
import threading
from pathlib import Path

import pytest

from rlhfkit._models import (
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    Interaction,
    InteractionFilter,
    RecordBatch,
)
from rlhfkit.errors import ValidationError
from rlhfkit.storage.local import LocalStorage


def _batch(start: int, n: int) -> RecordBatch:
    interactions = [Interaction(id=f"i{k:05d}", prompt=f"prompt {k} {secrets.token_hex(100)}",
                                response="r") for k in range(start, start + n)]
    feedback = [
        Feedback(id=f"f{k:05d}", interaction_id=f"i{k:05d}", type="rating", data={"type": "rating", "value": 1 + k % 5})
        for k in range(start, start + n)
    ]
    return RecordBatch(interactions=interactions, feedback=feedback)


def _open(path: Path, **options: object) -> LocalStorage:
    storage = LocalStorage(path, **options)  # type: ignore[arg-type]
    storage.initialize()
    return storage


def test_gzip_files_rotate_and_are_all_read_back_after_restart(tmp_path: Path) -> None:
    """With compress and a small max size, several .gz files appear; a restart reads every record."""
    storage = _open(tmp_path, compress=True, max_file_size_mb=0.01)
    for start in range(0, 600, 50):
        storage.write(_batch(start, 50))
    storage.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert all(name.endswith(".jsonl.gz") for name in files)
    assert len([n for n in files if n.startswith("interactions-")]) >= 3
    reopened = _open(tmp_path, compress=True, max_file_size_mb=0.01)
    assert [i.id for i in reopened.iter_interactions(InteractionFilter())] == [f"i{k:05d}" for k in range(600)]
    assert reopened.get_interaction("i00599").feedback_ids == ["f00599"]
    assert reopened.feedback_stats().rating.count == 600
    assert reopened.skipped_lines == 0


def test_gzip_files_are_readable_by_standard_tools(tmp_path: Path) -> None:
    """Each write appends a whole gzip member, so gzip.open reads the file line by line."""
    storage = _open(tmp_path, compress=True)
    storage.write(_batch(0, 3))
    storage.write(_batch(3, 2))
    (path,) = tmp_path.glob("interactions-*.jsonl.gz")
    with gzip.open(path, "rt") as handle:
        rows = [json.loads(line) for line in handle]
    assert [r["id"] for r in rows] == ["i00000", "i00001", "i00002", "i00003", "i00004"]


def test_plain_files_rotate_at_max_file_size(tmp_path: Path) -> None:
    """Without compression, files also rotate; rotate_files=False keeps one file per kind."""
    storage = _open(tmp_path / "a", max_file_size_mb=0.005)
    for start in range(0, 100, 10):
        storage.write(_batch(start, 10))
    assert len(list((tmp_path / "a").glob("interactions-*.jsonl"))) > 2
    storage = _open(tmp_path / "b", max_file_size_mb=0.005, rotate_files=False)
    for start in range(0, 100, 10):
        storage.write(_batch(start, 10))
    assert len(list((tmp_path / "b").glob("interactions-*.jsonl"))) == 1


def test_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A line cut short by a crash is skipped with a warning; the other records read back."""
    storage = _open(tmp_path)
    storage.write(_batch(0, 5))
    storage.close()
    (path,) = tmp_path.glob("interactions-*.jsonl")
    with open(path, "ab") as handle:
        handle.write(b'{"id": "i99999", "prompt": "cut he')
    with caplog.at_level(logging.WARNING, logger="rlhfkit"):
        reopened = _open(tmp_path)
    assert [i.id for i in reopened.iter_interactions(InteractionFilter())] == [f"i{k:05d}" for k in range(5)]
    assert reopened.skipped_lines == 1
    assert any("torn" in r.getMessage() for r in caplog.records)
    reopened.write(_batch(5, 1))
    reopened.close()
    assert len(list(_open(tmp_path).iter_interactions(InteractionFilter()))) == 6


def test_truncated_gzip_member_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A gzip member cut short by a crash loses only the lines it did not finish."""
    storage = _open(tmp_path, compress=True)
    storage.write(_batch(0, 4))
    storage.write(_batch(4, 4))
    storage.close()
    (path,) = tmp_path.glob("interactions-*.jsonl.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with caplog.at_level(logging.WARNING, logger="rlhfkit"):
        reopened = _open(tmp_path, compress=True)
    got = [i.id for i in reopened.iter_interactions(InteractionFilter())]
    assert got[:4] == ["i00000", "i00001", "i00002", "i00003"] and len(got) < 8
    assert reopened.skipped_lines == 1
    assert any("gzip" in r.getMessage() for r in caplog.records)


def test_corrupt_line_in_the_middle_is_skipped(tmp_path: Path) -> None:
    """A garbage line is skipped; the lines after it still read."""
    storage = _open(tmp_path)
    storage.write(_batch(0, 2))
    storage.close()
    (path,) = tmp_path.glob("interactions-*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"not json\n" + lines[1])
    assert [i.id for i in _open(tmp_path).iter_interactions(InteractionFilter())] == ["i00000", "i00001"]


def test_duplicate_ids_on_disk_first_wins_and_last_session_wins(tmp_path: Path) -> None:
    """Two storages writing one directory: a repeated record keeps its first copy, a session its last."""
    first, second = _open(tmp_path), _open(tmp_path)
    first.write(RecordBatch(interactions=[Interaction(id="a", prompt="p", response="first")],
                            sessions=[FeedbackSession(id="s", metadata={"v": 1})]))  # fmt: skip
    second.write(RecordBatch(interactions=[Interaction(id="a", prompt="p", response="second")],
                             sessions=[FeedbackSession(id="s", metadata={"v": 2})]))  # fmt: skip
    first.close()
    second.close()
    reopened = _open(tmp_path)
    assert [i.response for i in reopened.iter_interactions(InteractionFilter())] == ["first"]
    assert reopened.get_session("s").metadata == {"v": 2}


def test_each_open_writes_to_new_files(tmp_path: Path) -> None:
    """A reopened storage never appends to a file an earlier process wrote (it may be torn)."""
    storage = _open(tmp_path)
    storage.write(_batch(0, 1))
    storage.close()
    storage = _open(tmp_path)
    storage.write(_batch(1, 1))
    storage.close()
    assert sorted(p.name for p in tmp_path.glob("interactions-*")) == ["interactions-000001.jsonl",
                                                                       "interactions-000003.jsonl"]  # fmt: skip


def test_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Eight threads writing 50 batches each: every record is stored once."""
    storage = _open(tmp_path, compress=True, max_file_size_mb=0.05)

    def work(t: int) -> None:
        for b in range(50):
            storage.write(_batch(t * 1000 + b * 2, 2))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    storage.close()
    reopened = _open(tmp_path, compress=True)
    assert len(list(reopened.iter_interactions(InteractionFilter()))) == 800
    assert len(list(reopened.iter_feedback(FeedbackFilter()))) == 800


def test_max_file_size_must_be_positive(tmp_path: Path) -> None:
    """A zero or negative max_file_size_mb is refused, naming the field."""
    with pytest.raises(ValidationError) as info:
        LocalStorage(tmp_path, max_file_size_mb=0)
    assert info.value.field == "max_file_size_mb"


@pytest.mark.parametrize("compress", [False, True])
def test_written_lines_are_the_models_json_and_index_the_same_as_a_reopen(tmp_path: Path, compress: bool) -> None:
    """Each line is model_dump_json without feedback_ids; the index built on write equals the one built on open."""
    batch = _batch(0, 30)
    batch.interactions[3].session_id = "s1"
    batch.interactions[7].session_id = "s1"
    storage = _open(tmp_path, compress=compress)
    storage.write(batch)
    storage.write(_batch(0, 5))  # ids already stored: skipped
    storage.close()
    (path,) = tmp_path.glob("interactions-*")
    data = gzip.decompress(path.read_bytes()) if compress else path.read_bytes()
    expected = [i.model_dump_json(exclude={"feedback_ids"}).encode() for i in batch.interactions]
    assert data.split(b"\n") == [*expected, b""]
    written = _open(tmp_path / "again", compress=compress)
    written.write(batch)
    reopened = _open(tmp_path, compress=compress)
    for name in ("_i_model", "_i_by_session"):
        assert getattr(written, name) == getattr(reopened, name)
    assert [i.model_dump() for i in written.iter_interactions(InteractionFilter())] == [
        i.model_dump() for i in reopened.iter_interactions(InteractionFilter())
    ]


@pytest.mark.parametrize("compress", [False, True])
def test_the_index_of_record_locations_costs_the_garbage_collector_nothing(tmp_path: Path, compress: bool) -> None:
    """Locations written or read back at open are plain tuples of ints: after a collection they are untracked."""
    import gc

    from rlhfkit._models import RecordBatch

    storage = LocalStorage(data_dir=tmp_path, compress=compress)
    storage.initialize()
    storage.write(RecordBatch(interactions=[Interaction(id=f"i{k}", prompt="p") for k in range(50)]))
    storage.close()
    reopened = LocalStorage(data_dir=tmp_path, compress=compress)
    reopened.initialize()
    reopened.write(RecordBatch(interactions=[Interaction(id=f"j{k}", prompt="p") for k in range(50)]))
    gc.collect()
    locations = list(reopened._i_loc.values())
    assert len(locations) == 100 and not any(gc.is_tracked(loc) for loc in locations)
    assert reopened.get_interaction("i7") is not None and reopened.get_interaction("j49") is not None
    reopened.close()
