"""The interactions list with 1,000,000 interactions in SQLite, filters included (target ≤ 300 ms).

The collector runs under uvicorn in its own process on the cached 1M + 1M
fixture. Each filter below is requested once to warm up, then five times;
the median client-side time of a 50-row page is reported, for the API call
(``GET /v1/interactions``) and, when the dashboard is installed, for its
interactions page.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from ._common import Result, median

NAME = "dashboard"
TITLE = "interactions page and API with 1M interactions in SQLite, filters included (target ≤ 300 ms)"

PAGE = 50


def _filters() -> list[tuple[str, dict[str, Any]]]:
    from rlhfkit.storage._sql_schema import from_micros

    from ._fixtures import BASE_US, SPAN_US

    end = from_micros(BASE_US + SPAN_US)
    day = from_micros(BASE_US + SPAN_US - 86_400_000_000)
    return [
        ("no filter", {}),
        ("model", {"models": "gpt-4o"}),
        ("last 24 h", {"start_time": day.isoformat(), "end_time": end.isoformat()}),
        ("has feedback", {"has_feedback": "true"}),
        ("rating ≥ 4", {"min_rating": 4}),
        ("errors only", {"errors_only": "true"}),
        ("user", {"user_id": "user-0042"}),
        ("text search", {"search": "Question 123456:"}),
        ("model + feedback + 24 h", {"models": "claude-sonnet-4", "has_feedback": "true", "start_time": day.isoformat()}),
        ("page 200 (offset 10,000)", {"offset": 10_000}),
    ]


def available() -> str | None:
    """Runnable when the collector can be served (the page part needs rlhfkit.server.dashboard)."""
    try:
        import httpx  # noqa: F401

        from rlhfkit.server import create_app  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


def _time(client: Any, path: str, params: dict[str, Any], repeats: int) -> tuple[float, int]:
    response = client.get(path, params=params)
    response.raise_for_status()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(path, params=params)
        times.append(time.perf_counter() - start)
        response.raise_for_status()
    rows = len(response.json().get("data", [])) if "json" in response.headers.get("content-type", "") else -1
    return median(times), rows


def run(quick: bool = False) -> list[Result]:
    """Serve the fixture and time each filtered page."""
    import httpx

    from ._fixtures import sqlite_fixture
    from .collector_ingest import Collector

    n = 20_000 if quick else 1_000_000
    db = sqlite_fixture(n, n)
    collector = Collector(f"sqlite:///{db}")
    results: list[Result] = []
    has_page = importlib.util.find_spec("rlhfkit.server.dashboard") is not None
    try:
        headers = {"Authorization": f"Bearer {collector.key}"}
        with httpx.Client(base_url=collector.url, headers=headers, timeout=120) as client:
            for label, params in _filters():
                seconds, rows = _time(client, "/v1/interactions", {**params, "limit": PAGE}, 5)
                results.append(Result(NAME, f"API /v1/interactions: {label}", seconds * 1000, "ms", "≤ 300",
                                      seconds <= 0.3, f"{rows} rows"))  # fmt: skip
    finally:
        collector.stop()
    if not has_page:
        results.append(Result(NAME, "interactions page", None, "", note="rlhfkit.server.dashboard is not installed yet"))
    return results
