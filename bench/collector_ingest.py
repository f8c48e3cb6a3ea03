"""Collector ingest on loopback: interactions/s and p99 batch latency, SQLite and PostgreSQL.

The collector (``create_app(db_url)``) runs under uvicorn in its own process,
with one worker and with one per CPU, on a fresh SQLite file and on a fresh
PostgreSQL schema.
The load generator is this process: a few threads, each with its own kept-alive
``http.client`` connection, posting batches of 100 interactions (rlhfkit's JSON shape,
bodies serialised beforehand; the server assigns ids) to
``/v1/interactions/batch`` with a Bearer API key, back to back. Rate =
interactions acknowledged / wall time; latency is per request, client side.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ._common import ROOT, Result, percentile

NAME = "collector_ingest"
TITLE = "collector ingest, batches of 100 on loopback (target ≥ 20,000 interactions/s)"

BATCH = 100
CLIENTS = 4
CAP_S = 60.0


def available() -> str | None:
    """Runnable when the collector and its server dependencies are present."""
    try:
        import httpx  # noqa: F401
        import uvicorn  # noqa: F401

        from rlhfkit.server import create_app  # noqa: F401
    except ImportError as exc:
        return f"cannot import {exc.name}"
    return None


class Collector:
    """The collector process: start, wait until it answers, stop."""

    def __init__(self, db_url: str, project: str = "default", workers: int = 1) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench._collector_server", db_url, project, str(workers)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        words = self.process.stdout.readline().split()
        if len(words) != 3 or words[0] != "READY":
            self.stop()
            raise RuntimeError("the collector did not start")
        self.url, self.key = f"http://127.0.0.1:{words[1]}", words[2]
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the collector did not answer within 30 s")

    def stop(self) -> None:
        """Terminate the server process and reap it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _bodies(count: int) -> list[bytes]:
    from ._fixtures import interaction_payloads

    return [json.dumps({"interactions": interaction_payloads(BATCH, start=i * BATCH)}).encode() for i in range(count)]


def load(url: str, key: str, bodies: list[bytes], batches: int, clients: int = CLIENTS) -> dict[str, Any]:
    """Post ``batches`` bodies from ``clients`` threads; rate, latencies and failures.

    Each thread keeps one ``http.client`` connection open: the generator shares
    the machine's cores with the collector, so it must spend little CPU per
    request.
    """
    parsed = urlsplit(url)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failures: list[str] = []
    counter = iter(range(batches))
    lock = threading.Lock()
    deadline = time.monotonic() + CAP_S

    def worker() -> None:
        connection = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                start = time.perf_counter()
                connection.request("POST", "/v1/interactions/batch", bodies[i % len(bodies)], headers)
                response = connection.getresponse()
                status, reply = response.status, response.read()
                elapsed = time.perf_counter() - start
                with lock:
                    if status == 200:
                        latencies.append(elapsed)
                    else:
                        failures.append(f"{status} {reply[:200].decode(errors='replace')}")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "rate": len(latencies) * BATCH / wall,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "ok": len(latencies),
        "failed": len(failures),
        "first_failure": failures[0] if failures else "",
        "wall_s": wall,
    }


def _measure(db_url: str, label: str, batches: int, bodies: list[bytes], workers: int) -> list[Result]:
    from rlhfkit.cli._serve import default_workers

    collector = Collector(db_url, workers=workers)
    try:
        load(collector.url, collector.key, bodies, min(20, batches))  # warm-up
        m = load(collector.url, collector.key, bodies, batches)
    finally:
        collector.stop()
    plural = "worker" if workers == 1 else "workers"
    label = f"{label}, {workers} {plural}" + (", the default" if workers == default_workers(db_url) else "")
    note = f"{m['ok'] * BATCH:,} interactions in {m['wall_s']:.1f} s, {CLIENTS} clients; p50 {m['p50_ms']:.0f} ms"
    if m["ok"] < batches:
        note += f"; {batches - m['ok']} batches not sent or refused"
    if m["failed"]:
        note += f"; {m['failed']} failed: {m['first_failure']}"
    return [
        Result(NAME, f"ingest rate ({label})", m["rate"], "rec/s", "≥ 20,000", m["rate"] >= 20_000 and not m["failed"], note),
        Result(NAME, f"p99 latency of a 100-interaction batch ({label})", m["p99_ms"], "ms"),
    ]


def run(quick: bool = False) -> list[Result]:
    """SQLite, then PostgreSQL in a fresh schema (when reachable); one uvicorn worker, then one per CPU.

    ``rlhfkit serve`` runs one worker per CPU (the collector is stateless);
    one worker is measured too, for comparison.
    """
    from ._pg import fresh_schema, postgres_unavailable

    batches = 100 if quick else 1_000
    bodies = _bodies(50)
    results: list[Result] = []
    per_cpu = max(2, os.cpu_count() or 1)
    for workers in (1, per_cpu):
        with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as tmp:
            results += _measure(f"sqlite:///{Path(tmp) / 'collector.db'}", "SQLite", batches, bodies, workers)
        reason = postgres_unavailable()
        if reason:
            results.append(Result(NAME, "ingest rate (PostgreSQL)", None, "", note=reason))
            continue
        with fresh_schema("ingest") as url:
            results += _measure(url, "PostgreSQL", batches, bodies, workers)
    return results
