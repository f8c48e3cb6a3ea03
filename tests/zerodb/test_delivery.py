"""Delivery to ZeroDB through the shared sender: faults of the emulator, records counted end to end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from rlhfkit._models import Interaction, InteractionFilter, RecordBatch, new_id
from rlhfkit.storage.zerodb import ZeroDBStorage
from tests._servers import free_port
from tests.zerodb.emulator import EmulatorServer

Make = Callable[..., ZeroDBStorage]


def batch(n: int, tag: str = "t") -> RecordBatch:
    """``n`` interactions with fresh ids."""
    return RecordBatch(interactions=[Interaction(id=new_id(), prompt=f"{tag} {i}", response="r") for i in range(n)])


def stored_ids(server: EmulatorServer, project: str, table: str = "rlhf_feedback") -> Counter[str]:
    """How many rows the emulator holds per record id."""
    return Counter(row["row_data"]["id"] for row in server.emulator.rows(project, table))


def assert_stored_once(server: EmulatorServer, project: str, written: list[RecordBatch]) -> None:
    """Every written record is stored, exactly once, and nothing else is."""
    expected = {i.id for b in written for i in b.interactions}
    counts = stored_ids(server, project)
    assert set(counts) == expected
    assert max(counts.values()) == 1


def test_429_storm_with_retry_after_is_ridden_out(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """Thirty 429s with Retry-After: 0.05 are waited out as asked (not with the 30 s backoff); all rows land once."""
    shared.emulator.fail_next(30, 429, route="insert_row", retry_after="0.05", detail="Too many requests")
    storage = make_storage(shared, project, initial_backoff_s=30.0, max_backoff_s=30.0)
    written = [batch(10, f"storm{n}") for n in range(5)]
    for b in written:
        storage.write(b)
    assert storage.flush(timeout_s=20) == 0
    assert shared.emulator.faulted["insert_row"] == 30
    assert_stored_once(shared, project, written)
    assert (storage.delivered, storage.failed_uploads) == (50, 0)


def test_5xx_on_every_kind_of_request_is_retried(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """500s and 503s on table creation, id look-ups and inserts are retried until every row is stored once."""
    emulator = shared.emulator
    emulator.fail_next(2, 503, route="create_table")
    emulator.fail_next(3, 500, route="query")
    emulator.fail_next(12, 502, route="insert_row")
    storage = make_storage(shared, project)
    written = [batch(7, f"five{n}") for n in range(4)]
    for b in written:
        storage.write(b)
    assert storage.flush(timeout_s=20) == 0
    assert (emulator.faulted["create_table"], emulator.faulted["query"], emulator.faulted["insert_row"]) == (2, 3, 12)
    assert_stored_once(shared, project, written)
    assert storage.failed_uploads == 0


def test_timed_out_inserts_whose_reply_was_lost_are_stored_once(
    own_server: EmulatorServer, project: str, make_storage: Make
) -> None:
    """Inserts stored by the service but answered after the client's timeout are not inserted again on retry."""
    own_server.emulator.slow_next_inserts(6, seconds=1.0)
    storage = make_storage(own_server, project, timeout_s=0.3)
    written = [batch(20, "slow")]
    storage.write(written[0])
    assert storage.flush(timeout_s=20) == 0
    assert own_server.emulator.calls["insert_row"] >= 20
    assert_stored_once(own_server, project, written)
    assert storage.delivered == 20 and storage.failed_uploads == 0


def test_emulator_restarted_mid_run_loses_nothing(own_server: EmulatorServer, project: str, make_storage: Make) -> None:
    """The service goes away while the app keeps writing: records wait in the spool and all arrive once it is back."""
    storage = make_storage(own_server, project, max_backoff_s=0.2)
    written: list[RecordBatch] = []
    stop = threading.Event()

    def app() -> None:
        while not stop.is_set() and len(written) < 200:
            b = batch(5, "outage")
            storage.write(b)
            written.append(b)
            time.sleep(0.02)

    writer = threading.Thread(target=app)
    writer.start()
    time.sleep(0.3)
    own_server.stop()
    time.sleep(1.0)
    assert storage.pending > 0  # the service is down: records wait in the spool
    own_server.start()
    time.sleep(0.3)
    stop.set()
    writer.join()
    assert storage.close(timeout_s=30) == 0
    assert_stored_once(own_server, project, written)


def test_writes_while_unreachable_are_spooled_and_replayed_by_the_next_storage(
    shared: EmulatorServer, project: str, make_storage: Make, tmp_path: Path
) -> None:
    """write() never waits on the network; what a closed storage left in the spool is sent by the next one."""
    down = make_storage(shared, project, base_url=f"http://127.0.0.1:{free_port()}")
    written = [batch(10, f"down{n}") for n in range(10)]
    for b in written:
        down.write(b)
    assert down.pending == 100
    assert down.flush(timeout_s=0.2) == 100
    assert down.close(timeout_s=0) == 100
    up = make_storage(shared, project)
    assert up.flush(timeout_s=20) == 0
    assert_stored_once(shared, project, written)


def test_wrong_key_counts_every_record_as_a_failed_upload_with_the_detail(
    shared: EmulatorServer, project: str, make_storage: Make, tmp_path: Path
) -> None:
    """A 401 is not retried: the records count as failed uploads, the error carries ZeroDB's detail, the batch is kept."""
    storage = make_storage(shared, project, api_key="not-the-key")
    storage.write(batch(4, "a"))
    storage.write(batch(3, "b"))
    assert storage.flush(timeout_s=10) == 0
    assert (storage.failed_uploads, storage.delivered) == (7, 0)
    assert storage.last_error is not None and "401" in storage.last_error and "Invalid API key" in storage.last_error
    assert len(list((tmp_path / "spool" / "failed").glob("*.batch"))) == 2
    assert stored_ids(shared, project) == Counter()


def test_rows_refused_one_by_one_are_counted_and_the_others_stored(
    shared: EmulatorServer, project: str, make_storage: Make
) -> None:
    """Two rows of a batch of ten get 422: two failed uploads, eight delivered and stored."""
    shared.emulator.fail_next(2, 422, route="insert_row", detail="row_data too large")
    storage = make_storage(shared, project)
    storage.write(batch(10, "partial"))
    assert storage.flush(timeout_s=10) == 0
    assert (storage.failed_uploads, storage.delivered) == (2, 8)
    assert "row_data too large" in (storage.last_error or "")
    assert sum(stored_ids(shared, project).values()) == 8


def test_row_requests_in_flight_are_bounded(own_server: EmulatorServer, project: str, make_storage: Make) -> None:
    """With max_in_flight=3, the service never sees more than three inserts at once, yet sees several."""
    own_server.emulator.insert_delay_s = 0.05
    storage = make_storage(own_server, project, max_in_flight=3)
    written = [batch(30, "bounded")]
    storage.write(written[0])
    assert storage.flush(timeout_s=20) == 0
    assert 2 <= own_server.emulator.max_in_flight <= 3
    assert_stored_once(own_server, project, written)


def test_table_is_created_once_and_an_existing_table_is_reused(
    shared: EmulatorServer, project: str, make_storage: Make, tmp_path: Path
) -> None:
    """The first delivery creates the table; a second storage finds it exists (400) and carries on."""
    before = shared.emulator.calls["create_table"]
    first = make_storage(shared, project, table_name="events")
    first.write(batch(2, "one"))
    assert first.flush(timeout_s=10) == 0
    second = make_storage(shared, project, table_name="events", spool_dir=tmp_path / "other")
    second.write(batch(3, "two"))
    assert second.flush(timeout_s=10) == 0
    assert shared.emulator.calls["create_table"] - before == 2
    assert sum(stored_ids(shared, project, "events").values()) == 5
    assert second.failed_uploads == 0


def test_reads_past_the_in_memory_bound_fetch_their_page_by_id(
    shared: EmulatorServer, project: str, make_storage: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When more records match than a read holds in memory, it keeps ids only and still returns the right page."""
    from rlhfkit.storage import zerodb

    storage = make_storage(shared, project)
    records = [Interaction(id=f"h{n:03d}", prompt=f"p{n}", response="r") for n in range(30)]
    storage.write(RecordBatch(interactions=list(reversed(records))))
    assert storage.flush(timeout_s=10) == 0
    monkeypatch.setattr(zerodb, "_HOLD_ROWS", 4)
    page = list(storage.iter_interactions(InteractionFilter(offset=5, limit=12)))
    assert [i.id for i in page] == [f"h{n:03d}" for n in range(5, 17)]
    assert page[0] == records[5]
    assert shared.emulator.calls["query"] > 0


def test_a_row_that_is_not_a_record_is_skipped_on_read(
    shared: EmulatorServer, project: str, make_storage: Make
) -> None:
    """A row someone else put in the table with a record_type but an invalid body does not break reads."""
    storage = make_storage(shared, project)
    storage.write(batch(2, "ok"))
    storage.write(RecordBatch())
    assert storage.flush(timeout_s=10) == 0
    with shared.emulator.lock:
        rows = shared.emulator.tables[(project, "rlhf_feedback")]
        rows["x"] = {"row_id": "x", "row_data": {"record_type": "interaction", "id": "bad", "prompt": ""}}
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 2


def test_fork_child_sends_its_own_records_and_the_parents_are_sent_once(
    own_server: EmulatorServer, project: str, make_storage: Make
) -> None:
    """After os.fork the child delivers its records on its own connections; the parent's batch in flight lands once."""
    import os

    own_server.emulator.insert_delay_s = 0.05  # the parent's batch is still being sent when the process forks
    storage = make_storage(own_server, project, max_in_flight=2)
    before, child, after = batch(10, "before-fork"), batch(10, "child"), batch(10, "after-fork")
    storage.write(before)
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            storage.write(child)
            code = 0 if storage.close(timeout_s=20) == 0 else 2
        finally:
            os._exit(code)
    storage.write(after)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert storage.close(timeout_s=20) == 0
    assert_stored_once(own_server, project, [before, child, after])


def test_refused_batches_are_delivered_once_after_the_key_is_fixed(
    shared: EmulatorServer, project: str, make_storage: Make
) -> None:
    """Batches refused for a wrong key (one also half stored) are requeued by retry_failed and land once."""
    wrong = make_storage(shared, project, api_key="not-the-key")
    written = [batch(4, "a"), batch(3, "b")]
    for b in written:
        wrong.write(b)
    assert wrong.flush(timeout_s=10) == 0 and wrong.failed_uploads == 7
    assert wrong.close(timeout_s=0) == 0
    shared.emulator.fail_next(1, 422, route="insert_row")
    half = batch(5, "c")
    fixed = make_storage(shared, project)
    fixed.write(half)
    assert fixed.flush(timeout_s=10) == 0 and fixed.failed_uploads == 1
    assert fixed.retry_failed() == 12
    assert fixed.flush(timeout_s=10) == 0
    assert_stored_once(shared, project, [*written, half])


def test_a_damaged_spool_file_is_set_aside_not_retried_forever(
    shared: EmulatorServer, project: str, make_storage: Make, tmp_path: Path
) -> None:
    """A spooled file that is not a ZeroDB batch (left by a dead process) goes to failed/; good batches still land."""
    orphan = tmp_path / "spool" / "p-999999-dead"
    orphan.mkdir(parents=True)
    (orphan / ".lock").touch()
    (orphan / "00000000000000000001-0000001000000001-3.batch").write_bytes(b'{"interactions": [')
    storage = make_storage(shared, project)
    written = [batch(4, "good")]
    storage.write(written[0])
    assert storage.flush(timeout_s=10) == 0
    assert (storage.failed_uploads, storage.delivered) == (3, 4)
    assert "not a ZeroDB batch" in (storage.last_error or "")
    assert [p.name for p in (tmp_path / "spool" / "failed").iterdir()] == ["00000000000000000001-0000001000000001-3.batch"]
    assert_stored_once(shared, project, written)
