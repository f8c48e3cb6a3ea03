"""What every dashboard page shares: templates, the signed-in check, the project's storage."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...errors import require
from ...storage.base import Storage
from ._session import Session, read_session

__all__ = ["HERE", "login_redirect", "models_of", "render", "signed_in", "storage_of"]

HERE = Path(__file__).parent
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_MODELS_TTL_S = 60.0
_models_cache: dict[tuple[int, str], tuple[float, list[str]]] = {}


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


@cache
def _environment() -> Any:
    jinja2 = require("jinja2", "server")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["num"] = _number
    env.filters["urlquote"] = lambda v: quote(str(v), safe="")
    return env


def render(request: Any, template: str, session: Session | None, status: int = 200, **context: Any) -> Any:
    """An HTML response of ``template`` with the page context every template expects."""
    from fastapi.responses import HTMLResponse

    html = _environment().get_template(template).render(
        request=request, session=session, csrf=session.csrf if session else "", path=request.url.path, **context
    )
    return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)


def signed_in(request: Any) -> Session | None:
    """The request's dashboard session, or None."""
    return read_session(request)


def login_redirect(request: Any) -> Any:
    """A redirect to the sign-in form that comes back to this page afterwards."""
    from fastapi.responses import RedirectResponse

    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def storage_of(request: Any, session: Session) -> Storage:
    """The storage of the session's project."""
    return request.app.state.projects(session.project)  # type: ignore[no-any-return]


def _distinct_models(storage: Any) -> list[str]:
    """DISTINCT model as a skip scan of the (project, model, timestamp) index: one seek per model."""
    from ...storage._sql_rows import sa

    query = sa.text(
        "WITH RECURSIVE m(model) AS ("
        " SELECT MIN(model) FROM interactions WHERE project = :p"
        " UNION ALL"
        " SELECT (SELECT MIN(i.model) FROM interactions i WHERE i.project = :p AND i.model > m.model)"
        " FROM m WHERE m.model IS NOT NULL"
        ") SELECT model FROM m WHERE model IS NOT NULL LIMIT 1000"
    )
    with storage._connect() as connection:
        return sorted(connection.execute(query, {"p": storage.project}).scalars())


def models_of(storage: Storage) -> list[str]:
    """The project's model names, cached for a minute (a DISTINCT over a large table is not free)."""
    lookup = getattr(storage, "models", None)
    if lookup is None:
        return []
    key = (id(getattr(storage, "engine", storage)), str(getattr(storage, "project", "")))
    now = time.monotonic()
    hit = _models_cache.get(key)
    if hit is not None and now - hit[0] < _MODELS_TTL_S:
        return hit[1]
    found = _distinct_models(storage) if hasattr(storage, "_connect") else list(lookup())
    if len(_models_cache) > 1000:
        _models_cache.clear()
    _models_cache[key] = (now, found)
    return found
