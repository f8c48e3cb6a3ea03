"""ASGI middleware of the collector: body size limit and gzip request bodies."""

from __future__ import annotations

import json
import zlib
from typing import Any

__all__ = ["BodyLimitMiddleware"]

Scope = dict[str, Any]


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": "payload_too_large", "field": "body", "message": f"request body exceeds {limit} bytes"}


class BodyLimitMiddleware:
    """Refuse bodies above ``max_body_bytes`` with 413, by Content-Length and as streamed.

    A gzip body (``Content-Encoding: gzip``) is decompressed here, the
    decompressed size bounded by the same limit, so the routes see plain JSON.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_json(send, 400, {"error": "bad_request", "field": "content-length", "message": "not a number"})
                return
            if declared > limit:
                await _send_json(send, 413, _too_large(limit))
                return
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding not in (b"", b"identity", b"gzip"):
            await _send_json(
                send, 415, {"error": "unsupported_encoding", "field": "content-encoding", "message": "use gzip or none"}
            )
            return
        # Bodies are read whole (bounded) before the app runs, so a refusal is
        # a clean 413 and the routes never see a partial body.
        gzipped = encoding == b"gzip"
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        raw = 0
        chunks: list[bytes] = []
        size = 0
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return
                piece = message.get("body", b"")
                raw += len(piece)
                if raw > limit:
                    await _send_json(send, 413, _too_large(limit))
                    return
                if decompressor is not None:
                    piece = decompressor.decompress(piece, limit + 1 - size)
                    if decompressor.unconsumed_tail:
                        await _send_json(send, 413, _too_large(limit))
                        return
                size += len(piece)
                chunks.append(piece)
                if size > limit:
                    await _send_json(send, 413, _too_large(limit))
                    return
                more = bool(message.get("more_body"))
            if decompressor is not None:
                tail = decompressor.flush()
                size += len(tail)
                chunks.append(tail)
                if size > limit:
                    await _send_json(send, 413, _too_large(limit))
                    return
                if not decompressor.eof:
                    raise zlib.error("truncated gzip stream")
        except zlib.error as exc:
            await _send_json(send, 422, {"error": "validation_error", "field": "body", "message": f"bad gzip data: {exc}"})
            return
        body = b"".join(chunks)
        new_headers = [
            (k, v) for k, v in scope.get("headers") or [] if k not in (b"content-encoding", b"content-length")
        ]
        new_headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return dict(await receive())  # waits for the client's disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": new_headers}, replay, send)
