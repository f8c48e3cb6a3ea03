"""The spool and sender of rlhfkit._delivery with an in-process sink: order, adoption, classification."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from rlhfkit._delivery import RetryLater, Sender, _retry_after
from rlhfkit.errors import ClosedError, DeliveryError


class RecordingSink:
    """Accepts bodies in order; can be told to fail transiently or refuse."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.down = threading.Event()
        self.refuse: set[bytes] = set()

    def send(self, body: bytes) -> None:
        if self.down.is_set():
            raise RetryLater("down")
        if body in self.refuse:
            raise DeliveryError("HTTP 400: bad batch", status_code=400)
        self.bodies.append(body)


def _sender(sink: RecordingSink, spool: Path, **kwargs: object) -> Sender:
    options: dict[str, object] = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "adopt_interval_s": 0.2}
    options.update(kwargs)
    return Sender(sink, spool, **options)  # type: ignore[arg-type]


def test_batches_are_delivered_in_the_order_they_were_submitted(tmp_path: Path) -> None:
    """Spooled while the sink is down, 50 batches are replayed in submission order once it is up."""
    sink = RecordingSink()
    sink.down.set()
    sender = _sender(sink, tmp_path)
    bodies = [f"batch-{n:03d}".encode() for n in range(50)]
    for body in bodies:
        sender.submit(body, records=2)
    assert sender.flush(timeout_s=0.2) == 100
    sink.down.clear()
    assert sender.close(timeout_s=10) == 0
    assert sink.bodies == bodies
    assert sender.delivered == 100


def test_a_later_sender_adopts_what_a_closed_one_left(tmp_path: Path) -> None:
    """Records left by a sender closed while the sink was down are delivered by the next sender on the directory."""
    down = RecordingSink()
    down.down.set()
    first = _sender(down, tmp_path)
    first.submit(b"left-1", records=3)
    first.submit(b"left-2", records=4)
    assert first.close(timeout_s=0.1) == 7
    sink = RecordingSink()
    second = _sender(sink, tmp_path)
    assert second.pending == 7
    assert second.close(timeout_s=10) == 0
    assert sink.bodies == [b"left-1", b"left-2"]
    assert [p.name for p in tmp_path.iterdir()] == ["failed"]


def test_a_live_senders_files_are_not_adopted(tmp_path: Path) -> None:
    """Two live senders on one directory never send each other's batches."""
    sink_a, sink_b = RecordingSink(), RecordingSink()
    sink_a.down.set()
    a = _sender(sink_a, tmp_path)
    a.submit(b"from-a", records=1)
    b = _sender(sink_b, tmp_path)
    b.submit(b"from-b", records=1)
    assert b.flush(timeout_s=5) == 0
    assert b.pending == 0 and a.pending == 1
    sink_a.down.clear()
    assert a.close(timeout_s=5) == 0
    assert b.close(timeout_s=5) == 0
    assert (sink_a.bodies, sink_b.bodies) == ([b"from-a"], [b"from-b"])


def test_refused_batch_is_moved_to_failed_and_the_rest_continues(tmp_path: Path) -> None:
    """A DeliveryError moves the batch to failed/ and counts failed_uploads; later batches still go out."""
    sink = RecordingSink()
    sink.refuse.add(b"poison")
    sender = _sender(sink, tmp_path)
    sender.submit(b"poison", records=5)
    sender.submit(b"fine", records=1)
    assert sender.close(timeout_s=10) == 0
    assert (sender.failed_uploads, sender.failed_batches, sink.bodies) == (5, 1, [b"fine"])
    assert [p.read_bytes() for p in (tmp_path / "failed").iterdir()] == [b"poison"]


def test_partial_writes_of_a_dead_process_are_discarded_and_complete_ones_kept(tmp_path: Path) -> None:
    """An unlocked directory with a complete batch and a torn temporary file: the batch is sent, the fragment dropped."""
    dead = tmp_path / "p-999999-deadbeef"
    dead.mkdir()
    (dead / ".lock").touch()
    (dead / "00000000000000000001-000000000000000001-2.batch").write_bytes(b"complete")
    (dead / ".00000000000000000002-000000000000000002-2.batch.tmp").write_bytes(b"torn")
    sink = RecordingSink()
    sender = _sender(sink, tmp_path)
    assert sender.pending == 2
    assert sender.close(timeout_s=10) == 0
    assert sink.bodies == [b"complete"]
    assert not dead.exists()


def test_closed_sender_refuses_new_batches(tmp_path: Path) -> None:
    """submit after close raises ClosedError rather than accepting records nobody will send."""
    sender = _sender(RecordingSink(), tmp_path)
    sender.close(timeout_s=1)
    with pytest.raises(ClosedError):
        sender.submit(b"late", records=1)


def test_retry_after_header_forms() -> None:
    """Retry-After is read as seconds or as an HTTP date; garbage is ignored."""
    assert _retry_after("3") == 3.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert _retry_after("soon") is None
    assert _retry_after(None) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_child_after_fork_gets_its_own_directory(tmp_path: Path) -> None:
    """After fork the child's batches land in a new directory and the parent's stay where they were."""
    sink = RecordingSink()
    sink.down.set()
    sender = _sender(sink, tmp_path)
    sender.submit(b"parent", records=1)
    parent_dir = sender.dir
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sender.submit(b"child", records=1)
            ok = sender.dir != parent_dir and sender.pending == 1 and (sender.dir / ".lock").exists()
            os.write(write, str(sender.dir).encode())
            code = 0 if ok else 3
        finally:
            os._exit(code)
    os.close(write)
    child_dir = Path(os.read(read, 4096).decode())
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sender.pending == 1
    assert [p.read_bytes() for p in parent_dir.glob("*.batch")] == [b"parent"]
    assert [p.read_bytes() for p in child_dir.glob("*.batch")] == [b"child"]  # the dead child's batch, kept
    sink.down.clear()
    sender.close(timeout_s=10)
    later = _sender(sink, tmp_path)  # a later sender adopts whatever is left, the dead child's batch included
    assert later.close(timeout_s=10) == 0
    assert sorted(sink.bodies) == [b"child", b"parent"]


def test_abandoned_half_claimed_directories_are_removed(tmp_path: Path) -> None:
    """A directory left by a sender that died while claiming it (old, unlocked) is removed; a young one is left."""
    old = tmp_path / ".new-1-old"
    old.mkdir()
    (old / ".lock").touch()
    os.utime(old, (0, 0))
    young = tmp_path / ".new-2-young"
    young.mkdir()
    sender = _sender(RecordingSink(), tmp_path)
    assert not old.exists() and young.exists()
    sender.close(timeout_s=1)
