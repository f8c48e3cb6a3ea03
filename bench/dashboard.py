"""The interactions list with 1,000,000 interactions, filters included (target ≤ 300 ms).

The collector runs under uvicorn in its own process on the cached 1M + 1M
fixture, in SQLite and then in PostgreSQL (a schema kept between runs,
analysed once built, as autovacuum would; SQLite's search index brought up
to date, as its background catch-up would). Each filter below is requested once to warm up, then five times
(once when the warm-up took over 2 s; a request unanswered after 30 s ends
that pass and its collector);
the median client-side time is reported, for the API call
(``GET /v1/interactions``, 50 rows) and for the dashboard's interactions
page (``GET /interactions`` as rendered HTML, signed in with the key).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from ._common import Result, median

NAME = "dashboard"
TITLE = "interactions page and API with 1M interactions in SQLite and PostgreSQL, filters included (target ≤ 300 ms)"

PAGE = 50
TIMEOUT_S = 30.0


def _filters(n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, API query, page query) for each filter measured."""
    from rlhfkit.storage._sql_schema import from_micros

    from ._fixtures import BASE_US, SPAN_US, interaction_id

    end = from_micros(BASE_US + SPAN_US).isoformat()
    day = from_micros(BASE_US + SPAN_US - 86_400_000_000).isoformat()
    middle = interaction_id(n // 2, n)
    return [
        ("no filter", {}, {}),
        ("model", {"models": "gpt-4o"}, {"model": "gpt-4o"}),
        ("last 24 h", {"start_time": day, "end_time": end}, {"start": day, "end": end}),
        ("has feedback", {"has_feedback": "true"}, {"has_feedback": "yes"}),
        ("errors only", {"errors_only": "true"}, {"errors": "1"}),
        ("user", {"user_id": "user-0042"}, {"user": "user-0042"}),
        ("text search", {"search": "Question 123456:"}, {"q": "Question 123456:"}),
        ("model + has feedback + 24 h", {"models": "claude-sonnet-4", "has_feedback": "true", "start_time": day},
         {"model": "claude-sonnet-4", "has_feedback": "yes", "start": day}),
        ("cursor at the middle", {"after_id": middle}, {"before": middle}),
        ("rating ≥ 4", {"min_rating": 4}, {"min_rating": "4"}),
    ]  # fmt: skip


def available() -> str | None:
    """Runnable when the collector can be served (the page part needs rlhfkit.server.dashboard)."""
    try:
        import httpx  # noqa: F401

        from rlhfkit.server import create_app  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


def _time(client: Any, path: str, params: dict[str, Any], repeats: int) -> tuple[float, int]:
    """Median seconds of ``repeats`` requests after a warm-up (one when the warm-up is slow); rows returned."""
    start = time.perf_counter()
    response = client.get(path, params=params)
    first = time.perf_counter() - start
    response.raise_for_status()
    if "/login" in str(response.url):
        raise RuntimeError(f"{path} redirected to the sign-in page")
    times = []
    for _ in range(repeats if first < 2 else 1):
        start = time.perf_counter()
        response = client.get(path, params=params)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    rows = len(response.json().get("data", [])) if "json" in response.headers.get("content-type", "") else -1
    return median(times), rows


def _measure(db_url: str, db_label: str, n: int, page: bool) -> list[Result]:
    """Every filter through one kind of request, on a collector of its own (stopped even mid-query)."""
    import httpx

    from .collector_ingest import Collector

    collector = Collector(db_url)
    results: list[Result] = []
    try:
        headers = {} if page else {"Authorization": f"Bearer {collector.key}"}
        with httpx.Client(base_url=collector.url, headers=headers, timeout=TIMEOUT_S) as client:
            if page:
                signed = client.post("/login", data={"api_key": collector.key, "next": "/interactions"})
                if signed.status_code >= 400 or not client.cookies:
                    raise RuntimeError(f"dashboard sign-in failed: {signed.status_code}")
            for label, api_params, page_params in _filters(n):
                name = f"{db_label} page /interactions: {label}" if page else f"{db_label} API /v1/interactions: {label}"
                path, params = ("/interactions", page_params) if page else ("/v1/interactions", {**api_params, "limit": PAGE})
                try:
                    seconds, rows = _time(client, path, params, 5)
                except httpx.TimeoutException:
                    results.append(Result(NAME, name, None, "ms", "≤ 300", False, f"no answer within {TIMEOUT_S:.0f} s"))
                    break  # the server is still busy with that query: stop it
                note = "HTML, signed in" if page else f"{rows} rows of {PAGE}"
                results.append(Result(NAME, name, seconds * 1000, "ms", "≤ 300", seconds <= 0.3, note))
    finally:
        collector.stop()
    return results


def _index_search(url: str) -> None:
    """Migrate, then bring the search index up to date, as the background catch-up leaves a live database.

    The fixture is written by ``SQLStorage.write``, which leaves every row to
    that catch-up (on PostgreSQL, a fixture older than migration 8 is indexed
    whole by it); a no-op once done (the cached database keeps the index).
    """
    from rlhfkit.storage import _sql_search, _sql_search_pg
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(url)
    try:
        start = time.perf_counter()
        if storage.upgrade():
            print(f"  migrated in {time.perf_counter() - start:.1f} s")
        if storage.dialect == "sqlite":
            with storage._connect(write=True) as connection:
                if _sql_search.has_index(connection):
                    _sql_search.index_rows(connection)
        else:
            with storage._connect() as connection:
                indexed = _sql_search_pg.has_index(connection)
            if indexed:
                _sql_search_pg.catch_up(storage, _sql_search.CATCH_UP_BATCH)
    finally:
        storage.close()


def run(quick: bool = False) -> list[Result]:
    """Serve the fixture and time each filtered API call, then each page; SQLite, then PostgreSQL."""
    from ._fixtures import postgres_fixture, sqlite_fixture
    from ._pg import postgres_unavailable

    n = 20_000 if quick else 1_000_000
    page = importlib.util.find_spec("rlhfkit.server.dashboard") is not None
    databases = [(f"sqlite:///{sqlite_fixture(n, n)}", "SQLite")]
    reason = postgres_unavailable()
    if reason is None:
        databases.append((postgres_fixture(n, n), "PostgreSQL"))
    results: list[Result] = []
    for url, label in databases:
        _index_search(url)
        results += _measure(url, label, n, page=False)
        if page:
            results += _measure(url, label, n, page=True)
    if not page:
        results.append(Result(NAME, "interactions page", None, "", note="rlhfkit.server.dashboard is not installed"))
    if reason is not None:
        results.append(Result(NAME, "PostgreSQL", None, "", note=reason))
    return results
