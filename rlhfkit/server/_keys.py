"""API keys of the collector: one project each, stored as hashes only.

A key is ``rk_`` followed by 43 URL-safe characters (32 random bytes); the
database keeps its SHA-256. A write-only key may ingest but not read.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

from .._models import new_id, utc_now
from ..errors import ValidationError, require

__all__ = ["ApiKey", "KeyStore", "MemoryKeyStore", "SQLKeyStore", "generate_key", "hash_key"]

KEY_PREFIX = "rk_"


def generate_key() -> str:
    """A new random API key (``rk_...``)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The SHA-256 (hex) under which ``key`` is stored."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """What the collector knows about a key: never the key itself."""

    id: str
    project: str
    name: str
    write_only: bool = False


def _check(project: str, name: str) -> None:
    if not project or len(project) > 200 or not project.strip():
        raise ValidationError("project", "must be 1 to 200 characters", project)
    if not name or len(name) > 200:
        raise ValidationError("name", "must be 1 to 200 characters", name)


class KeyStore(Protocol):
    """Where keys live: create one, find one by its plaintext."""

    def create(self, project: str, name: str, *, write_only: bool = False) -> str:
        """Store a new key's hash and return the key (the only time it is seen)."""

    def lookup(self, key: str) -> ApiKey | None:
        """The active key matching ``key``, or None."""


class MemoryKeyStore:
    """Keys in a dictionary, for tests and in-memory collectors."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}

    def create(self, project: str, name: str, *, write_only: bool = False) -> str:
        """Store a new key's hash and return the key."""
        _check(project, name)
        key = generate_key()
        self._keys[hash_key(key)] = ApiKey(new_id(), project, name, write_only)
        return key

    def lookup(self, key: str) -> ApiKey | None:
        """The key matching ``key``, or None."""
        return self._keys.get(hash_key(key))

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        """``(True, lookup(key))``: everything here is in memory."""
        return True, self.lookup(key)


class SQLKeyStore:
    """Keys in the ``api_keys`` table of an SQL database (SQLite or PostgreSQL).

    Lookups are cached for ``cache_s`` seconds in the process, so a revoked key
    may work for that long on a replica that saw it recently.
    """

    def __init__(self, engine: Any, *, cache_s: float = 10.0) -> None:
        from ..storage._sql_schema import api_keys

        self.engine = engine
        self.table = api_keys
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def create(self, project: str, name: str, *, write_only: bool = False) -> str:
        """Store a new key's hash and return the key."""
        _check(project, name)
        key = generate_key()
        with self.engine.begin() as conn:
            conn.execute(
                self.table.insert().values(
                    id=new_id(),
                    project=project,
                    name=name,
                    key_hash=hash_key(key),
                    write_only=write_only,
                    created_at=utc_now(),
                    revoked_at=None,
                )
            )
        return key

    def cached(self, key: str) -> tuple[bool, ApiKey | None]:
        """``(True, answer)`` when the answer for ``key`` is in the cache, else ``(False, None)``; no I/O."""
        digest = hash_key(key)
        with self._lock:
            hit = self._cache.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self.cache_s:
            return True, hit[1]
        return False, None

    def lookup(self, key: str) -> ApiKey | None:
        """The active key matching ``key``, or None."""
        found, answer = self.cached(key)
        if found:
            return answer
        digest = hash_key(key)
        now = time.monotonic()
        sa = require("sqlalchemy", "sql")
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.id, t.c.project, t.c.name, t.c.write_only).where(
                    t.c.key_hash == digest, t.c.revoked_at.is_(None)
                )
            ).first()
        result = None if row is None else ApiKey(str(row.id), row.project, row.name, bool(row.write_only))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now, result)
        return result

    def revoke(self, name: str, project: str) -> int:
        """Revoke every active key called ``name`` in ``project``; return how many."""
        sa = require("sqlalchemy", "sql")
        t = self.table
        with self.engine.begin() as conn:
            result = conn.execute(
                sa.update(t)
                .where(t.c.project == project, t.c.name == name, t.c.revoked_at.is_(None))
                .values(revoked_at=utc_now())
            )
        with self._lock:
            self._cache.clear()
        return int(result.rowcount or 0)
