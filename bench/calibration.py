"""The machine's speed at the time of the run, so that runs on different days can be compared.

The machines these figures come from are shared: the same code has measured
two to three times slower on one day than on another. Two fixed workloads,
timed before everything else, say how fast this machine was during the run:

* a pure-Python loop of 10,000,000 additions (the interpreter's speed, which
  bounds every figure spent in Python);
* 200,000 rows of about 1 KB inserted with ``sqlite3`` into an in-memory
  database in 1,000-row transactions (the C library's and the memory's speed).

Each is the best of three; neither involves rlhfkit.
"""

from __future__ import annotations

import sqlite3
import time

from ._common import Result

NAME = "calibration"
TITLE = "machine speed during the run (pure-Python loop, in-memory sqlite3 inserts), no target"

LOOP = 10_000_000
ROWS = 200_000


def available() -> str | None:
    """Always runnable."""
    return None


def _loop() -> float:
    start = time.perf_counter()
    total = 0
    for i in range(LOOP):
        total += i
    return time.perf_counter() - start


def _sqlite_rows(rows: list[tuple[int, str, str]]) -> float:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT)")
    start = time.perf_counter()
    for first in range(0, len(rows), 1000):
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO t VALUES (?, ?, ?)", rows[first : first + 1000])
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def run(quick: bool = False) -> list[Result]:
    """Best of three of each workload."""
    rows = [(i, "a" * 400, "b" * 600) for i in range(ROWS)]
    loop = min(_loop() for _ in range(3))
    inserts = min(_sqlite_rows(rows) for _ in range(3))
    return [
        Result(NAME, "pure-Python loop, 10M additions", loop, "s", note="best of 3; lower is a faster machine"),
        Result(NAME, "sqlite3 in-memory inserts, 1 KB rows", ROWS / inserts, "rows/s", note="best of 3"),
    ]
