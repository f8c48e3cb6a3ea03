"""``python -m bench [--quick] [--only NAME ...] [--json PATH]``: run the benchmarks, print a table.

Each benchmark module runs in turn (a failure is reported and the others
still run); the table is printed in Markdown so it can be pasted into
BENCHMARKS.md, and every figure is written to a JSON file with the machine
it was measured on.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ._common import CACHE, Result, fmt, machine

BENCHMARKS = (
    "calibration",
    "core_logger",
    "storage_write",
    "stats",
    "export",
    "instrumentation",
    "collector_ingest",
    "postgres_bulk",
    "dataset",
    "dashboard",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--json", type=Path, help="where to write the results (default bench/.cache/results[-quick].json)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database fixtures first")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and whether they can run")
    return parser.parse_args(argv)


def _table(results: list[Result], title: str) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.MARKDOWN, title_justify="left")
    for column in ("benchmark", "measure", "value", "target", "status", "note"):
        table.add_column(column, justify="right" if column == "value" else "left", overflow="fold")
    for r in results:
        status = "" if r.ok is None else ("[green]met[/green]" if r.ok else "[red]MISSED[/red]")
        if r.unit == "error":
            status = "[red]ERROR[/red]"
        table.add_row(r.bench, r.measure, fmt(r.value, r.unit) if r.unit != "error" else "", r.target, status, r.note)
    return table


def markdown(results: list[Result], info: dict[str, Any], timings: dict[str, float], loads: dict[str, float]) -> str:
    """The results as a Markdown section for BENCHMARKS.md: machine, then one table."""
    cpu = info.get("cpu", {})
    lines = [
        f"Measured {info['date_utc']} on {info['nproc']} CPUs ({cpu.get('Model name', '?')}), "
        f"{info.get('memory_total_mb', 0) // 1024} GB RAM, Python {info['python']}; "
        f"load average at start {info['loadavg_at_start'][0]:.1f}.",
        "",
        "| benchmark | measure | value | target | status | note |",
        "|---|---|--:|---|---|---|",
    ]
    for r in results:
        status = "" if r.ok is None else ("met" if r.ok else "**missed**")
        value = "error" if r.unit == "error" else fmt(r.value, r.unit)
        lines.append(f"| {r.bench} | {r.measure} | {value} | {r.target} | {status} | {r.note} |")
    lines += ["", "Seconds per benchmark (1-minute load average before it): " + ", ".join(
        f"{name} {seconds:.0f} s ({loads.get(name, 0):.1f})" for name, seconds in timings.items()
    )]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; exit status 0 even when targets are missed (they are figures, not tests)."""
    from rich.console import Console

    args = _parse(sys.argv[1:] if argv is None else argv)
    console = Console(width=200)
    names = args.only or list(BENCHMARKS)
    if args.list:
        for name in BENCHMARKS:
            module = importlib.import_module(f"bench.{name}")
            reason = module.available()
            console.print(f"{name:18} {module.TITLE}" + (f"  [yellow](not runnable: {reason})[/yellow]" if reason else ""))
        return 0
    if args.rebuild:
        from . import _fixtures

        _fixtures.REBUILD = True
    info = machine()
    console.print(f"[bold]rlhfkit benchmarks[/bold] ({'quick' if args.quick else 'full'}) on {info}")
    results: list[Result] = []
    timings: dict[str, float] = {}
    loads: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        reason = module.available()
        if reason:
            console.print(f"[yellow]- {name}: not run ({reason})[/yellow]")
            results.append(Result(name, "not run", None, "", note=reason))
            continue
        console.print(f"[bold]- {name}[/bold]: {module.TITLE}")
        loads[name] = os.getloadavg()[0]
        start = time.perf_counter()
        try:
            produced = module.run(quick=args.quick)
        except Exception as exc:
            traceback.print_exc()
            produced = [Result(name, "failed", None, "error", note=f"{type(exc).__name__}: {exc}"[:200])]
        timings[name] = time.perf_counter() - start
        for r in produced:
            ok = "" if r.ok is None else (" ✓" if r.ok else " ✗ MISSED")
            console.print(f"    {r.measure}: {fmt(r.value, r.unit)}  {r.target}{ok}  {r.note}", highlight=False)
        results.extend(produced)
        console.print(f"    ({timings[name]:.0f} s)")
    title = f"rlhfkit benchmarks, {info['date_utc']}, {info['nproc']} CPUs, Python {info['python']}"
    if args.quick:
        title += " (quick sizes: not the figures of record)"
    console.print()
    console.print(_table(results, title))
    path = args.json or CACHE / ("results-quick.json" if args.quick else "results.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info, "quick": args.quick, "seconds": timings, "loadavg_before": loads,
        "results": [r.as_dict() for r in results],
    }  # fmt: skip
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = path.with_suffix(".md")
    md.write_text(markdown(results, info, timings, loads))
    console.print(f"results written to {path} and {md} (Markdown for BENCHMARKS.md); total {sum(timings.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
