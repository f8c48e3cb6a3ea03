"""storage='remote': batches posted to a real HTTP server on 127.0.0.1 with the spec's payload."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rlhfkit.instrument import RLHFInstrumentation


class _Collector(BaseHTTPRequestHandler):
    bodies: list[tuple[str, Any, str | None]]

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.bodies.append(
            (self.path, json.loads(self.rfile.read(length)), self.headers.get("authorization"))
        )
        data = b'{"accepted": true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, Any, str | None]]]]:
    """A minimal HTTP server on 127.0.0.1 recording every POST."""
    bodies: list[tuple[str, Any, str | None]] = []
    handler = type("Handler", (_Collector,), {"bodies": bodies})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_remote_storage_posts_the_spec_payload(
    collector: tuple[str, list[tuple[str, Any, str | None]]], tmp_path: Path
) -> None:
    """Captured interactions reach the remote endpoint as {sessionId, interactions, timestamp}, authenticated."""
    url, bodies = collector
    inst = RLHFInstrumentation(
        storage="remote", remote_endpoint=url, api_key="rk_test", spool_dir=str(tmp_path), batch_size=2
    )
    try:
        with inst.context(session_id="sess-42"):
            first = inst.capture_interaction("remote one", "r1")
            inst.capture_interaction("remote two", "r2")
            inst.capture_interaction("remote three", "r3")
        assert first is not None
        assert inst.flush(timeout_s=10) == 0
    finally:
        inst.destroy(timeout_s=5)
    payloads = [body for _, body, _ in bodies]
    assert payloads and all({"sessionId", "interactions", "timestamp"} <= set(p) for p in payloads)
    assert all(auth == "Bearer rk_test" for _, _, auth in bodies)
    sent = [i["prompt"] for p in payloads for i in p["interactions"]]
    assert sorted(sent) == ["remote one", "remote three", "remote two"]
    assert payloads[0]["sessionId"] == "sess-42" and isinstance(payloads[0]["timestamp"], int)
