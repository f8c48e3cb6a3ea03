"""Helpers that start real servers on 127.0.0.1 for the tests."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_dsn_or_fail() -> str:
    """RLHFKIT_TEST_POSTGRES_DSN (default: the local test database), checked for reachability.

    An unreachable PostgreSQL fails the test (CI=true or not): `make test`
    starts the local server, and the message says how to start it by hand.
    """
    dsn = os.environ.get("RLHFKIT_TEST_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=5):
            pass
    except Exception as exc:  # any failure means "not reachable"
        pytest.fail(
            f"PostgreSQL at {dsn} is not reachable ({exc}). Start it with `make services` "
            "or set RLHFKIT_TEST_POSTGRES_DSN to a reachable database."
        )
    return dsn


class UvicornThread:
    """An ASGI app served by uvicorn in a daemon thread on 127.0.0.1."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[UvicornThread]:
    """Serve ``app`` for the duration of the block."""
    server = UvicornThread(app, port).start()
    try:
        yield server
    finally:
        server.stop()
