"""What every benchmark shares: results, sizes, the cache, timing, and child processes.

A benchmark module exposes ``NAME``, ``TITLE``, ``available() -> str | None``
(a reason when the code it measures is missing) and ``run(quick) -> list[Result]``.
Figures that depend on memory are measured in a child process (``python -m
bench._child``) whose peak RSS is its own VmHWM from ``/proc`` (``ru_maxrss``
of a child would include the RSS of the parent it was forked from).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
POSTGRES_DSN = os.environ.get("RLHFKIT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Result:
    """One measured figure, with the target it is judged against (if any)."""

    bench: str
    measure: str
    value: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of this result."""
        return asdict(self)


def at_least(value: float, bound: float) -> bool:
    """True when ``value`` reaches the lower ``bound``."""
    return value >= bound


def cache_dir(*parts: str) -> Path:
    """A directory under ``bench/.cache`` (created)."""
    path = CACHE.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def fmt(value: float | None, unit: str = "") -> str:
    """A figure printed for people: thousands separators, three significant digits below 100."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds ``func()`` took on a monotonic clock, and what it returned."""
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def median(values: Iterable[float]) -> float:
    """The median of ``values``."""
    return float(statistics.median(list(values)))


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class ChildRun:
    """What a child process returned, how long it ran and its peak resident memory."""

    result: Any
    wall_s: float
    peak_rss_mb: float
    timed_out: bool = False
    anon_mb: float | None = None
    file_mb: float | None = None


def run_child(module: str, func: str, kwargs: dict[str, Any] | None = None, timeout_s: float = 900.0) -> ChildRun:
    """Run ``bench.<module>.<func>(**kwargs)`` in a fresh interpreter; its JSON result, time and peak RSS.

    The child prints its result as the last line of stdout; its stderr passes
    through. A child still running after ``timeout_s`` is killed and the run
    comes back with ``timed_out`` set and no result.
    """
    import threading

    from ._child import peak_rss_mb

    command = [sys.executable, "-m", "bench._child", module, func, json.dumps(kwargs or {})]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    polled = [0.0]
    stop = threading.Event()

    def poll() -> None:
        # For a child that is stopped: its peak so far, read every 0.2 s.
        while not stop.wait(0.2):
            polled[0] = max(polled[0], peak_rss_mb(process.pid))

    killer = threading.Timer(timeout_s, process.kill)
    poller = threading.Thread(target=poll, daemon=True)
    killer.start()
    poller.start()
    try:
        assert process.stdout is not None
        output = process.stdout.read()
        _pid, status, _usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
        stop.set()
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if wall >= timeout_s and process.returncode != 0:
        return ChildRun(result=None, wall_s=wall, peak_rss_mb=polled[0], timed_out=True)
    if process.returncode != 0:
        raise RuntimeError(f"child bench.{module}.{func} exited with {process.returncode}: {output[-500:]}")
    lines = [line for line in output.splitlines() if line.strip()]
    peak = next((float(line.split()[1]) for line in reversed(lines) if line.startswith("VMHWM_MB ")), polled[0])
    parts = next((line.split()[1:] for line in reversed(lines) if line.startswith("RSS_PARTS_MB ")), None)
    return ChildRun(
        result=json.loads(lines[-1]) if lines else None, wall_s=wall, peak_rss_mb=peak,
        anon_mb=float(parts[0]) if parts else None, file_mb=float(parts[1]) if parts else None,
    )  # fmt: skip


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    import platform

    info: dict[str, Any] = {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        wanted = ("Architecture", "CPU(s)", "Model name", "Thread(s) per core", "CPU MHz", "L2 cache", "L3 cache")
        info["cpu"] = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in lscpu.splitlines())
            if k.strip() in wanted
        }
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_total_mb"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    return info
