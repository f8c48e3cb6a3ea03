"""The collector's HTTP API against PostgreSQL under uvicorn: auth, ingest, reads, limits."""

from __future__ import annotations

import gzip
import json
import uuid

import httpx

from rlhfkit._models import InteractionFilter, new_id
from tests.server._fixtures import Collector, Project


def _interaction(**fields: object) -> dict[str, object]:
    return {"id": new_id(), "prompt": "What is RLHF?", "response": "Learning from feedback.", **fields}


def _thumbs(interaction_id: str, value: str = "thumbs_up") -> dict[str, object]:
    return {"id": new_id(), "interaction_id": interaction_id, "type": "binary", "data": {"type": "binary", "value": value}}


def test_health_endpoints_need_no_key(collector: Collector) -> None:
    """/healthz and /readyz answer without a key; readyz reaches the database."""
    assert httpx.get(f"{collector.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{collector.url}/readyz").json() == {"status": "ready"}


def test_v1_requires_a_valid_bearer_key(collector: Collector, project: Project) -> None:
    """No key, a wrong scheme and an unknown key get 401; the project's key gets 200."""
    url = f"{collector.url}/v1/interactions"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": f"Basic {project.key}"}).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer rk_not-a-key"}).status_code == 401
    assert httpx.get(url, headers=project.headers).status_code == 200


def test_write_only_key_ingests_but_cannot_read(collector: Collector, project: Project) -> None:
    """A write-only key stores records but gets 403 on every read endpoint."""
    headers = {"Authorization": f"Bearer {project.write_only_key}"}
    record = _interaction()
    reply = httpx.post(f"{collector.url}/v1/interactions", json=record, headers=headers)
    assert reply.status_code == 200, reply.text
    assert project.storage.get_interaction(record["id"]) is not None
    for path in ("/v1/interactions", f"/v1/interactions/{record['id']}", "/v1/feedback", "/v1/stats",
                 "/v1/analytics", "/v1/export?format=jsonl", "/v1/sessions/x"):
        assert httpx.get(collector.url + path, headers=headers).status_code == 403, path


def test_projects_are_isolated(collector: Collector, project: Project) -> None:
    """Another project's key sees none of this project's records and cannot attach feedback to them."""
    other_name = f"test-{uuid.uuid4().hex[:12]}"
    other = {"Authorization": f"Bearer {collector.keys.create(other_name, 'other')}"}
    record = _interaction(session_id="shared-session")
    assert httpx.post(f"{collector.url}/v1/interactions", json=record, headers=project.headers).status_code == 200
    assert httpx.get(f"{collector.url}/v1/interactions/{record['id']}", headers=other).status_code == 404
    assert httpx.get(f"{collector.url}/v1/interactions", headers=other).json()["data"] == []
    assert httpx.get(f"{collector.url}/v1/stats", headers=other).json()["total_interactions"] == 0
    refused = httpx.post(f"{collector.url}/v1/feedback", json=_thumbs(record["id"]), headers=other)
    assert refused.status_code == 422
    assert refused.json()["field"] == "interaction_id"
    assert httpx.get(f"{collector.url}/v1/stats", headers=project.headers).json()["total_interactions"] == 1


def test_batch_payload_of_the_spec_is_converted(collector: Collector, project: Project) -> None:
    """A {sessionId, interactions, timestamp} payload of CapturedInteractions is stored as Interactions."""
    captured = {
        "id": new_id(),
        "sessionId": "sess-1",
        "prompt": {"role": "user", "content": "Hello?"},
        "response": {"role": "assistant", "content": "Hi there."},
        "context": {"userAgent": "Mozilla/5.0", "userId": "u-7", "environment": "prod"},
        "metrics": {"timeToFirstToken": 120, "totalResponseTime": 480, "tokensPerSecond": 40.5},
        "usage": {"promptTokens": 5, "completionTokens": 7, "totalTokens": 12},
        "feedback": [{"id": new_id(), "type": "thumbs-up", "value": True, "timestamp": 1763880000500}],
        "timestamp": 1763880000000,
        "metadata": {"model": "gpt-test"},
    }
    payload = {"sessionId": "sess-1", "interactions": [captured], "timestamp": 1763880001000}
    reply = httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == 2
    detail = httpx.get(f"{collector.url}/v1/interactions/{captured['id']}", headers=project.headers).json()
    stored = detail["interaction"]
    assert (stored["prompt"], stored["response"], stored["session_id"]) == ("Hello?", "Hi there.", "sess-1")
    assert stored["user_id"] == "u-7" and stored["model"] == "gpt-test"
    assert stored["metrics"]["time_to_first_token_ms"] == 120
    assert stored["token_usage"] == {"prompt": 5, "completion": 7, "total": 12, "cached": None, "reasoning": None}
    assert stored["environment"]["user_agent"] == "Mozilla/5.0"
    assert stored["timestamp"].startswith("2025-11-23T06:40:00")
    assert [f["data"] for f in detail["feedback"]] == [{"type": "binary", "value": "thumbs_up"}]


def test_spec_shape_keeps_extra_rlhfkit_fields_and_names_unknown_ones(collector: Collector, project: Project) -> None:
    """A CapturedInteraction carrying rlhfkit fields keeps them; an unknown key is refused by name, not dropped."""
    captured = {"id": new_id(), "prompt": {"role": "user", "content": "q"}, "response": {"role": "assistant", "content": "a"},
                "model_params": {"temperature": 0.2}, "timestamp": 1763880000000}
    assert httpx.post(f"{collector.url}/v1/interactions", json=captured, headers=project.headers).status_code == 200
    assert project.storage.get_interaction(captured["id"]).model_params == {"temperature": 0.2}
    refused = httpx.post(f"{collector.url}/v1/interactions", json={**captured, "bogus": 1}, headers=project.headers)
    assert (refused.status_code, refused.json()["field"]) == (422, "bogus")
    ours = _interaction(timestamp=1763880000, token_usage={"prompt": 3, "completion": 4})
    assert httpx.post(f"{collector.url}/v1/interactions", json=ours, headers=project.headers).status_code == 200
    stored = project.storage.get_interaction(ours["id"])
    assert stored.token_usage.total == 7 and stored.timestamp.isoformat().startswith("2025-11-23T06:40:00")


def test_top_level_session_id_fills_interactions_without_one(collector: Collector, project: Project) -> None:
    """The payload's sessionId is given to interactions that have none; an interaction's own session wins."""
    plain, own = _interaction(), _interaction(session_id="own")
    payload = {"sessionId": "top", "interactions": [plain, own], "timestamp": 1763880000000}
    assert httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers).status_code == 200
    assert project.storage.get_interaction(plain["id"]).session_id == "top"
    assert project.storage.get_interaction(own["id"]).session_id == "own"


def test_ingest_is_idempotent(collector: Collector, project: Project) -> None:
    """The same batch posted twice is accepted twice and stored once."""
    records = [_interaction() for _ in range(5)]
    feedback = [_thumbs(records[0]["id"])]
    payload = {"sessionId": None, "interactions": records, "feedback": feedback, "timestamp": 0}
    first = httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers).json()
    second = httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers).json()
    assert first["accepted"] == second["accepted"] == 6
    assert first["ids"] == [r["id"] for r in records] + [feedback[0]["id"]]
    assert project.storage.count_interactions(InteractionFilter()) == 5
    assert project.storage.count_feedback() == 1


def test_feedback_on_unknown_interaction_refuses_the_whole_batch(collector: Collector, project: Project) -> None:
    """A batch whose feedback names an unknown interaction gets 422 naming that item, and stores nothing."""
    known = _interaction()
    feedback = [_thumbs(known["id"]), _thumbs("no-such-interaction")]
    payload = {"interactions": [known], "feedback": feedback}
    reply = httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers)
    assert reply.status_code == 422
    assert reply.json()["field"] == "feedback[1].interaction_id"
    assert "no-such-interaction" in reply.json()["message"]
    assert project.storage.count_interactions(InteractionFilter()) == 0
    assert project.storage.count_feedback() == 0


def test_all_five_feedback_types_are_accepted(collector: Collector, project: Project) -> None:
    """POST /v1/feedback/batch stores binary, rating, text, multi-dimensional and comparative feedback."""
    a, b = _interaction(model="m-a"), _interaction(model="m-b")
    httpx.post(f"{collector.url}/v1/interactions/batch", json={"interactions": [a, b]}, headers=project.headers)
    items = [
        _thumbs(a["id"]),
        {"interaction_id": a["id"], "type": "rating", "data": {"type": "rating", "value": 4}},
        {"interaction_id": a["id"], "type": "text", "data": {"type": "text", "comment": "good", "sentiment": "positive"}},
        {"interaction_id": a["id"], "type": "multi_dimensional",
         "data": {"type": "multi_dimensional", "dimensions": {"accuracy": 4, "style": 3}, "weighted_score": 3.5}},
        {"interaction_id": a["id"], "type": "comparative",
         "data": {"type": "comparative", "preferred_id": a["id"], "alternative_ids": [b["id"]], "confidence": 0.8}},
    ]
    reply = httpx.post(f"{collector.url}/v1/feedback/batch", json={"feedback": items}, headers=project.headers)
    assert reply.status_code == 200, reply.text
    types = {f["type"] for f in httpx.get(f"{collector.url}/v1/feedback", headers=project.headers).json()["data"]}
    assert types == {"binary", "rating", "text", "multi_dimensional", "comparative"}
    unknown_alt = dict(items[4], data={**items[4]["data"], "alternative_ids": ["ghost"]})
    refused = httpx.post(f"{collector.url}/v1/feedback", json=unknown_alt, headers=project.headers)
    assert (refused.status_code, refused.json()["field"]) == (422, "data.alternative_ids[0]")


def test_malformed_bodies_get_422_naming_the_field(collector: Collector, project: Project) -> None:
    """Bad JSON, wrong types, empty prompts, NUL, surrogates, NaN, overflowing numbers, deep nesting: 422 naming the field."""
    post = lambda path, **kw: httpx.post(f"{collector.url}{path}", headers=project.headers, **kw)  # noqa: E731
    cases = [
        ("/v1/interactions/batch", {"content": b"{not json", "headers": {**project.headers, "Content-Type": "application/json"}}, "body"),
        ("/v1/interactions/batch", {"json": {"interactions": [{"prompt": "x", "latency": -1}]}}, "interactions[0].latency"),
        ("/v1/interactions/batch", {"json": {"interactions": [{"prompt": "   "}]}}, "interactions[0].prompt"),
        ("/v1/interactions/batch", {"json": {"interactions": "nope"}}, "interactions"),
        ("/v1/interactions", {"json": _interaction(response="a\x00b")}, "response"),
        ("/v1/interactions", {"content": json.dumps(_interaction(metadata={"x": float("nan")})).encode(),
                              "headers": {**project.headers, "Content-Type": "application/json"}}, "metadata.x"),
        ("/v1/feedback", {"json": {"interaction_id": "x", "type": "rating", "data": {"type": "binary", "value": "up"}}},
         "data.binary.value"),
        ("/v1/interactions", {"content": b'{"prompt": "x", "metadata": {"a": "\\ud801"}}',
                              "headers": {**project.headers, "Content-Type": "application/json"}}, "metadata.a"),
        ("/v1/interactions", {"json": _interaction(timestamp="9999-12-31T23:59:59-23:59")}, "timestamp"),
        ("/v1/interactions/batch", {"content": b'{"interactions": [{"prompt": "x", "metadata": {"big": 1e400}}]}',
                                    "headers": {**project.headers, "Content-Type": "application/json"}},
         "interactions[0].metadata.big"),
        ("/v1/interactions/batch", {"content": b'{"interactions": [{"prompt": "x"}, {"prompt": "a\\u0000"}]}',
                                    "headers": {**project.headers, "Content-Type": "application/json"}},
         "interactions[1].prompt"),
        ("/v1/interactions/batch", {"content": b'{"interactions": [{"prompt": "x", "metadata": {"n": NaN}}]}',
                                    "headers": {**project.headers, "Content-Type": "application/json"}},
         "interactions[0].metadata.n"),
        ("/v1/interactions/batch", {"json": []}, "body"),
        ("/v1/interactions/batch", {"json": {"interactions": [_interaction(user_id="ü" * 1500)]}},
         "interactions[0].user_id"),
        ("/v1/interactions/batch", {"content": b'{"interactions": [{"prompt": "x", "latency": 1e400}]}',
                                    "headers": {**project.headers, "Content-Type": "application/json"}},
         "interactions[0].latency"),
        ("/v1/interactions/batch", {"content": b'{"interactions": [{"prompt": "x", "metadata": {"a": ' + b"[" * 300
                                    + b"]" * 300 + b"}}]}",
                                    "headers": {**project.headers, "Content-Type": "application/json"}},
         "interactions[0].metadata"),
        ("/v1/feedback", {"json": {"interactionId": "x", "type": "thumbs-up", "metadata": [1]}}, "metadata"),
        ("/v1/interactions/batch", {"json": {"interactions": [_interaction(model="m" * 301)]}},
         "interactions[0].model"),
    ]
    for path, kwargs, field in cases:
        if "headers" in kwargs:
            reply = httpx.post(f"{collector.url}{path}", **kwargs)
        else:
            reply = post(path, **kwargs)
        assert reply.status_code == 422, (path, field, reply.text)
        assert reply.json()["field"] == field, reply.json()
    assert project.storage.count_interactions(InteractionFilter()) == 0


def test_bodies_over_the_limit_get_413(collector: Collector, project: Project) -> None:
    """A body over 10 MB is refused with 413, whether announced by Content-Length or streamed in chunks."""
    big = b'{"interactions": [' + b" " * (10 * 1024 * 1024) + b"]}"
    reply = httpx.post(f"{collector.url}/v1/interactions/batch", content=big, headers=project.headers)
    assert reply.status_code == 413

    def chunks():  # no Content-Length: chunked transfer encoding
        yield b'{"interactions": ['
        for _ in range(11):
            yield b" " * (1024 * 1024)
        yield b"]}"

    reply = httpx.post(f"{collector.url}/v1/interactions/batch", content=chunks(), headers=project.headers)
    assert reply.status_code == 413
    bomb = gzip.compress(b'{"interactions": [' + b" " * (11 * 1024 * 1024) + b"]}")
    reply = httpx.post(
        f"{collector.url}/v1/interactions/batch", content=bomb,
        headers={**project.headers, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.status_code == 413


def test_gzip_bodies_are_accepted(collector: Collector, project: Project) -> None:
    """A gzip-compressed batch (Content-Encoding: gzip) is decompressed and stored."""
    body = gzip.compress(json.dumps({"interactions": [_interaction(), _interaction()]}).encode())
    reply = httpx.post(
        f"{collector.url}/v1/interactions/batch", content=body,
        headers={**project.headers, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    assert project.storage.count_interactions(InteractionFilter()) == 2


def test_cursor_pagination_walks_every_record_once(collector: Collector, project: Project) -> None:
    """Following next_cursor with limit=7 returns all 23 interactions in id order, each once."""
    records = [_interaction(model="pager") for _ in range(23)]
    httpx.post(f"{collector.url}/v1/interactions/batch", json={"interactions": records}, headers=project.headers)
    seen: list[str] = []
    params: dict[str, object] = {"limit": 7, "models": ["pager"]}
    for _ in range(10):
        page = httpx.get(f"{collector.url}/v1/interactions", params=params, headers=project.headers).json()
        seen += [r["id"] for r in page["data"]]
        if not page["next_cursor"]:
            break
        params["after_id"] = page["next_cursor"]
    assert seen == sorted(r["id"] for r in records)


def test_filters_sessions_stats_and_detail(collector: Collector, project: Project) -> None:
    """Query filters select records; a session and an interaction's feedback read back; stats count them."""
    a = _interaction(model="alpha", session_id="s-1", user_id="ann")
    b = _interaction(model="beta", session_id="s-1")
    session = {"id": "s-1", "user_id": "ann", "interaction_ids": [a["id"], b["id"]]}
    payload = {"interactions": [a, b], "feedback": [_thumbs(a["id"], "thumbs_down")], "sessions": [session]}
    assert httpx.post(f"{collector.url}/v1/interactions/batch", json=payload, headers=project.headers).status_code == 200
    get = lambda path, **params: httpx.get(f"{collector.url}{path}", params=params, headers=project.headers)  # noqa: E731
    assert [r["id"] for r in get("/v1/interactions", models="beta").json()["data"]] == [b["id"]]
    assert [r["id"] for r in get("/v1/interactions", has_feedback="true").json()["data"]] == [a["id"]]
    assert [r["id"] for r in get("/v1/interactions", user_id="ann").json()["data"]] == [a["id"]]
    assert len(get("/v1/feedback", types="binary").json()["data"]) == 1
    assert get("/v1/sessions/s-1").json()["interaction_ids"] == [a["id"], b["id"]]
    assert get("/v1/sessions/unknown").status_code == 404
    detail = get(f"/v1/interactions/{a['id']}").json()
    assert detail["interaction"]["feedback_ids"] == [detail["feedback"][0]["id"]]
    stats = get("/v1/stats").json()
    assert (stats["total_interactions"], stats["total_feedback"], stats["binary"]["thumbs_down"]) == (2, 1, 1)
    assert get("/v1/analytics").json()["stats"]["total_interactions"] == 2
    bad = get("/v1/interactions", limit=0)
    assert (bad.status_code, bad.json()["field"]) == (422, "limit")
    assert get("/v1/interactions", min_rating="nan").status_code == 422
    far = get("/v1/interactions", start_time="9999-12-31T23:59:59-23:59")
    assert (far.status_code, far.json()["field"]) == (422, "start_time")
    assert get("/v1/stats", end_time="0001-01-01T00:00:00+23:59").status_code == 422


def test_export_streams_a_download(collector: Collector, project: Project) -> None:
    """GET /v1/export streams the project's records as a file in the chosen format."""
    records = [_interaction() for _ in range(3)]
    httpx.post(f"{collector.url}/v1/interactions/batch", json={"interactions": records}, headers=project.headers)
    reply = httpx.get(f"{collector.url}/v1/export", params={"format": "jsonl"}, headers=project.headers)
    assert reply.status_code == 200
    assert "attachment" in reply.headers["content-disposition"]
    lines = [json.loads(line) for line in reply.text.splitlines() if line.strip()]
    assert {r["id"] for r in lines if "prompt" in r} == {r["id"] for r in records}
    csv_reply = httpx.get(f"{collector.url}/v1/export", params={"format": "csv"}, headers=project.headers)
    assert csv_reply.status_code == 200 and csv_reply.text.count("\n") >= 4


def test_cors_is_configurable(pg_storage) -> None:  # type: ignore[no-untyped-def]
    """With cors_origins set, a preflight from that origin is allowed and others are not."""
    from rlhfkit.server import create_app
    from tests._servers import serve

    app = create_app(storage=pg_storage, cors_origins=["https://app.example"])
    with serve(app) as server:
        headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "authorization,content-type"}
        ok = httpx.options(f"{server.url}/v1/interactions/batch", headers=headers)
        assert ok.headers.get("access-control-allow-origin") == "https://app.example"
        denied = httpx.options(f"{server.url}/v1/interactions/batch", headers={**headers, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in denied.headers
