"""Web middlewares that put the current request's context where captured calls find it.

While a request is served, every LLM call made for it carries the browser
side of the spec's ContextData: user agent, device type (from the user agent),
referrer, url, language (first ``Accept-Language``), user id (the
``X-User-Id`` header by default), session id (``X-Session-Id``) and screen
resolution. A server cannot see the screen: the page sends it in the
``X-Screen-Resolution`` header (for example ``1920x1080``), e.g.
``fetch(url, {headers: {"X-Screen-Resolution": `${screen.width}x${screen.height}`}})``.

ASGI (Starlette, FastAPI)::

    app.add_middleware(RLHFContextMiddleware)

WSGI (Flask)::

    app.wsgi_app = RLHFWSGIMiddleware(app.wsgi_app)      # or rlhf_wsgi_middleware(app.wsgi_app)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._context import RequestContext, request_context

__all__ = [
    "SCREEN_RESOLUTION_HEADER",
    "RLHFContextMiddleware",
    "RLHFWSGIMiddleware",
    "device_type",
    "rlhf_wsgi_middleware",
]

SCREEN_RESOLUTION_HEADER = "X-Screen-Resolution"
"""The request header carrying the browser's screen resolution, ``<width>x<height>``."""

_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|(android(?!.*mobile))", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|blackberry|opera mini|iemobile|windows phone", re.I)
_BOT = re.compile(r"bot|crawler|spider|curl|python-requests|httpx|wget", re.I)
_RESOLUTION = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")


def device_type(user_agent: str | None) -> str | None:
    """``mobile``, ``tablet``, ``desktop`` or ``bot`` from a User-Agent string (None when absent)."""
    if not user_agent:
        return None
    if _BOT.search(user_agent):
        return "bot"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


def _context_from_headers(
    headers: Mapping[str, str], url: str, user_id_header: str, session_id_header: str
) -> RequestContext:
    agent = headers.get("user-agent")
    language = headers.get("accept-language")
    resolution = headers.get(SCREEN_RESOLUTION_HEADER.lower())
    match = _RESOLUTION.match(resolution) if resolution else None
    values = {
        "user_agent": agent,
        "device_type": device_type(agent),
        "referrer": headers.get("referer") or headers.get("referrer"),
        "url": url,
        "language": language.split(",")[0].split(";")[0].strip() or None if language else None,
        "user_id": headers.get(user_id_header.lower()),
        "session_id": headers.get(session_id_header.lower()),
        "screen_resolution": f"{match.group(1)}x{match.group(2)}" if match else None,
    }
    return RequestContext({k: v for k, v in values.items() if v})


class RLHFContextMiddleware:
    """ASGI middleware: the request's context for every call made while serving it (HTTP and WebSocket)."""

    def __init__(
        self, app: Any, user_id_header: str = "X-User-Id", session_id_header: str = "X-Session-Id"
    ) -> None:
        self.app = app
        self.user_id_header = user_id_header
        self.session_id_header = session_id_header

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        """Serve the request with its context set."""
        if scope.get("type") not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        token = request_context.set(
            _context_from_headers(
                headers, _asgi_url(scope, headers), self.user_id_header, self.session_id_header
            )
        )
        try:
            await self.app(scope, receive, send)
        finally:
            request_context.reset(token)


def _asgi_url(scope: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    scheme = scope.get("scheme", "http")
    host = headers.get("host")
    if not host:
        server = scope.get("server") or ("localhost", None)
        host = f"{server[0]}:{server[1]}" if server[1] else str(server[0])
    query = scope.get("query_string", b"")
    path = scope.get("root_path", "") + scope.get("path", "/")
    return f"{scheme}://{host}{path}" + (f"?{query.decode('latin-1')}" if query else "")


class RLHFWSGIMiddleware:
    """WSGI middleware (Flask: ``app.wsgi_app = RLHFWSGIMiddleware(app.wsgi_app)``).

    The context is set while the application is called and while its response
    body is iterated (streamed responses included).
    """

    def __init__(
        self,
        app: Callable[..., Any],
        user_id_header: str = "X-User-Id",
        session_id_header: str = "X-Session-Id",
    ) -> None:
        self.app = app
        self.user_id_header = user_id_header
        self.session_id_header = session_id_header

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve the request with its context set."""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        value = _context_from_headers(
            headers, _wsgi_url(environ), self.user_id_header, self.session_id_header
        )
        token = request_context.set(value)
        try:
            body = self.app(environ, start_response)
        finally:
            request_context.reset(token)
        return _ContextBody(body, value)


class _ContextBody:
    """A WSGI body iterated with the request's context set (for streamed responses)."""

    def __init__(self, body: Iterable[bytes], value: RequestContext) -> None:
        self._body = body
        self._iter = iter(body)
        self._value = value

    def __iter__(self) -> _ContextBody:
        return self

    def __next__(self) -> bytes:
        token = request_context.set(self._value)
        try:
            return next(self._iter)
        finally:
            request_context.reset(token)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if callable(close):
            close()


def _wsgi_url(environ: Mapping[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = (
        environ.get("HTTP_HOST")
        or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    )
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")


def rlhf_wsgi_middleware(
    app: Callable[..., Any], user_id_header: str = "X-User-Id", session_id_header: str = "X-Session-Id"
) -> RLHFWSGIMiddleware:
    """Wrap a WSGI app (e.g. ``flask_app.wsgi_app``) with :class:`RLHFWSGIMiddleware`."""
    return RLHFWSGIMiddleware(app, user_id_header, session_id_header)
