"""The dashboard over plain HTTP against the real collector: session safety, CSRF, routing, another backend."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import pytest

from rlhfkit._models import FeedbackFilter, Interaction, InteractionFilter, RecordBatch
from rlhfkit.server import MemoryKeyStore, create_app
from rlhfkit.server.dashboard import _queries, _table
from rlhfkit.storage import _sql_search
from rlhfkit.storage.memory import MemoryStorage
from rlhfkit.storage.sql import SQLStorage
from tests._servers import serve
from tests.dashboard.conftest import UNJUDGED, Collector


@pytest.fixture
def client(collector: Collector) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the dashboard with the read key."""
    with httpx.Client(base_url=collector.url, timeout=10) as http:
        reply = _sign_in(http, collector.key)
        assert reply.status_code == 303 and "rlhfkit_session" in http.cookies
        yield http


def _sign_in(http: httpx.Client, key: str, next: str = "/interactions") -> httpx.Response:
    """Post the key to the sign-in form as a script would (no Origin header)."""
    return http.post("/login", data={"api_key": key, "next": next})


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_a_tampered_or_missing_cookie_is_signed_out(collector: Collector, client: httpx.Client) -> None:
    """Changing one character of the signed cookie, or dropping it, sends every page back to sign-in."""
    assert client.get("/interactions").status_code == 200
    value = client.cookies["rlhfkit_session"]
    body, mac = value.split(".")
    forged = f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{mac}"
    with httpx.Client(base_url=collector.url, cookies={"rlhfkit_session": forged}) as other:
        reply = other.get("/interactions")
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login")
        assert other.get("/analytics/data.json").status_code == 401
    with httpx.Client(base_url=collector.url) as anonymous:
        assert anonymous.get("/export/download?kind=all&format=jsonl").headers["location"].startswith("/login")


def test_sign_in_never_redirects_off_site(collector: Collector) -> None:
    """A ``next`` pointing to another host is replaced by the interactions page."""
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        with httpx.Client(base_url=collector.url) as http:
            reply = _sign_in(http, collector.key, target)
            assert reply.headers["location"] == "/interactions"


def test_a_sign_in_posted_from_another_site_is_refused(collector: Collector) -> None:
    """A browser posting a key from another origin (login CSRF) starts no session; this site's origin does."""
    with httpx.Client(base_url=collector.url) as http:
        data = {"api_key": collector.key}
        for header in ({"Origin": "http://evil.example"}, {"Referer": "http://evil.example/page"}, {"Origin": "null"}):
            reply = http.post("/login", data=data, headers=header)
            assert reply.status_code == 403 and "rlhfkit_session" not in http.cookies
        reply = http.post("/login", data=data, headers={"Origin": collector.url})
        assert reply.status_code == 303 and "rlhfkit_session" in http.cookies


def test_dashboard_pages_stay_out_of_the_api_schema(collector: Collector) -> None:
    """The OpenAPI schema lists the /v1 API and health checks only."""
    paths = httpx.get(f"{collector.url}/openapi.json").json()["paths"]
    assert all(p.startswith("/v1/") or p in ("/healthz", "/readyz") for p in paths)


def test_pages_send_a_strict_content_security_policy(client: httpx.Client) -> None:
    """HTML pages forbid scripts from other origins and framing; static files are served by the collector."""
    reply = client.get("/analytics")
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert client.get("/static/chart.umd.min.js").status_code == 200
    assert "cdn" not in reply.text.lower() and "https://" not in reply.text


def test_a_comparison_of_different_prompts_or_without_token_stores_nothing(collector: Collector, client: httpx.Client) -> None:
    """The compare form refuses responses to different prompts and a missing CSRF token."""
    prompts = list(UNJUDGED)
    mixed = [collector.ids[prompts[1]][0], collector.ids[prompts[2]][0]]
    page = client.get("/compare")
    key = re.search(r'data-key="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
    before = collector.api("/v1/feedback", types="comparative", limit=1000)["data"]
    form = {"csrf": _csrf(page.text), "candidate": mixed, "preferred": mixed[0]}
    assert client.post(f"/compare/{key}", data=form).status_code == 422
    assert client.post(f"/compare/{key}", data={**form, "csrf": ""}).status_code == 403
    assert collector.api("/v1/feedback", types="comparative", limit=1000)["data"] == before


@pytest.mark.parametrize("narrow", [1, 10**9], ids=["walk-newest-first", "from-feedback-ids"])
def test_both_query_plans_of_the_table_select_what_the_api_does(collector: Collector, narrow: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether the page walks the table or starts from the matching feedback, it selects what /v1/interactions does."""
    monkeypatch.setattr(_table, "NARROW", narrow)
    monkeypatch.setattr(_table, "WALK_STEP", 3)
    storage = SQLStorage(collector.db_url)
    cases = [
        ({"feedback_types": ["rating"]}, {"feedback_types": "rating"}),
        ({"feedback_types": ["comparative", "text"]}, {"feedback_types": ["comparative", "text"]}),
        ({"min_rating": 2, "max_rating": 3}, {"min_rating": 2, "max_rating": 3}),
        ({"has_feedback": True, "models": ["gpt-4o"]}, {"has_feedback": "true", "models": "gpt-4o"}),
        ({"has_feedback": False}, {"has_feedback": "false"}),
        ({"session_id": "nope"}, {"session_id": "nope"}),
        ({"search": "Paris", "has_feedback": False}, {"search": "paris", "has_feedback": "false"}),
        ({"errors_only": True}, {"errors_only": "true"}),
    ]
    try:
        for ours, theirs in cases:
            seen: list[str] = []
            first = page = _queries.interaction_page(storage, InteractionFilter(**ours), size=7)
            for n in range(100):
                seen += [r.id for r in page.rows]
                if n == 1:
                    back = _queries.interaction_page(storage, InteractionFilter(**ours), after=page.newer, size=7)
                    assert [r.id for r in back.rows] == [r.id for r in first.rows]
                if page.older is None:
                    break
                page = _queries.interaction_page(storage, InteractionFilter(**ours), before=page.older, size=7)
            expected = {i["id"] for i in collector.api("/v1/interactions", limit=1000, **theirs)["data"]}
            assert len(seen) == len(set(seen)) and set(seen) == expected, ours
    finally:
        storage.close()


def test_a_windowed_search_pages_on_until_every_match_is_found(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a scan window smaller than the table, 'older' cursors continue the search window after window, missing nothing.

    (A search the index cannot narrow, as one of fewer than three characters, is walked so.)
    """
    monkeypatch.setattr(_sql_search, "candidates", lambda connection, search: None)
    monkeypatch.setattr(_table, "SCAN_WINDOW", 6)
    monkeypatch.setattr(_table, "WALK_STEP", 2)
    storage = SQLStorage(collector.db_url)
    try:
        for ours, theirs in (({"search": "CAPITAL"}, {"search": "capital"}), ({"errors_only": True}, {"errors_only": "true"})):
            seen: list[str] = []
            windows = 0
            page = _queries.interaction_page(storage, InteractionFilter(**ours), size=4)
            for _ in range(200):
                seen += [r.id for r in page.rows]
                windows += page.scanned_to is not None
                if page.older is None:
                    break
                page = _queries.interaction_page(storage, InteractionFilter(**ours), before=page.older, size=4)
            expected = {i["id"] for i in collector.api("/v1/interactions", limit=1000, **theirs)["data"]}
            assert len(seen) == len(set(seen)) and set(seen) == expected and windows > 3, ours
    finally:
        storage.close()


def test_parquet_export_and_a_bad_format(collector: Collector, client: httpx.Client) -> None:
    """A Parquet download of the feedback has one row per feedback; an unknown format re-shows the form with a 422."""
    import pyarrow.parquet as pq

    reply = client.get("/export/download", params={"kind": "feedback", "format": "parquet"})
    assert reply.status_code == 200 and reply.headers["content-disposition"].endswith('.parquet"')
    table = pq.read_table(io.BytesIO(reply.content))
    assert table.num_rows == collector.api("/v1/stats")["total_feedback"]
    refused = client.get("/export/download", params={"kind": "all", "format": "xlsx"})
    assert refused.status_code == 422 and "format" in refused.text


def test_a_collector_on_the_memory_backend_serves_every_page() -> None:
    """Without SQL the pages read through the Storage protocol: newest first, groups, feedback, analytics."""
    storage = MemoryStorage()
    interactions = [Interaction(prompt=f"Q{n % 3}", response=f"A{n}", model="m") for n in range(7)]
    storage.write(RecordBatch(interactions=interactions))
    keys = MemoryKeyStore()
    key = keys.create("default", "alice")
    with serve(create_app(storage=storage, keys=keys)) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        _sign_in(http, key)
        listing = http.get("/interactions").text
        shown = re.findall(r'data-id="([0-9a-f]+)"', listing)
        assert shown == sorted((i.id for i in interactions), reverse=True)
        newest = interactions[-1].id
        detail = http.get(f"/interactions/{newest}")
        assert detail.status_code == 200
        saved = http.post(f"/interactions/{newest}/feedback/binary", data={"csrf": _csrf(detail.text), "value": "thumbs_up"})
        assert saved.status_code == 303
        assert [f.data.type for f in storage.iter_feedback(FeedbackFilter())] == ["binary"]
        assert len(re.findall(r"data-key=", http.get("/compare").text)) == 3
        assert http.get("/review").status_code == 200
        assert http.get("/analytics/data.json").json()["summary"]["interactions"] == 7
        assert http.get("/export").status_code == 200
