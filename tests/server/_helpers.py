"""Test helpers for the collector: a fault-injecting ASGI wrapper, a reply-dropping proxy, records."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
import time
from collections import Counter
from typing import Any

from rlhfkit import Interaction
from rlhfkit._models import RecordBatch, new_id


def interactions(n: int, tag: str = "t", **fields: Any) -> list[Interaction]:
    """``n`` small interactions with fresh ids."""
    return [Interaction(id=new_id(), prompt=f"{tag} question {i}", response=f"answer {i}", **fields) for i in range(n)]


def batch(n: int, tag: str = "t") -> RecordBatch:
    """A batch of ``n`` interactions."""
    return RecordBatch(interactions=interactions(n, tag))


class FaultyApp:
    """Wraps the collector: counts the ids of accepted ingest requests, and injects faults.

    ``scripted`` is a list of ``(status, headers)`` replies given, in order,
    to the next ingest requests instead of passing them on; ``stalls`` delays
    the next requests by so many seconds before serving them; ``gate`` blocks
    ingest requests while cleared; ``attempts`` records when each ingest
    request arrived (monotonic seconds).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.delivered: Counter[str] = Counter()
        self.attempts: list[float] = []
        self.scripted: list[tuple[int, dict[str, str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.stalls: list[float] = []
        self.lock = threading.Lock()

    def reset(self) -> None:
        """Forget counts and scripted faults."""
        with self.lock:
            self.delivered.clear()
            self.attempts.clear()
            self.scripted.clear()
            self.stalls.clear()
        self.gate.set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/interactions/batch"):
            await self.app(scope, receive, send)
            return
        with self.lock:
            self.attempts.append(time.monotonic())
        while not self.gate.is_set():
            await asyncio.sleep(0.02)
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        with self.lock:
            scripted = self.scripted.pop(0) if self.scripted else None
            stall = self.stalls.pop(0) if self.stalls else 0.0
        if stall:
            await asyncio.sleep(stall)
        if scripted is not None:
            status, headers = scripted
            payload = json.dumps({"error": "scripted", "message": f"scripted {status}"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")]
                    + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return dict(await receive())
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, watch)
        if status == 200:
            raw = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
            doc = json.loads(raw)
            with self.lock:
                self.delivered.update(i["id"] for i in doc.get("interactions", []))
                self.delivered.update(f["id"] for f in doc.get("feedback", []))


class LostReplyProxy:
    """A TCP proxy to ``upstream_port`` that swallows the first ``drops`` replies and cuts the connection.

    The request reaches the server (which stores it) but the client never
    sees the answer: the situation in which a sender must retry and the
    collector must store the batch once.
    """

    def __init__(self, upstream_port: int, drops: int = 1) -> None:
        self.upstream_port = upstream_port
        self.drops = drops
        self.dropped = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if replies:
                    with self.lock:
                        drop = self.dropped < self.drops
                        if drop:
                            self.dropped += 1
                    if drop:
                        break
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.stopped = True
        self.sock.close()
