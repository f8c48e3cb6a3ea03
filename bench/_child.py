"""Run one benchmark function in this process and print its JSON result as the last line.

``python -m bench._child MODULE FUNC '{"kwarg": ...}'`` — used by
:func:`bench._common.run_child` so that peak memory is the child's own. A
line ``VMHWM_MB <peak>`` precedes the result.
"""

from __future__ import annotations

import importlib
import json
import sys


def main(argv: list[str]) -> None:
    """Import ``bench.<MODULE>``, call ``FUNC(**kwargs)`` and print the result as JSON."""
    module, func, kwargs = argv[0], argv[1], json.loads(argv[2]) if len(argv) > 2 else {}
    result = getattr(importlib.import_module(f"bench.{module}"), func)(**kwargs)
    sys.stdout.flush()
    print(f"VMHWM_MB {peak_rss_mb()}", flush=True)
    print(json.dumps(result, default=str), flush=True)


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
