"""``rlhfkit keys create`` and ``rlhfkit serve`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.server import SQLKeyStore, hash_key
from rlhfkit.storage.sql import SQLStorage
from tests._servers import free_port

ROOT = str(Path(__file__).resolve().parents[2])


def test_keys_create_prints_a_key_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    """The printed key works for its project and write-only flag; the database holds its hash, not the key."""
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    result = CliRunner().invoke(app, ["keys", "create", "--project", "shop", "--write-only", "--db", db])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[0]
    assert key.startswith("rk_") and len(key) > 40
    storage = SQLStorage(db)
    try:
        found = SQLKeyStore(storage.engine).lookup(key)
        assert found is not None and (found.project, found.write_only) == ("shop", True)
        with storage.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT key_hash FROM api_keys").fetchall()
        assert [r[0] for r in rows] == [hash_key(key)]
        assert key.encode() not in (tmp_path / "keys.db").read_bytes()
    finally:
        storage.close()
    refused = CliRunner().invoke(app, ["keys", "create", "--project", "", "--db", db])
    assert refused.exit_code != 0


def _start_serve(db: str, port: int, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from rlhfkit.cli import main; main()", "serve", "--db", db,
         "--host", "127.0.0.1", "--port", str(port), "--create-key", "demo"],
        env={**os.environ, "PYTHONPATH": ROOT, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    key = ""
    for _ in range(20):
        line = proc.stdout.readline()
        if "API key" in line:
            key = line.split()[-1]
            break
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    return proc, key


def test_serve_with_create_key_prints_a_working_key_and_reuses_it(tmp_path: Path) -> None:
    """`rlhfkit serve --create-key demo` prints its address and a key that reads project 'default'; RLHFKIT_API_KEY is reused."""
    db = f"sqlite:///{tmp_path / 'rlhf.db'}"
    port = free_port()
    proc, key = _start_serve(db, port, {})
    try:
        assert key.startswith("rk_")
        reply = httpx.get(f"http://127.0.0.1:{port}/v1/stats", headers={"Authorization": f"Bearer {key}"})
        assert reply.status_code == 200 and reply.json()["total_interactions"] == 0
    finally:
        proc.terminate()
        proc.wait(20)
    proc, again = _start_serve(db, port, {"RLHFKIT_API_KEY": key})
    try:
        assert again == key
    finally:
        proc.terminate()
        proc.wait(20)


def test_serve_logs_requests_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rlhfkit serve` runs uvicorn without its access log unless --access-log is given."""
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    db = f"sqlite:///{tmp_path / 'rlhf.db'}"
    assert CliRunner().invoke(app, ["serve", "--db", db]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "--db", db, "--access-log"]).exit_code == 0
    assert [c["access_log"] for c in calls] == [False, True]


def test_serve_runs_one_worker_per_cpu_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rlhfkit serve` starts one uvicorn worker per CPU, one for an in-memory database, or --workers N."""
    import uvicorn

    from rlhfkit.cli._serve import default_workers

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append(options))
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    db = f"sqlite:///{tmp_path / 'rlhf.db'}"
    assert CliRunner().invoke(app, ["serve", "--db", db]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "--db", db, "--workers", "2"]).exit_code == 0
    assert CliRunner().invoke(app, ["serve", "--db", "sqlite://"]).exit_code == 0
    assert [c.get("workers", 1) for c in calls] == [3, 2, 1]
    assert default_workers("postgresql://h/db") == default_workers("postgres://h/db") == default_workers(db) == 3
    assert default_workers("sqlite://") == default_workers("sqlite:///:memory:") == 1
    assert CliRunner().invoke(app, ["serve", "--db", db, "--workers", "0"]).exit_code != 0
