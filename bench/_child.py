"""Run one benchmark function in this process and print its JSON result as the last line.

``python -m bench._child MODULE FUNC '{"kwarg": ...}'`` — used by
:func:`bench._common.run_child` so that peak memory is the child's own.
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
    print(json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
