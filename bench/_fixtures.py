"""Big SQLite databases in rlhfkit's own schema, built fast and cached under ``bench/.cache``.

The schema comes from ``SQLStorage(...).initialize()``; rows are then inserted
with raw ``sqlite3.executemany``, shaped exactly as ``rlhfkit/storage/_sql_rows.py``
writes them (columns, JSON documents, microsecond timestamps, the feedback's
``model`` copy and its ``feedback_targets``). A built database is checked by
reading records back through ``SQLStorage`` and reused by later runs while the
schema and this generator are unchanged.

The data: every prompt is answered by four models (four interactions in a
row share a prompt); each feedback is about a pseudo-random interaction (so
some get several, about a third none): half ratings,
30 % thumbs, 10 % comparisons within the prompt's group, 5 % text, 5 %
multi-dimensional. Timestamps spread over 30 days from 2026-10-01.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._common import cache_dir

GENERATOR_VERSION = 2
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
_CHUNK = 50_000

INSERT_INTERACTIONS = (
    "INSERT INTO interactions (project, id, timestamp, model, provider, user_id, session_id, latency, prompt_tokens, "
    "completion_tokens, total_tokens, has_error, prompt, response, doc) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_FEEDBACK = (
    "INSERT INTO feedback (project, id, interaction_id, type, timestamp, user_id, session_id, source, value, "
    "rating_value, max_rating, sentiment, data, metadata, model) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
INSERT_TARGETS = "INSERT INTO feedback_targets (project, feedback_id, interaction_id, role, timestamp) VALUES (?,?,?,?,?)"


def interaction_ts(k: int, n: int) -> int:
    """The timestamp (µs) of interaction ``k`` of ``n``."""
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


def interaction_row(k: int, n: int) -> tuple[Any, ...]:
    """Interaction ``k`` as the row ``_sql_rows.interaction_row`` would write."""
    model = MODELS[k % 4]
    group = k // 4
    p_tokens, c_tokens = 20 + k % 50, 50 + (k * 7) % 200
    error = k % 200 == 0
    doc = (
        '{"model_params":{"temperature":0.7},"token_usage":{"prompt":%d,"completion":%d,"total":%d,'
        '"cached":null,"reasoning":null},"context":[],"metadata":{"app":"bench","route":"/chat"},'
        '"response_id":"resp-%d","finish_reason":"stop","tools":[],"tool_calls":[],"metrics":null,'
        '"error":%s,"environment":null,"incomplete":false}'
        % (p_tokens, c_tokens, p_tokens + c_tokens, k,
           '{"type":"RateLimitError","message":"rate limited","status_code":429}' if error else "null")
    )  # fmt: skip
    response = (
        f"Answer {k} by {model}. To {VERBS[group % len(VERBS)]} {TOPICS[group % len(TOPICS)]}, start by reading the "
        "input carefully, then handle the edge cases one by one, and finally write a small test that checks "
        f"the result. Variant {k % 4} of the explanation keeps each step short."
    )
    return (
        PROJECT, interaction_id(k, n), interaction_ts(k, n), model, PROVIDERS[model], f"user-{k % 5000:04d}",
        f"sess-{k // 8:07d}", float(200 + (k * 37) % 3000), p_tokens, c_tokens, p_tokens + c_tokens, error,
        prompt_text(group), response, doc,
    )  # fmt: skip


def feedback_rows(j: int, n_interactions: int) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """Feedback ``j`` (about a pseudo-random interaction) and its feedback_targets rows."""
    h = _mix(j)
    k = (h >> 5) % n_interactions
    ts = interaction_ts(k, n_interactions) + 60_000_000 + j // n_interactions
    fid = "%012x%s%08x" % (ts // 1000, F_PREFIX, j)
    iid = interaction_id(k, n_interactions)
    model = MODELS[k % 4]
    kind = h % 20
    value = rating_value = max_rating = sentiment = None
    targets = [(PROJECT, fid, iid, "subject", ts)]
    if kind < 10:
        rating = float(1 + (h >> 11) % 5)
        ftype, value, rating_value, max_rating = "rating", (rating - 1) / 4, rating, 5
        data = '{"type":"rating","value":%s,"max_rating":5,"comment":null}' % rating
    elif kind < 16:
        up = (h >> 13) % 3 != 0
        ftype, value = "binary", 1.0 if up else -1.0
        data = '{"type":"binary","value":"%s"}' % ("thumbs_up" if up else "thumbs_down")
    elif kind < 18:
        partner = (k // 4) * 4 + (k % 4 + 1) % 4
        alt = interaction_id(partner if partner < n_interactions else k ^ 1, n_interactions)
        ftype = "comparative"
        data = (
            '{"type":"comparative","preferred_id":"%s","alternative_ids":["%s"],"reason":"clearer","confidence":0.8}'
            % (iid, alt)
        )
        targets = [(PROJECT, fid, iid, "preferred", ts), (PROJECT, fid, alt, "alternative", ts)]
    elif kind == 18:
        sentiment = ("positive", "negative", "neutral")[j % 3]
        ftype = "text"
        data = '{"type":"text","comment":"The answer was %s.","sentiment":"%s"}' % (
            {"positive": "helpful", "negative": "wrong", "neutral": "fine"}[sentiment], sentiment)  # fmt: skip
    else:
        accuracy, clarity = float(1 + (h >> 7) % 5), float(1 + (h >> 17) % 5)
        ftype, value = "multi_dimensional", (accuracy + clarity) / 2
        data = (
            '{"type":"multi_dimensional","dimensions":{"accuracy":%s,"clarity":%s},"weights":null,'
            '"overall_comment":null,"max_score":5.0}' % (accuracy, clarity)
        )
    row = (
        PROJECT, fid, iid, ftype, ts, f"rater-{j % 300:03d}", None, "human", value, rating_value, max_rating,
        sentiment, data, "{}", model,
    )  # fmt: skip
    return row, targets


def _mix(x: int) -> int:
    """A deterministic 32-bit scramble of ``x`` (spreads feedback over interactions and kinds)."""
    x = (x * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    return x ^ (x >> 13)


def _chunks(start: int, stop: int) -> Iterator[range]:
    for first in range(start, stop, _CHUNK):
        yield range(first, min(stop, first + _CHUNK))


def schema_key() -> str:
    """A hash of the schema ``SQLStorage.initialize()`` creates today (the cache key's part)."""
    path = cache_dir() / f"schema-probe-{os.getpid()}.db"
    try:
        storage = _init_schema(path)
        storage.close()
        with sqlite3.connect(path) as conn:
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


def fill_sqlite(path: Path, n_interactions: int, n_feedback: int, log: Any = print) -> None:
    """Create rlhfkit's schema at ``path`` and insert the generated rows (indexes built afterwards)."""
    _init_schema(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    indexes = [
        (name, sql) for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name IN ('interactions', 'feedback', 'feedback_targets')"
        )
    ]  # fmt: skip
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    start = time.perf_counter()
    for rows in _chunks(0, n_interactions):
        conn.execute("BEGIN")
        conn.executemany(INSERT_INTERACTIONS, (interaction_row(k, n_interactions) for k in rows))
        conn.execute("COMMIT")
    log(f"  interactions: {n_interactions:,} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for rows in _chunks(0, n_feedback):
        built = [feedback_rows(j, n_interactions) for j in rows]
        conn.execute("BEGIN")
        conn.executemany(INSERT_FEEDBACK, (row for row, _ in built))
        conn.executemany(INSERT_TARGETS, (t for _, targets in built for t in targets))
        conn.execute("COMMIT")
    log(f"  feedback: {n_feedback:,} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    for _name, sql in indexes:
        conn.execute(sql)
    log(f"  indexes in {time.perf_counter() - start:.1f} s")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()


def check_readable(url: str) -> None:
    """Read a few records back through SQLStorage: the generated rows must parse as the real ones do."""
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


def sqlite_fixture(n_interactions: int, n_feedback: int, log: Any = print) -> Path:
    """The path of a cached SQLite database with these counts, built on first use."""
    path = cache_dir() / f"sqlite-{n_interactions}-{n_feedback}-{schema_key()}.db"
    if path.exists():
        return path
    for old in cache_dir().glob(f"sqlite-{n_interactions}-{n_feedback}-*.db*"):
        old.unlink()
    log(f"building {path.name} (cached for later runs)")
    partial = path.with_suffix(".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    fill_sqlite(partial, n_interactions, n_feedback, log)
    check_readable(f"sqlite:///{partial}")
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    os.replace(partial, path)
    return path


def sample_interactions(n: int) -> list[Any]:
    """``n`` realistic Interaction objects (for write benchmarks), like those a logger would build."""
    from rlhfkit import Interaction
    from rlhfkit._models import new_id

    out = []
    for k in range(n):
        row = interaction_row(k, n)
        out.append(
            Interaction(
                id=new_id(), prompt=row[12], response=row[13], model=row[3], provider=row[4], user_id=row[5],
                session_id=row[6], latency=row[7], token_usage={"prompt": row[8], "completion": row[9]},
                model_params={"temperature": 0.7}, metadata={"app": "bench", "route": "/chat"},
                finish_reason="stop", response_id=f"resp-{k}",
            )
        )  # fmt: skip
    return out


def interaction_payloads(n: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` interactions as JSON objects in rlhfkit's own shape (for the collector)."""
    out = []
    for k in range(start, start + n):
        row = interaction_row(k, 1_000_000)
        out.append({
            "prompt": row[12], "response": row[13], "model": row[3], "provider": row[4], "user_id": row[5],
            "session_id": row[6], "latency": row[7], "token_usage": {"prompt": row[8], "completion": row[9]},
            "metadata": {"app": "bench", "route": "/chat"},
        })  # fmt: skip
    return out


def dumps(value: Any) -> str:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"))
