"""Dashboard sign-in: a signed, http-only session cookie holding the API key.

The cookie is ``base64url(json) "." base64url(hmac-sha256)``; its payload is
the API key, a CSRF token and the time it was issued. Every request checks the
signature, the age, and the key itself against the key store (so a revoked
key signs everyone out within the store's cache time). Write-only keys cannot
sign in.

The signing secret is ``RLHFKIT_SESSION_SECRET`` when set (give every replica
behind one load balancer the same value), else random per process (a restart
signs everyone out). The cookie is ``Secure`` when the request came over
https (behind a proxy, run uvicorn with ``--proxy-headers`` so it knows).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

from .._keys import ApiKey

__all__ = [
    "COOKIE",
    "SESSION_MAX_AGE_S",
    "Session",
    "check_csrf",
    "check_login_nonce",
    "clear_cookie",
    "set_login_nonce",
    "new_cookie",
    "read_session",
]

COOKIE = "rlhfkit_session"
LOGIN_COOKIE = "rlhfkit_login"
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_MAX_AGE_S = 3600
_PROCESS_SECRET = secrets.token_bytes(32)


def _secret(app: Any) -> bytes:
    configured = getattr(app.state, "session_secret", None) or os.environ.get("RLHFKIT_SESSION_SECRET")
    if configured:
        return hashlib.sha256(str(configured).encode()).digest()
    return _PROCESS_SECRET


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A signed-in dashboard user: their key's record and the session's CSRF token."""

    key: ApiKey
    csrf: str

    @property
    def user(self) -> str:
        """The name shown and recorded as the feedback's user: the key's name."""
        return self.key.name

    @property
    def project(self) -> str:
        """The project whose data the session sees."""
        return self.key.project


def _sign(app: Any, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    mac = hmac.new(_secret(app), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def _unsign(app: Any, value: str) -> dict[str, Any] | None:
    body, _, mac = value.partition(".")
    if not body or not mac or len(value) > 4096:
        return None
    expected = hmac.new(_secret(app), body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    return payload if isinstance(payload, dict) else None


def read_session(request: Any) -> Session | None:
    """The signed-in session of ``request``, or None (no cookie, bad signature, expired, revoked)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    payload = _unsign(request.app, raw)
    if payload is None:
        return None
    token, csrf, issued = payload.get("k"), payload.get("c"), payload.get("t")
    if not isinstance(token, str) or not isinstance(csrf, str) or not isinstance(issued, int | float):
        return None
    if not 0 <= time.time() - issued <= SESSION_MAX_AGE_S:
        return None
    key = request.app.state.keys.lookup(token)
    if key is None or key.write_only:
        return None
    return Session(key=key, csrf=csrf)


def new_cookie(request: Any, response: Any, token: str) -> None:
    """Set a fresh session cookie for the API key ``token`` on ``response``."""
    value = _sign(request.app, {"k": token, "c": secrets.token_urlsafe(24), "t": int(time.time())})
    response.set_cookie(
        COOKIE,
        value,
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_cookie(request: Any, response: Any) -> None:
    """Remove the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")


def set_login_nonce(request: Any, response: Any, nonce: str) -> None:
    """Set the sign-in form's nonce in a short-lived signed cookie (login CSRF protection)."""
    value = _sign(request.app, {"n": nonce, "t": int(time.time())})
    response.set_cookie(
        LOGIN_COOKIE, value, max_age=LOGIN_MAX_AGE_S, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/login",
    )  # fmt: skip


def check_login_nonce(request: Any, submitted: Any) -> bool:
    """Whether the sign-in form came from a form this server gave this browser."""
    payload = _unsign(request.app, request.cookies.get(LOGIN_COOKIE) or "")
    if payload is None or not isinstance(submitted, str) or not isinstance(payload.get("n"), str):
        return False
    issued = payload.get("t")
    if not isinstance(issued, int | float) or not 0 <= time.time() - issued <= LOGIN_MAX_AGE_S:
        return False
    return hmac.compare_digest(payload["n"].encode(), submitted.encode())


def check_csrf(session: Session, submitted: Any) -> bool:
    """Whether the form's token is the session's."""
    return isinstance(submitted, str) and hmac.compare_digest(submitted.encode(), session.csrf.encode())
