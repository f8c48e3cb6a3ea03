"""The web dashboard served by the collector at ``/``.

Server-rendered pages (Jinja2) with a few small ES modules; everything,
the vendored Chart.js included, is served by the collector itself from
``/static``. Pages, all behind sign-in with a read API key:

* ``/interactions``: the filterable, searchable table, newest first, and
  ``/interactions/{id}``: one interaction with its feedback and the forms to
  give more (thumbs, stars, text with sentiment, multi-dimensional sliders).
* ``/compare``: responses to the same prompt side by side, pick the better one;
  ``/review``: a keyboard-driven queue of groups nobody has judged yet.
* ``/analytics``: charts per model over time, the leaderboard, the rating
  distribution (data from ``/analytics/data.json``).
* ``/export``: raw exports and training datasets, downloaded.

:func:`mount` adds it to a collector app; ``create_app`` calls it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from . import _compare, _pages, _reports
from ._web import HERE

__all__ = ["STATIC_DIR", "mount", "router"]

STATIC_DIR = HERE / "static"
"""The dashboard's CSS, scripts and the vendored Chart.js."""

router = APIRouter(include_in_schema=False)
"""Every dashboard page (the static files are mounted by :func:`mount`)."""
router.include_router(_pages.router)
router.include_router(_compare.router)
router.include_router(_reports.router)


def mount(app: Any) -> None:
    """Serve the dashboard's pages at ``/`` and its static files at ``/static`` on ``app``."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="dashboard-static")
