"""Dashboard sign-in: a signed, http-only session cookie holding the API key.

The cookie is ``base64url(json) "." base64url(hmac-sha256)``; its payload is
the API key, a CSRF token and the time it was issued. Every request checks the
signature, the age, and the key itself against the key store (so a revoked
key signs everyone out within the store's cache time). Write-only keys cannot
sign in, and a sign-in posted from another site is refused (:func:`same_origin`).
Forms that change data carry the session's CSRF token.

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
from urllib.parse import urlsplit

from .._keys import ApiKey

__all__ = [
    "COOKIE",
    "SESSION_MAX_AGE_S",
    "Session",
    "check_csrf",
    "clear_cookie",
    "same_origin",
    "new_cookie",
    "read_session",
]

COOKIE = "rlhfkit_session"
SESSION_MAX_AGE_S = 12 * 3600
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


def same_origin(request: Any) -> bool:
    """Whether a form post came from this site: its ``Origin`` (else ``Referer``) names this host, or neither is sent.

    Browsers send ``Origin`` with every cross-site form post, so a page
    elsewhere cannot sign a visitor in with its own key (login CSRF); scripts
    and command-line clients send neither and are not affected.
    """
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    parsed = urlsplit(claimed)
    return f"{parsed.scheme}://{parsed.netloc}" == f"{request.url.scheme}://{request.url.netloc}"


def check_csrf(session: Session, submitted: Any) -> bool:
    """Whether the form's token is the session's."""
    return isinstance(submitted, str) and hmac.compare_digest(submitted.encode(), session.csrf.encode())
