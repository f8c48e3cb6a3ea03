"""The hot route, ``POST /v1/interactions/batch``, served without FastAPI's request machinery.

Resolving the dependencies, building a ``Request`` and validating the reply
model cost the event loop about half a millisecond per request, as much as
validating a hundred interactions. :class:`FastBatchIngest` sits between the
body-limit middleware and FastAPI: a request with a Bearer key already in the
key cache is served here, with the same ingest code, the same replies and the
same error bodies; any other request (no key, another scheme, a key not yet
looked up or unknown) passes on untouched to the FastAPI route, which stays
in the OpenAPI schema. Nothing is read or stored before that choice, so
passing on is always safe.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

__all__ = ["FastBatchIngest"]

PATH = "/v1/interactions/batch"


class FastBatchIngest:
    """ASGI middleware serving ``POST /v1/interactions/batch`` for keys in the cache, passing on the rest.

    ``state`` is the app's state (``keys``, ``projects``, ``combiner``).
    """

    def __init__(self, app: Any, state: Any) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or _route_path(scope) != PATH:
            await self.app(scope, receive, send)
            return
        try:
            key = self._cached_key(scope["headers"])
        except Exception:  # FastAPI's route decides, and replies
            key = None
        if key is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:  # the client went away
            return
        from ._app import error_reply
        from ._routes import _ingest_raw

        try:
            storage = self.state.projects(key.project)
            result = await run_in_threadpool(_ingest_raw, storage, body, self.state.combiner)
        except Exception as exc:
            status, reply, headers = error_reply(exc, scope["method"], scope["path"])
            payload = _dumps(reply)
            await _send(send, status, payload, headers)
            return
        await _send(send, 200, _dumps({"accepted": result.accepted, "ids": result.ids}), None)

    def _cached_key(self, headers: list[tuple[bytes, bytes]]) -> Any:
        """The ApiKey of the request when its Bearer key is known and cached; else None (FastAPI decides)."""
        for name, value in headers:
            if name == b"authorization":
                # As FastAPI's HTTPBearer reads it: the first header, "<scheme> <credentials>".
                scheme, _, token = value.decode("latin-1").partition(" ")
                token = token.strip()
                break
        else:
            return None
        if scheme.lower() != "bearer" or not token or len(token) > 200 or "\x00" in token:
            return None
        cached = getattr(self.state.keys, "cached", None)
        if cached is None:
            return None
        found, key = cached(token)
        return key if found else None


def _route_path(scope: dict[str, Any]) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


async def _read_body(receive: Any) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _dumps(reply: dict[str, Any]) -> bytes:
    # JSONResponse's rendering, so that both paths give the same bytes.
    import json

    return json.dumps(reply, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


async def _send(send: Any, status: int, payload: bytes, headers: dict[str, str] | None) -> None:
    raw = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
