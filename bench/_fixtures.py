"""Big SQLite databases in rlhfkit's own schema, cached under ``bench/.cache``.

The schema comes from ``SQLStorage(...).initialize()`` and the records are
written by ``SQLStorage.write`` itself in batches of 5,000, so every derived
row (feedback targets, dimensions, comparison pairs ...) is exactly what the
backend writes, whatever it writes today. A built database is checked by
reading records back and reused by later runs while the schema and this
generator are unchanged; a change rebuilds it (minutes for 1M + 1M).
``python -m bench --rebuild`` forces a rebuild (after a change in what the
backend derives from a record without a schema change).

The data: every prompt is answered by four models (four interactions in a
row share a prompt); each feedback is about a pseudo-random interaction (so
some get several, about a third none): half ratings,
30 % thumbs, 10 % comparisons within the prompt's group, 5 % text, 5 %
multi-dimensional. Timestamps spread over 30 days from 2026-10-01.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from ._common import cache_dir

GENERATOR_VERSION = 3
PROJECT = "default"
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "llama-3.1-70b")
PROVIDERS = {"gpt-4o": "openai", "gpt-4o-mini": "openai", "claude-sonnet-4": "anthropic", "llama-3.1-70b": "meta"}
VERBS = ("parse", "sort", "cache", "serialise", "validate", "stream", "profile", "test", "deploy", "index")
TOPICS = (
    "JSON files", "dates", "HTTP retries", "a CSV export", "SQLite queries", "async tasks", "unit tests",
    "a REST API", "log files", "configuration", "user input", "large lists", "a Parquet file",
)  # fmt: skip
BASE_US = 1_790_812_800_000_000  # 2026-10-01T00:00:00Z
SPAN_US = 30 * 86_400_000_000
I_PREFIX = "b0b0b0b0b0b0"
F_PREFIX = "f0f0f0f0f0f0"
_CHUNK = 5_000


def interaction_ts(k: int, n: int) -> int:
    """The timestamp (µs since the epoch) of interaction ``k`` of ``n``."""
    return BASE_US + (k * SPAN_US) // max(n, 1)


def interaction_id(k: int, n: int) -> str:
    """The id of interaction ``k``: the format of ``rlhfkit.new_id`` (time-sortable)."""
    return "%012x%s%08x" % (interaction_ts(k, n) // 1000, I_PREFIX, k)


def prompt_text(group: int) -> str:
    """The prompt shared by the four interactions of ``group``."""
    return (
        f"Question {group}: how do I {VERBS[group % len(VERBS)]} {TOPICS[group % len(TOPICS)]} in Python? "
        "Please explain step by step."
    )


def interaction_fields(k: int, n: int) -> dict[str, Any]:
    """Interaction ``k`` of ``n`` as JSON-safe keyword arguments of ``Interaction`` (no id, no timestamp)."""
    model = MODELS[k % 4]
    group = k // 4
    p_tokens, c_tokens = 20 + k % 50, 50 + (k * 7) % 200
    fields: dict[str, Any] = {
        "prompt": prompt_text(group),
        "response": (
            f"Answer {k} by {model}. To {VERBS[group % len(VERBS)]} {TOPICS[group % len(TOPICS)]}, start by reading "
            "the input carefully, then handle the edge cases one by one, and finally write a small test that "
            f"checks the result. Variant {k % 4} of the explanation keeps each step short."
        ),
        "model": model,
        "provider": PROVIDERS[model],
        "user_id": f"user-{k % 5000:04d}",
        "session_id": f"sess-{k // 8:07d}",
        "latency": float(200 + (k * 37) % 3000),
        "token_usage": {"prompt": p_tokens, "completion": c_tokens, "total": p_tokens + c_tokens},
        "model_params": {"temperature": 0.7},
        "metadata": {"app": "bench", "route": "/chat"},
        "response_id": f"resp-{k}",
        "finish_reason": "stop",
    }
    if k % 200 == 0:
        fields["error"] = {"type": "RateLimitError", "message": "rate limited", "status_code": 429}
    return fields


def _mix(x: int) -> int:
    """A deterministic 32-bit scramble of ``x`` (spreads feedback over interactions and kinds)."""
    x = (x * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    return x ^ (x >> 13)


def feedback_fields(j: int, n_interactions: int) -> dict[str, Any]:
    """Feedback ``j`` (about a pseudo-random one of ``n_interactions``) as ``Feedback`` fields."""
    h = _mix(j)
    k = (h >> 5) % n_interactions
    ts = interaction_ts(k, n_interactions) + 60_000_000 + j % 1_000_000  # as in feedback_order
    kind = h % 20
    if kind < 10:
        data: dict[str, Any] = {"type": "rating", "value": float(1 + (h >> 11) % 5), "max_rating": 5}
    elif kind < 16:
        data = {"type": "binary", "value": "thumbs_down" if (h >> 13) % 3 == 0 else "thumbs_up"}
    elif kind < 18:
        partner = (k // 4) * 4 + (k % 4 + 1) % 4
        if partner >= n_interactions:
            partner = k ^ 1 if (k ^ 1) < n_interactions else k - 1
        data = {"type": "comparative", "preferred_id": interaction_id(k, n_interactions),
                "alternative_ids": [interaction_id(partner, n_interactions)], "reason": "clearer", "confidence": 0.8}  # fmt: skip
    elif kind == 18:
        sentiment = ("positive", "negative", "neutral")[j % 3]
        comment = {"positive": "helpful", "negative": "wrong", "neutral": "fine"}[sentiment]
        data = {"type": "text", "comment": f"The answer was {comment}.", "sentiment": sentiment}
    else:
        data = {"type": "multi_dimensional",
                "dimensions": {"accuracy": float(1 + (h >> 7) % 5), "clarity": float(1 + (h >> 17) % 5)}}  # fmt: skip
    return {
        "id": "%012x%s%08x" % (ts // 1000, F_PREFIX, j),
        "interaction_id": interaction_id(k, n_interactions),
        "type": data["type"],
        "data": data,
        "user_id": f"rater-{j % 300:03d}",
        "source": "human",
        "timestamp": ts,
    }


def schema_key() -> str:
    """A hash of the schema ``SQLStorage.initialize()`` creates today (the cache key)."""
    path = cache_dir() / f"schema-probe-{os.getpid()}.db"
    try:
        storage = _init_schema(path)
        storage.close()
        conn = sqlite3.connect(path)
        sql = "\n".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"))
        conn.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return hashlib.sha256(f"{GENERATOR_VERSION}\n{sql}".encode()).hexdigest()[:12]


def _init_schema(path: Path) -> Any:
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(f"sqlite:///{path}")
    storage.initialize()
    return storage


def feedback_order(n_feedback: int, n_interactions: int) -> list[int]:
    """Feedback numbers in the order of their ids, i.e. of their timestamps (as they would arrive)."""
    keys = []
    for j in range(n_feedback):
        k = (_mix(j) >> 5) % n_interactions
        keys.append(((interaction_ts(k, n_interactions) + 60_000_000 + j % 1_000_000) // 1000, j))
    keys.sort()
    return [j for _, j in keys]


def fast_build_connections(storage: Any) -> None:
    """A large page cache and no fsync on ``storage``'s SQLite connections: a cache needs no durability."""
    from sqlalchemy import event

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA cache_size = -1000000")
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.close()

    event.listen(storage.engine, "connect", pragmas)
    storage.engine.dispose()


def fill(storage: Any, n_interactions: int, n_feedback: int, log: Any = print) -> None:
    """Write the generated records through ``storage.write`` in batches of 5,000."""
    from rlhfkit import Feedback, Interaction, RecordBatch
    from rlhfkit.storage._sql_schema import from_micros

    start = time.perf_counter()
    for first in range(0, n_interactions, _CHUNK):
        batch = []
        for k in range(first, min(n_interactions, first + _CHUNK)):
            fields = interaction_fields(k, n_interactions)
            fields["id"] = interaction_id(k, n_interactions)
            fields["timestamp"] = from_micros(interaction_ts(k, n_interactions))
            batch.append(Interaction.model_validate(fields))
        storage.write(RecordBatch(interactions=batch))
    log(f"  interactions: {n_interactions:,} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    order = feedback_order(n_feedback, n_interactions)
    for first in range(0, n_feedback, _CHUNK):
        batch = []
        for j in order[first : first + _CHUNK]:
            fields = feedback_fields(j, n_interactions)
            fields["timestamp"] = from_micros(fields["timestamp"])
            batch.append(Feedback.model_validate(fields))
        storage.write(RecordBatch(feedback=batch))
    log(f"  feedback: {n_feedback:,} in {time.perf_counter() - start:.1f} s")


def check_readable(url: str) -> None:
    """Read a few records back through SQLStorage."""
    from rlhfkit import FeedbackFilter, InteractionFilter
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(url)
    try:
        interactions = list(storage.iter_interactions(InteractionFilter(limit=50)))
        feedback = list(storage.iter_feedback(FeedbackFilter(limit=50)))
        if len(interactions) != 50 or len(feedback) != 50 or not any(i.feedback_ids for i in interactions):
            raise RuntimeError("the benchmark fixture does not read back as expected")
    finally:
        storage.close()


REBUILD = False
"""Set by ``python -m bench --rebuild``: build each fixture again once in this run."""
_rebuilt: set[Path] = set()


def sqlite_fixture(n_interactions: int, n_feedback: int, log: Any = print) -> Path:
    """The path of a cached SQLite database with these counts, built on first use.

    ``RLHFKIT_BENCH_SQLITE_FIXTURE`` names a ready database to use instead
    (a private copy, say, upgraded with ``rlhfkit db upgrade``).
    """
    override = os.environ.get("RLHFKIT_BENCH_SQLITE_FIXTURE")
    if override:
        return Path(override)
    path = cache_dir() / f"sqlite-{n_interactions}-{n_feedback}-{schema_key()}.db"
    if path.exists() and (not REBUILD or path in _rebuilt):
        return path
    _rebuilt.add(path)
    for old in cache_dir().glob(f"sqlite-{n_interactions}-{n_feedback}-*.db*"):
        old.unlink()
    log(f"building {path.name} (cached for later runs)")
    partial = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    storage = _init_schema(partial)
    fast_build_connections(storage)
    try:
        fill(storage, n_interactions, n_feedback, log)
    finally:
        storage.close()
    check_readable(f"sqlite:///{partial}")
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    os.replace(partial, path)
    return path


def postgres_fixture(n_interactions: int, n_feedback: int, log: Any = print) -> str:
    """A database URL of a PostgreSQL schema holding the same data as :func:`sqlite_fixture`, kept between runs.

    The schema ``bench_fixture_<counts>_<key>`` is marked complete by a table
    ``bench_fixture_done``; older fixtures of the same counts are dropped.
    """
    import psycopg

    from ._pg import POSTGRES_DSN, url_with_schema

    prefix = f"bench_fixture_{n_interactions}_{n_feedback}_"
    name = prefix + schema_key()
    url = url_with_schema(name)
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        done = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'bench_fixture_done'",
            (name,),
        ).fetchone()
        if done and not REBUILD:
            return url
        for (old,) in conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s", (prefix + "%",)
        ).fetchall():
            conn.execute(f'DROP SCHEMA "{old}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    log(f"building PostgreSQL schema {name} (kept for later runs)")
    from rlhfkit.storage.sql import SQLStorage

    storage = SQLStorage(url)
    storage.initialize()
    try:
        fill(storage, n_interactions, n_feedback, log)
        with storage.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.exec_driver_sql("CREATE TABLE bench_fixture_done (built_at timestamptz DEFAULT now())")
    finally:
        storage.close()
    return url


def sample_interactions(n: int) -> list[Any]:
    """``n`` realistic Interaction objects with fresh ids (for write benchmarks)."""
    from rlhfkit import Interaction
    from rlhfkit._models import new_id

    return [Interaction.model_validate({**interaction_fields(k, n), "id": new_id()}) for k in range(n)]


def interaction_payloads(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` interactions as JSON objects in rlhfkit's own shape (for the collector)."""
    return [interaction_fields(k, 1_000_000) for k in range(start, start + n)]
