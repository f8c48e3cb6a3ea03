"""The SQLite write gate: writers of one file pass one at a time, across threads, processes and fork."""

from __future__ import annotations

import multiprocessing
import os
import threading
from pathlib import Path

from rlhfkit._models import Interaction, RecordBatch
from rlhfkit.storage._sql_write_gate import WriteGate
from rlhfkit.storage.sql import SQLStorage


def _pass_gate_and_mark(database: str, marker: str) -> None:
    with WriteGate(database).held():
        Path(marker).write_text("passed")


def test_a_process_waits_at_the_gate_until_the_holder_leaves(tmp_path: Path) -> None:
    """While this process holds the gate, another process cannot pass; once released it does."""
    database, marker = str(tmp_path / "rlhf.db"), tmp_path / "passed"
    gate = WriteGate(database)
    process = multiprocessing.get_context("spawn").Process(target=_pass_gate_and_mark, args=(database, str(marker)))
    with gate.held():
        process.start()
        process.join(timeout=2)
        assert process.is_alive() and not marker.exists()
    process.join(timeout=60)
    assert process.exitcode == 0 and marker.read_text() == "passed"
    assert Path(gate.path) == tmp_path / "rlhf.db-writer"
    gate.close()


def test_threads_pass_the_gate_one_at_a_time(tmp_path: Path) -> None:
    """Threads sharing one gate (one descriptor, where flock alone would let them all in) never overlap."""
    gate = WriteGate(str(tmp_path / "rlhf.db"))
    inside, most = [0], [0]
    count = threading.Lock()

    def writer() -> None:
        for _ in range(200):
            with gate.held():
                with count:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                with count:
                    inside[0] -= 1

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert most[0] == 1
    gate.close()


def test_a_forked_child_gets_a_gate_of_its_own(tmp_path: Path) -> None:
    """A child forked while the parent holds the gate waits for the parent, then passes (no inherited lock)."""
    gate = WriteGate(str(tmp_path / "rlhf.db"))
    marker = tmp_path / "child"
    with gate.held():
        pid = os.fork()
        if pid == 0:  # the child: exit status 0 only when it passed the gate
            try:
                with gate.held():
                    marker.write_text("passed")
            finally:
                os._exit(0 if marker.exists() else 1)
        threading.Event().wait(0.5)
        assert not marker.exists()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and marker.read_text() == "passed"
    gate.close()


def test_without_a_side_file_the_gate_lets_writers_through(tmp_path: Path) -> None:
    """When the side file cannot be created the gate is open (no error): SQLite's busy handler queues writers."""
    path = str(tmp_path / "missing-dir" / "rlhf.db")
    first, second = WriteGate(path), WriteGate(path)
    with first.held(), second.held():  # two holders at once: nothing to wait on
        pass
    assert not (tmp_path / "missing-dir").exists()


def test_storage_writes_go_through_the_gate_of_their_file(tmp_path: Path) -> None:
    """A SQLite file storage writes through its gate: while another holder has it, a write waits."""
    storage = SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
    storage.initialize()
    other = WriteGate(str(tmp_path / "rlhf.db"))
    done = threading.Event()

    def write() -> None:
        storage.write(RecordBatch(interactions=[Interaction(id="gated", prompt="p")]))
        done.set()

    with other.held():
        writer = threading.Thread(target=write)
        writer.start()
        assert not done.wait(0.5)
    writer.join(30)
    assert done.is_set() and storage.get_interaction("gated") is not None
    assert SQLStorage("sqlite://")._gate is None  # an in-memory database has one connection and no gate
    storage.close()
    other.close()
