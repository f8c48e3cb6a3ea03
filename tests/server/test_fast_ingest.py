"""The batch route served beside FastAPI: same replies, same checks, and the server's startup tuning of the GC."""

from __future__ import annotations

import gc
import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from rlhfkit._models import InteractionFilter, RecordBatch, new_id
from rlhfkit.errors import StorageError
from rlhfkit.server import ApiKey, MemoryKeyStore, create_app
from rlhfkit.server._app import YOUNG_GC_THRESHOLD
from rlhfkit.storage.memory import MemoryStorage

URL = "/v1/interactions/batch"


class UncachedKeys(MemoryKeyStore):
    """Keys without a cache: every request goes through FastAPI's route, which looks the key up."""

    cached = None  # type: ignore[assignment]


class CacheOnlyKeys(MemoryKeyStore):
    """Keys answered from the cache only: a request that reaches FastAPI's route (a lookup) fails."""

    def lookup(self, key: str) -> ApiKey | None:
        raise AssertionError("the request went through FastAPI's route")

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        return True, MemoryKeyStore.lookup(self, key)


class Pair:
    """Two collectors on their own memory storages: one serving the batch route beside FastAPI, one through it."""

    def __init__(self, storage_class: type[MemoryStorage] = MemoryStorage, **options: Any) -> None:
        self.fast_storage, self.slow_storage = storage_class(), storage_class()
        fast_keys, slow_keys = CacheOnlyKeys(), UncachedKeys()
        # FastAPI's last-resort handler replies, then re-raises to the server: take its reply.
        self.fast = TestClient(create_app(storage=self.fast_storage, keys=fast_keys, **options))
        self.slow = TestClient(
            create_app(storage=self.slow_storage, keys=slow_keys, **options), raise_server_exceptions=False
        )
        self.fast_headers = {"Authorization": f"Bearer {fast_keys.create('default', 't')}"}
        self.slow_headers = {"Authorization": f"Bearer {slow_keys.create('default', 't')}"}

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[Any, Any]:
        extra = {"Content-Type": "application/json", **(headers or {})}
        fast = self.fast.post(URL, content=body, headers={**self.fast_headers, **extra})
        slow = self.slow.post(URL, content=body, headers={**self.slow_headers, **extra})
        return fast, slow


_pair = Pair()


def _same(fast: Any, slow: Any) -> None:
    assert (fast.status_code, fast.content) == (slow.status_code, slow.content)
    assert fast.headers["content-type"] == slow.headers["content-type"]
    assert fast.headers["content-length"] == slow.headers["content-length"]


def _interaction(**fields: Any) -> dict[str, Any]:
    return {"id": new_id(), "prompt": "What is RLHF?", "response": "Learning from feedback.", **fields}


def test_accepted_batches_get_the_same_reply_and_store_the_same_records() -> None:
    """A batch with ids, feedback and a session id is answered and stored alike by both paths."""
    first, second = _interaction(model="m", token_usage={"prompt": 3, "completion": 4}), _interaction()
    feedback = {"id": new_id(), "interaction_id": first["id"], "type": "binary",
                "data": {"type": "binary", "value": "thumbs_up"}}  # fmt: skip
    body = json.dumps({"sessionId": "s-1", "interactions": [first, second], "feedback": [feedback]}).encode()
    fast, slow = _pair.post(body)
    _same(fast, slow)
    assert fast.json() == {"accepted": 3, "ids": [first["id"], second["id"], feedback["id"]]}
    for record in (first, second):
        stored = _pair.fast_storage.get_interaction(record["id"])
        assert stored is not None and stored.session_id == "s-1"
        other = _pair.slow_storage.get_interaction(record["id"])
        assert other is not None and stored.model_copy(update={"timestamp": other.timestamp}) == other


_REFUSED = [
    b"{not json",
    b"[]",
    b'{"interactions": "nope"}',
    b'{"interactions": [{"prompt": "   "}]}',
    b'{"interactions": [{"prompt": "x", "latency": -1}]}',
    b'{"interactions": [{"prompt": "x"}, {"prompt": "a\\u0000"}]}',
    b'{"interactions": [{"prompt": "x", "metadata": {"n": NaN}}]}',
    b'{"interactions": [{"prompt": "x", "latency": 1e400}]}',
    b'{"interactions": [{"prompt": "x", "metadata": {"a": "\\ud801"}}]}',
    b'{"interactions": [{"prompt": "x", "nope": 1}]}',
    b'{"sessionId": 5, "interactions": [{"prompt": "x"}]}',
    b'{"feedback": [{"interaction_id": "ghost", "type": "binary", "data": {"type": "binary", "value": "thumbs_up"}}]}',
]


@pytest.mark.parametrize("body", _REFUSED)
def test_refused_batches_get_the_same_422(body: bytes) -> None:
    """Each refused body gets the same status and error body (naming the field) on both paths, and stores nothing."""
    fast, slow = _pair.post(body)
    _same(fast, slow)
    assert fast.status_code == 422, fast.text
    assert fast.json()["field"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_fields = st.sampled_from(
    ["id", "prompt", "response", "model", "latency", "token_usage", "user_id", "session_id", "context", "metadata",
     "timestamp", "metrics", "error", "tools", "model_params", "incomplete", "environment", "unknown"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(_fields, _json_values), max_size=3), session=st.none() | _json_values)
def test_any_batch_gets_the_same_reply_on_both_paths(changes: list[tuple[str, Any]], session: Any) -> None:
    """Interactions with random values in random fields (NaN, huge integers, nesting): the same reply either way."""
    record = _interaction(id=new_id())
    for name, value in changes:
        record[name] = value
    payload: dict[str, Any] = {"interactions": [record]}
    if session is not None:
        payload["sessionId"] = session
    fast, slow = _pair.post(json.dumps(payload).encode())
    if fast.status_code == 200 and record.get("id") is None:  # no id given (the spec's shape allows null): new ids
        assert slow.status_code == 200 and len(fast.json()["ids"]) == len(slow.json()["ids"]) == 1
    else:
        _same(fast, slow)
    assert fast.status_code in (200, 422)


def test_fast_route_keeps_the_body_limit_gzip_and_cors() -> None:
    """With a cached key, bodies over the limit get 413, gzip bodies are stored, CORS headers are sent."""
    pair = Pair(max_body_bytes=2000, cors_origins=["https://app.example.com"])
    fast, slow = pair.post(b'{"interactions": [' + b" " * 3000 + b"]}")
    _same(fast, slow)
    assert fast.status_code == 413
    record = _interaction()
    zipped = gzip.compress(json.dumps({"interactions": [record]}).encode())
    fast, slow = pair.post(zipped, {"Content-Encoding": "gzip", "Origin": "https://app.example.com"})
    _same(fast, slow)
    assert fast.status_code == 200
    assert fast.headers["access-control-allow-origin"] == "https://app.example.com"
    assert pair.fast_storage.get_interaction(record["id"]) is not None


def test_requests_without_a_cached_key_are_left_to_fastapi() -> None:
    """No key, another scheme or an unknown key get FastAPI's 401; a write-only key ingests."""
    keys = MemoryKeyStore()
    storage = MemoryStorage()
    client = TestClient(create_app(storage=storage, keys=keys))
    body = json.dumps({"interactions": [_interaction()]}).encode()
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer rk_unknown"},
                    {"Authorization": "Bearer"}):  # fmt: skip
        reply = client.post(URL, content=body, headers=headers)
        assert reply.status_code == 401, headers
        assert reply.json()["error"] == "unauthorized"
        assert reply.headers["www-authenticate"] == "Bearer"
    write_only = keys.create("default", "browser", write_only=True)
    reply = client.post(URL, content=body, headers={"Authorization": f"bearer  {write_only} "})
    assert reply.status_code == 200, reply.text
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 1


class BrokenStorage(MemoryStorage):
    """Writes fail: with a StorageError for prompts saying "down", with a bug otherwise."""

    def write(self, batch: RecordBatch) -> None:
        if batch.interactions and batch.interactions[0].prompt == "down":
            raise StorageError("the database is down")
        raise RuntimeError("a bug")


def test_failed_writes_get_the_same_503() -> None:
    """A storage failure and an unexpected error get the same 503 bodies on both paths, never a 500."""
    pair = Pair(storage_class=BrokenStorage)
    for prompt, kind in (("down", "storage_unavailable"), ("other", "unavailable")):
        fast, slow = pair.post(json.dumps({"interactions": [_interaction(prompt=prompt)]}).encode())
        _same(fast, slow)
        assert (fast.status_code, fast.json()["error"]) == (503, kind)


def test_route_stays_in_the_openapi_schema() -> None:
    """The batch route is still documented in /openapi.json."""
    schema = _pair.slow.get("/openapi.json").json()
    assert "post" in schema["paths"][URL]


def test_server_startup_freezes_the_heap_and_raises_the_young_threshold() -> None:
    """Starting the app (its lifespan) freezes the objects built so far and collects young objects less often."""
    before = gc.get_threshold()
    try:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
        with TestClient(create_app(storage=MemoryStorage(), keys=MemoryKeyStore(), tune_gc=False)):
            assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10)
        with TestClient(create_app(storage=MemoryStorage(), keys=MemoryKeyStore())):
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold() == (YOUNG_GC_THRESHOLD, 10, 10)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


class FailingCache(MemoryKeyStore):
    """A key store whose cache fails."""

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        raise RuntimeError("cache down")


def test_a_failing_key_cache_gets_a_503_not_a_500() -> None:
    """When the key cache raises, the request gets the collector's 503 reply, as from FastAPI's route."""
    keys = FailingCache()
    client = TestClient(create_app(storage=MemoryStorage(), keys=keys), raise_server_exceptions=False)
    key = keys.create("default", "t")
    reply = client.post(URL, content=json.dumps({"interactions": [_interaction()]}).encode(),
                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert (reply.status_code, reply.json()["error"]) == (503, "unavailable")
