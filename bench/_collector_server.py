"""The collector under uvicorn, in its own process, for the ingest and dashboard benchmarks.

``python -m bench._collector_server DB_URL PROJECT`` builds ``create_app(DB_URL)``,
creates a read-write API key of ``PROJECT``, prints ``READY <port> <key>``
and serves on 127.0.0.1 (one uvicorn worker, as ``rlhfkit serve`` runs by
default) until it is terminated.
"""

from __future__ import annotations

import socket
import sys


def main(argv: list[str]) -> None:
    """Build the app, print the port and key, serve."""
    import uvicorn

    from rlhfkit.server import create_app

    db_url, project = argv
    app = create_app(db_url)
    key = app.state.keys.create(project, "bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    print(f"READY {port} {key}", flush=True)
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
