"""get_feedback_stats over 1,000,000 interactions and 1,000,000 feedback in SQLite (target ≤ 1 s).

The database is the cached fixture (see :mod:`bench._fixtures`). Measured in a
fresh logger (``create_rlhf_logger(backend=SQLITE)``): the first call, then the
median of three more (one when the first took over 5 s); also one call with a
seven-day window.
"""

from __future__ import annotations

import time
from datetime import timedelta

from ._common import Result, median

NAME = "stats"
TITLE = "get_feedback_stats over 1M interactions + 1M feedback in SQLite (target ≤ 1 s)"


def available() -> str | None:
    """Runnable when SQLAlchemy is installed."""
    try:
        import sqlalchemy  # noqa: F401
    except ImportError:
        return "sqlalchemy is not installed"
    return None


def run(quick: bool = False) -> list[Result]:
    """Time the stats calls on the fixture."""
    from rlhfkit import StorageBackend, create_rlhf_logger
    from rlhfkit.storage._sql_schema import from_micros

    from ._fixtures import BASE_US, SPAN_US, sqlite_fixture

    n = 20_000 if quick else 1_000_000
    path = sqlite_fixture(n, n)
    logger = create_rlhf_logger(backend=StorageBackend.SQLITE, backend_config={"sqlite": {"path": str(path)}})
    try:
        start = time.perf_counter()
        stats = logger.get_feedback_stats()
        first = time.perf_counter() - start
        warm = []
        repeats = 3 if first < 5 else 1  # keep the suite within its time budget when stats are slow
        for _ in range(repeats):
            start = time.perf_counter()
            logger.get_feedback_stats()
            warm.append(time.perf_counter() - start)
        end = from_micros(BASE_US + SPAN_US)
        start = time.perf_counter()
        week = logger.get_feedback_stats(start_time=end - timedelta(days=7), end_time=end)
        windowed = time.perf_counter() - start
    finally:
        logger.close()
    if stats.total_interactions != n or stats.total_feedback != n:
        raise RuntimeError(f"unexpected stats: {stats.total_interactions} interactions, {stats.total_feedback} feedback")
    typical = median(warm)
    counts = f"{n:,} interactions + {n:,} feedback"
    return [
        Result(NAME, "get_feedback_stats, all time", typical, "s", "≤ 1", typical <= 1.0,
               f"{counts}; median of {repeats} after a first call of {first:.2f} s"),
        Result(NAME, "get_feedback_stats, last 7 days", windowed, "s",
               note=f"{week.total_feedback:,} feedback in the window"),
    ]  # fmt: skip
