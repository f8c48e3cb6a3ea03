"""Lossless delivery from RemoteStorage to a real collector (uvicorn + PostgreSQL), counted end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rlhfkit._models import Feedback, InteractionFilter, RecordBatch
from rlhfkit.errors import StorageError
from rlhfkit.storage.remote import RemoteStorage
from tests._servers import free_port
from tests.server import _fixtures
from tests.server._fixtures import Collector, Project
from tests.server._helpers import LostReplyProxy, batch, interactions

ROOT = str(Path(__file__).resolve().parents[1])

# The collector fixtures of tests/server, shared with this module.
pg_url = _fixtures.pg_url
pg_storage = _fixtures.pg_storage
_session_collector = _fixtures._session_collector
collector = _fixtures.collector
own_collector = _fixtures.own_collector
project = _fixtures.project


def _remote(url: str, project: Project, spool: Path, **kwargs: object) -> RemoteStorage:
    options: dict[str, object] = {"max_backoff_s": 0.3, "timeout_s": 5.0}
    options.update(kwargs)
    return RemoteStorage(url, api_key=project.key, spool_dir=spool, **options)  # type: ignore[arg-type]


def _stored(project: Project) -> int:
    return int(project.storage.count_interactions(InteractionFilter()))


def _run_script(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_records_arrive_after_the_collector_comes_back(own_collector: Collector, project: Project, tmp_path: Path) -> None:
    """The collector stopped for 3 s while the app keeps writing: every record arrives once it is back."""
    storage = _remote(own_collector.url, project, tmp_path / "spool")
    written = 0
    stop = threading.Event()

    def app() -> None:
        nonlocal written
        while not stop.is_set():
            storage.write(batch(10, "outage"))
            written += 10
            time.sleep(0.05)

    writer = threading.Thread(target=app)
    writer.start()
    time.sleep(0.5)
    own_collector.server.stop()
    time.sleep(3.0)
    assert storage.pending > 0  # records wait in the spool while the collector is down
    own_collector.restart()
    time.sleep(0.5)
    stop.set()
    writer.join()
    assert storage.close(timeout_s=30) == 0
    assert written > 0 and _stored(project) == written


_SPOOL_AND_DIE = """
import sys, time
from rlhfkit.storage.remote import RemoteStorage
from tests.server._helpers import batch
storage = RemoteStorage(sys.argv[1], api_key=sys.argv[2], spool_dir=sys.argv[3], max_backoff_s=0.3)
for _ in range(5):
    storage.write(batch(20, "killed"))
print("spooled", storage.pending, flush=True)
time.sleep(60)
"""

_DELIVER = """
import sys
from rlhfkit.storage.remote import RemoteStorage
storage = RemoteStorage(sys.argv[1], api_key=sys.argv[2], spool_dir=sys.argv[3], max_backoff_s=0.3)
print("found", storage.pending, flush=True)
print("remaining", storage.close(timeout_s=30), flush=True)
"""


def test_spool_of_a_killed_process_is_delivered_by_the_next(collector: Collector, project: Project, tmp_path: Path) -> None:
    """An app SIGKILLed with 100 records in its spool: a new process finds them and delivers all of them."""
    dead_url = f"http://127.0.0.1:{free_port()}"
    spool = str(tmp_path / "spool")
    first = _run_script(_SPOOL_AND_DIE, dead_url, project.key, spool)
    assert first.stdout is not None
    line = first.stdout.readline()
    assert line.split() == ["spooled", "100"], line + (first.stderr.read() if first.poll() is not None else "")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert _stored(project) == 0
    second = _run_script(_DELIVER, collector.url, project.key, spool)
    out, err = second.communicate(timeout=60)
    assert out.split() == ["found", "100", "remaining", "0"], err
    assert _stored(project) == 100


def test_batch_whose_reply_was_lost_is_stored_once(collector: Collector, project: Project, tmp_path: Path) -> None:
    """The collector stores a batch but its reply is lost: the sender retries and the records are stored once."""
    proxy = LostReplyProxy(collector.server.port, drops=1)
    try:
        storage = _remote(proxy.url, project, tmp_path / "spool")
        records = batch(25, "lost-reply")
        storage.write(records)
        assert storage.close(timeout_s=30) == 0
    finally:
        proxy.close()
    assert proxy.dropped == 1
    ids = [i.id for i in records.interactions]
    assert [collector.faults.delivered[i] for i in ids] == [2] * 25  # the collector saw the batch twice
    assert _stored(project) == 25


_SEND_MANY = """
import sys
from rlhfkit.storage.remote import RemoteStorage
from tests.server._helpers import batch
storage = RemoteStorage(sys.argv[1], api_key=sys.argv[2], spool_dir=sys.argv[3], max_backoff_s=0.3)
for _ in range(10):
    storage.write(batch(20, sys.argv[4]))
print("remaining", storage.close(timeout_s=60), flush=True)
"""


def test_three_processes_sending_at_once_deliver_everything_once(
    collector: Collector, project: Project, tmp_path: Path
) -> None:
    """Three processes on one spool directory send 200 records each: 600 arrive, none delivered twice."""
    spool = str(tmp_path / "spool")
    procs = [_run_script(_SEND_MANY, collector.url, project.key, spool, f"proc{n}") for n in range(3)]
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert out.split() == ["remaining", "0"], err
    assert _stored(project) == 600
    assert len(collector.faults.delivered) == 600
    assert set(collector.faults.delivered.values()) == {1}


def test_429_retry_after_is_honoured(collector: Collector, project: Project, tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 delays the next attempt by at least a second, then the batch is delivered."""
    collector.faults.scripted = [(429, {"Retry-After": "1"})]
    storage = _remote(collector.url, project, tmp_path / "spool")
    storage.write(batch(10, "throttled"))
    assert storage.close(timeout_s=20) == 0
    first, second = collector.faults.attempts[:2]
    assert second - first >= 0.9
    assert _stored(project) == 10 and storage.failed_uploads == 0


def test_5xx_replies_are_retried(collector: Collector, project: Project, tmp_path: Path) -> None:
    """Three 5xx replies in a row are retried with backoff; the batch then arrives, once."""
    collector.faults.scripted = [(503, {}), (500, {}), (502, {})]
    storage = _remote(collector.url, project, tmp_path / "spool")
    records = batch(10, "flaky")
    storage.write(records)
    assert storage.close(timeout_s=20) == 0
    assert len(collector.faults.attempts) == 4
    assert _stored(project) == 10
    assert {collector.faults.delivered[i.id] for i in records.interactions} == {1}


def test_timed_out_request_is_retried(collector: Collector, project: Project, tmp_path: Path) -> None:
    """A request that outlives the client's timeout is retried; the records are stored once."""
    collector.faults.stalls = [2.0]
    storage = _remote(collector.url, project, tmp_path / "spool", timeout_s=0.5)
    records = batch(10, "slow")
    storage.write(records)
    assert storage.close(timeout_s=20) == 0
    assert len(collector.faults.attempts) >= 2
    assert _stored(project) == 10


def test_refused_batch_counts_as_failed_upload_and_is_kept(
    collector: Collector, project: Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 422 is not retried: counted in failed_uploads, logged with the server's message, kept under failed/."""
    storage = _remote(collector.url, project, tmp_path / "spool")
    orphan = Feedback(interaction_id="never-logged", type="binary", data={"type": "binary", "value": "thumbs_up"})
    storage.write(RecordBatch(feedback=[orphan]))
    storage.write(batch(5, "after"))
    with caplog.at_level("ERROR", logger="rlhfkit"):
        assert storage.close(timeout_s=20) == 0
    assert storage.failed_uploads == 1
    assert len(collector.faults.attempts) == 2  # the refused batch was not retried
    assert _stored(project) == 5
    kept = list((tmp_path / "spool" / "failed").iterdir())
    assert len(kept) == 1 and b"never-logged" in kept[0].read_bytes()
    assert any("never-logged" in r.getMessage() and "422" in r.getMessage() for r in caplog.records)


def test_flush_returns_the_undelivered_count_when_the_collector_is_down(project: Project, tmp_path: Path) -> None:
    """With nothing listening, flush(0.5) and close(0.5) return (without hanging) the 30 records left."""
    storage = _remote(f"http://127.0.0.1:{free_port()}", project, tmp_path / "spool")
    for _ in range(3):
        storage.write(batch(10, "down"))
    assert storage.flush(timeout_s=0.5) == 30
    assert storage.close(timeout_s=0.5) == 30
    assert len(list((tmp_path / "spool").glob("p-*/*.batch"))) == 3  # kept for the next process


def test_full_spool_refuses_loudly_and_keeps_what_it_has(project: Project, tmp_path: Path) -> None:
    """A full spool raises StorageError and counts spool_full_drops; the spooled records stay."""
    storage = _remote(f"http://127.0.0.1:{free_port()}", project, tmp_path / "spool", max_spool_mb=0.01)
    storage.write(batch(5, "fits"))
    with pytest.raises(StorageError, match="full"):
        for _ in range(100):
            storage.write(batch(20, "overflow"))
    assert storage.spool_full_drops == 20
    assert storage.close(timeout_s=0.2) == storage.pending > 0


def test_compressed_delivery(collector: Collector, project: Project, tmp_path: Path) -> None:
    """With compress=True batches go out gzip-compressed and arrive intact."""
    storage = _remote(collector.url, project, tmp_path / "spool", compress=True)
    storage.write(batch(40, "gzip"))
    assert storage.close(timeout_s=20) == 0
    assert _stored(project) == 40


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_fork_child_sends_its_own_records_and_not_the_parents(
    collector: Collector, project: Project, tmp_path: Path
) -> None:
    """After fork the child delivers its records with its own sender; the parent's are delivered once, by the parent."""
    storage = _remote(collector.url, project, tmp_path / "spool")
    collector.faults.gate.clear()  # hold deliveries so the parent has records in flight at fork time
    before = batch(10, "before-fork")
    storage.write(before)
    time.sleep(0.3)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            child = batch(10, "child")
            storage.write(child)
            code = 0 if storage.close(timeout_s=20) == 0 else 2
        finally:
            os._exit(code)
    collector.faults.gate.set()
    after = batch(10, "after-fork")
    storage.write(after)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage.close(timeout_s=20) == 0
    assert _stored(project) == 30
    # The collector is shared by the session: count only this project's records.
    ours = [i.id for i in project.storage.iter_interactions(InteractionFilter())]
    assert [collector.faults.delivered[i] for i in ours] == [1] * 30
    assert {i.id for i in before.interactions + after.interactions} <= set(ours)


def test_write_does_not_wait_for_the_network(project: Project, tmp_path: Path) -> None:
    """write() returns while the collector is unreachable: the records are only spooled."""
    storage = _remote(f"http://127.0.0.1:{free_port()}", project, tmp_path / "spool", timeout_s=30)
    storage.write(RecordBatch(interactions=interactions(3)))
    assert storage.pending == 3
    assert storage.close(timeout_s=0) == 3


def test_large_batch_is_split_under_the_body_limit(collector: Collector, project: Project, tmp_path: Path) -> None:
    """A 200-interaction batch of ~2 KB records with max_batch_bytes=64 KB goes out as several requests; all arrive."""
    storage = _remote(collector.url, project, tmp_path / "spool", max_batch_bytes=64 * 1024)
    records = RecordBatch(interactions=interactions(200, "big " + "x" * 2000))
    records.feedback = [
        Feedback(interaction_id=i.id, type="binary", data={"type": "binary", "value": "thumbs_up"})
        for i in records.interactions[-5:]
    ]
    storage.write(records)
    assert storage.close(timeout_s=30) == 0
    assert len(collector.faults.attempts) >= 6
    assert _stored(project) == 200 and project.storage.count_feedback() == 5


_LOG_AND_EXIT = """
import sys
from rlhfkit import StorageBackend, create_rlhf_logger
logger = create_rlhf_logger(
    backend=StorageBackend.REMOTE, batch_size=1000, batch_flush_interval_s=60,
    backend_config={"remote": {"url": sys.argv[1], "api_key": sys.argv[2], "spool_dir": sys.argv[3]}},
)
for n in range(50):
    logger.log_interaction(f"question {n}", f"answer {n}")
print("logged", flush=True)
"""


def test_records_still_queued_at_exit_are_delivered(collector: Collector, project: Project, tmp_path: Path) -> None:
    """An app that logs 50 interactions and exits without close(): all 50 reach the collector before it ends."""
    proc = _run_script(_LOG_AND_EXIT, collector.url, project.key, str(tmp_path / "spool"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.split() == ["logged"], err
    assert _stored(project) == 50
