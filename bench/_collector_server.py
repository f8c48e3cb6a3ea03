"""The collector under uvicorn, in its own process, for the ingest and dashboard benchmarks.

``python -m bench._collector_server DB_URL PROJECT [WORKERS]`` builds
``create_app(DB_URL)``, creates a read-write API key of ``PROJECT``, prints
``READY <port> <key>`` and serves on 127.0.0.1 until it is terminated: one
uvicorn worker by default (as ``rlhfkit serve`` runs), or WORKERS worker
processes sharing the port.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

_DB_URL = "RLHFKIT_BENCH_COLLECTOR_DB"


def app() -> Any:
    """The app of a worker process (uvicorn's factory when there are several workers)."""
    from rlhfkit.server import create_app

    return create_app(os.environ[_DB_URL])


def main(argv: list[str]) -> None:
    """Build the app, print the port and key, serve."""
    import uvicorn

    from rlhfkit.server import create_app

    db_url, project, *rest = argv
    workers = int(rest[0]) if rest else 1
    collector = create_app(db_url)
    key = collector.state.keys.create(project, "bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options: dict[str, Any] = {"host": "127.0.0.1", "port": port, "log_level": "warning", "access_log": False}
    print(f"READY {port} {key}", flush=True)
    if workers == 1:
        uvicorn.Server(uvicorn.Config(collector, **options)).run()
    else:
        os.environ[_DB_URL] = db_url
        uvicorn.run("bench._collector_server:app", factory=True, workers=workers, **options)


if __name__ == "__main__":
    main(sys.argv[1:])
