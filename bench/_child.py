"""Run one benchmark function in this process and print its JSON result as the last line.

``python -m bench._child MODULE FUNC '{"kwarg": ...}'`` — used by
:func:`bench._common.run_child` so that peak memory is the child's own. Lines
``VMHWM_MB <peak>`` and ``RSS_PARTS_MB <peak anonymous> <peak file-backed>``
(sampled every 50 ms) precede the result.
"""

from __future__ import annotations

import importlib
import json
import sys
import threading


def main(argv: list[str]) -> None:
    """Import ``bench.<MODULE>``, call ``FUNC(**kwargs)`` and print the result as JSON."""
    module, func, kwargs = argv[0], argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
    peaks = [0.0, 0.0]
    stop = threading.Event()

    def sample() -> None:
        # VmHWM counts file pages too (SQLite maps the database): keep the peaks of each kind.
        while not stop.wait(0.05):
            anon, file = rss_parts_mb()
            peaks[0], peaks[1] = max(peaks[0], anon), max(peaks[1], file)

    threading.Thread(target=sample, daemon=True).start()
    result = getattr(importlib.import_module(f"bench.{module}"), func)(**kwargs)
    stop.set()
    sys.stdout.flush()
    print(f"VMHWM_MB {peak_rss_mb()}", flush=True)
    print(f"RSS_PARTS_MB {peaks[0]} {peaks[1]}", flush=True)
    print(json.dumps(result, default=str), flush=True)


def rss_parts_mb() -> tuple[float, float]:
    """This process's resident memory now, split: anonymous (heap) and file-backed (e.g. mmap'd databases)."""
    parts = {"RssAnon:": 0.0, "RssFile:": 0.0}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key = line.split(":")[0] + ":"
                if key in parts:
                    parts[key] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return parts["RssAnon:"], parts["RssFile:"]


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak resident set size of a process (VmHWM), in MB; 0 when unknown.

    Unlike ``ru_maxrss`` of a child, VmHWM starts afresh at ``exec``: it does
    not include the memory of the parent the child was forked from.
    """
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


if __name__ == "__main__":
    main(sys.argv[1:])
