"""SQLite checkpoints run in a background thread, not inside the writers' commits."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from rlhfkit._models import Interaction, RecordBatch
from rlhfkit.storage._sql_checkpoint import BACKSTOP_PAGES
from rlhfkit.storage.sql import SQLStorage


def _batch(start: int, n: int) -> RecordBatch:
    return RecordBatch(
        interactions=[
            Interaction(id=f"i{k:06d}", prompt=f"prompt {k} " + "x" * 500, response="answer " * 50)
            for k in range(start, start + n)
        ]
    )




def test_writes_are_checkpointed_in_the_background_and_all_read_back(tmp_path: Path) -> None:
    """Writers keep SQLite's own checkpoint only as a backstop; the thread copies the log meanwhile."""
    db = tmp_path / "rlhf.db"
    storage = SQLStorage(f"sqlite:///{db}")
    storage.initialize()
    with storage.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == BACKSTOP_PAGES
    for n in range(20):
        storage.write(_batch(n * 200, 200))
    checkpointer = storage._checkpointer
    assert checkpointer is not None
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert checkpointer.checkpoints > 0
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()
    storage.close()
    assert not thread.is_alive()
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM interactions").fetchone()[0] == 4_000
    conn.close()


def test_the_background_checkpoint_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    """Once written, the rows reach the database file itself (not only the log) without any commit doing it."""
    db = tmp_path / "rlhf.db"
    storage = SQLStorage(f"sqlite:///{db}")
    storage.initialize()
    checkpointer = storage._checkpointer
    assert checkpointer is not None
    empty = db.stat().st_size
    storage.write(_batch(0, 500))  # about 600 KB: far below the writers' own checkpoint
    deadline = time.monotonic() + 10
    while (db.stat().st_size < empty + 500_000 or not checkpointer.checkpoints) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.stat().st_size >= empty + 500_000
    assert checkpointer.checkpoints > 0
    storage.close()


def test_project_views_share_one_checkpointer_and_in_memory_databases_have_none(tmp_path: Path) -> None:
    """One thread per database engine, whatever the number of project views; none in memory."""
    storage = SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
    storage.initialize()
    view = storage.for_project("other")
    view.write(_batch(0, 10))
    storage.write(_batch(10, 10))
    assert view._checkpointer is storage._checkpointer
    view.close()
    storage.close()
    assert SQLStorage("sqlite://")._checkpointer is None
