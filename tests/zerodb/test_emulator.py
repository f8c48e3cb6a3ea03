"""The emulator serves ZeroDB's documented shapes; the backend stays right when filters are ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from rlhfkit._models import FeedbackFilter, FeedbackType, InteractionFilter
from rlhfkit.storage.zerodb import ZeroDBStorage
from tests.storage_contract import T0, at, dataset
from tests.zerodb.emulator import EmulatorServer, ZeroDBEmulator

Make = Callable[..., ZeroDBStorage]
KEY = {"X-API-Key": "test-key"}


def test_documented_row_lifecycle_and_errors(shared: EmulatorServer, project: str) -> None:
    """Tables, rows (POST/GET/PUT/DELETE) and query answer in the documented shapes; errors carry detail."""
    base = f"{shared.url}/v1/projects/{project}/database/tables"
    with httpx.Client(headers=KEY) as client:
        assert client.post(base, json={"table_name": "t"}).status_code == 201
        exists = client.post(base, json={"table_name": "t"})
        assert exists.status_code == 400 and "already exists" in exists.json()["detail"]
        row = client.post(f"{base}/t/rows", json={"row_data": {"n": 1, "tag": "a"}}).json()
        assert set(row) == {"row_id", "project_id", "table_name", "row_data", "created_at", "updated_at"}
        client.post(f"{base}/t/rows", json={"row_data": {"n": 2, "tag": "b"}})
        assert client.get(f"{base}/t/rows/{row['row_id']}").json()["row_data"] == {"n": 1, "tag": "a"}
        put = client.put(f"{base}/t/rows/{row['row_id']}", json={"row_data": {"n": 5, "tag": "a"}})
        assert put.json()["row_data"]["n"] == 5
        page = client.post(f"{base}/t/query", json={"filters": {"n": {"$gte": 2}}, "limit": 1, "skip": 0}).json()
        assert (page["total"], page["skip"], page["limit"], page["has_more"]) == (2, 0, 1, True)
        assert page["data"][0]["row_data"]["n"] == 5
        found = client.post(f"{base}/t/query", json={"filters": {"tag": {"$in": ["b"]}, "n": {"$ne": 5}}}).json()
        assert [r["row_data"]["n"] for r in found["data"]] == [2]
        assert client.delete(f"{base}/t/rows/{row['row_id']}").status_code == 200
        assert client.get(f"{base}/t/rows/{row['row_id']}").json() == {"detail": "Row not found"}
        assert client.post(f"{base}/nope/query", json={}).status_code == 404
        assert client.post(f"{base}/t/query", json={"filter": {}}).status_code == 422  # the other documented name
        assert client.post(f"{base}/t/query", json={"limit": 1001}).status_code == 422
        assert client.post(f"{base}/t/rows", json={"rows": [{}]}).status_code == 422
    refused = httpx.post(f"{base}/t/query", json={}, headers={"X-API-Key": "wrong"})
    assert (refused.status_code, refused.json()) == (401, {"detail": "Invalid API key"})


def _reads(storage: ZeroDBStorage) -> dict[str, Any]:
    return {
        "session": storage.get_session("s1"),
        "i01": storage.get_interaction("i01"),
        "missing": storage.missing_interactions(["i01", "zz"]),
        "by_model": [f.id for f in storage.iter_feedback(FeedbackFilter(model="claude"))],
        "typed": [f.id for f in storage.iter_feedback(FeedbackFilter(types=[FeedbackType.RATING], user_id=None))],
        "users": [i.id for i in storage.iter_interactions(InteractionFilter(user_id="u1", start_time=T0))],
        "cursor": [i.id for i in storage.iter_interactions(InteractionFilter(after_id="i02", models=["claude"]))],
        "stats": storage.feedback_stats(T0, at(24)),
    }


def test_reads_stay_right_when_the_service_ignores_filters(project: str, make_storage: Make, tmp_path: Path) -> None:
    """Against a service that ignores the filters body, every read gives the same answer as with filters."""
    results = []
    for ignore in (False, True):
        server = EmulatorServer(ZeroDBEmulator(ignore_filters=ignore))
        try:
            storage = make_storage(server, project, spool_dir=tmp_path / f"spool-{ignore}")
            storage.write(dataset())
            assert storage.flush(timeout_s=10) == 0
            results.append(_reads(storage))
            storage.close(timeout_s=0)
        finally:
            server.stop()
    assert results[0] == results[1]
    assert results[0]["by_model"] == ["f05", "f09", "f11"] and results[0]["users"] == ["i01", "i03"]
