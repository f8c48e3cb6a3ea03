"""The collector: a stateless FastAPI app over one database.

Every ``/v1`` request carries ``Authorization: Bearer <key>``; the key names a
project and the request only sees that project's records. Write-only keys
ingest but get 403 on reads. Errors are JSON objects
``{"error", "field", "message"}``; refused input is a 422 naming the field.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import pydantic

from ..errors import NotFoundError, RLHFError, StorageError, ValidationError, from_pydantic, require
from ..storage.base import Storage
from ._combine import WriteCombiner
from ._keys import KeyStore

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["create_app", "error_reply", "tune_gc_for_serving"]

YOUNG_GC_THRESHOLD = 10_000

logger = logging.getLogger("rlhfkit.server")


class Projects:
    """One storage per project, from a base storage.

    A base with ``for_project(name)`` (the SQL backends) is asked for each
    project; any other storage serves ``default`` itself, and other projects
    get a fresh :class:`~rlhfkit.storage.memory.MemoryStorage` (tests and
    in-memory collectors only).
    """

    def __init__(self, base: Storage) -> None:
        self.base = base
        self._cache: dict[str, Storage] = {}

    def __call__(self, project: str) -> Storage:
        """The storage of ``project``."""
        storage = self._cache.get(project)
        if storage is None:
            if hasattr(self.base, "for_project"):
                storage = self.base.for_project(project)
            elif project == "default":
                storage = self.base
            else:
                from ..storage.memory import MemoryStorage

                storage = MemoryStorage()
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[project] = storage
        return storage


def error_reply(exc: BaseException, method: str, path: str) -> tuple[int, dict[str, Any], dict[str, str] | None]:
    """(status, JSON body, extra headers) of the reply to ``exc``, raised while serving ``method path``.

    The app's exception handlers and the fast ingest route both reply with this.
    """

    def body(kind: str, message: str, field: str | None = None) -> dict[str, Any]:
        return {"error": kind, "field": field, "message": message}

    if isinstance(exc, pydantic.ValidationError):
        refused = from_pydantic(exc)
        return 422, body("validation_error", refused.message, refused.field), None
    if isinstance(exc, NotFoundError):
        return 422, body("unknown_reference", exc.message, exc.field), None
    if isinstance(exc, ValidationError):
        return 422, body("validation_error", exc.message, exc.field), None
    if isinstance(exc, StorageError):
        logger.error("storage failure on %s %s: %s", method, path, exc)
        return 503, body("storage_unavailable", "the database could not serve this request; retry later"), None
    if isinstance(exc, RLHFError):
        return 400, body("bad_request", str(exc)), None
    logger.error("unexpected error on %s %s", method, path, exc_info=exc)
    return 503, body("unavailable", "the collector could not serve this request; retry later"), None


def tune_gc_for_serving() -> None:
    """Keep Python's garbage collector off the ingest path of a long-running server.

    Everything built before serving (modules, the app, its schemas) lives as
    long as the process: ``gc.freeze()`` moves it out of the collector's view,
    so that full collections no longer walk it (they took a tenth of the
    collector's CPU, and long pauses at the p99). The young generation is
    collected every YOUNG_GC_THRESHOLD allocations instead of 700: a batch of
    100 interactions allocates about 1,500 containers, which with 700 were
    caught alive mid-request and promoted towards the costly full collections;
    now most die before a collection sees them. Nothing changes when the
    collector is disabled (``gc.disable()``) or set to collect even less often.
    """
    gc.collect()
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if young and gc.isenabled():
        gc.set_threshold(max(young, YOUNG_GC_THRESHOLD), middle, old)


def _open_storage(db_url: str) -> tuple[Storage, KeyStore]:
    from ..storage.sql import SQLStorage
    from ._keys import SQLKeyStore

    storage = SQLStorage(db_url)
    storage.initialize()
    return storage, SQLKeyStore(storage.engine)


def create_app(
    db_url: str = "sqlite:///rlhf.db",
    *,
    max_body_bytes: int = 10 * 1024 * 1024,
    cors_origins: Sequence[str] = (),
    storage: Storage | None = None,
    keys: KeyStore | None = None,
    title: str = "rlhfkit collector",
    tune_gc: bool = True,
) -> FastAPI:
    """The collector as a FastAPI app.

    ``db_url`` is ``sqlite:///path`` or ``postgresql://...``; pass ``storage``
    and ``keys`` instead to serve another backend (e.g. MemoryStorage with a
    MemoryKeyStore in tests). ``cors_origins`` lists the origins allowed to
    call the API from a browser (``["*"]`` for any). The dashboard
    (``rlhfkit.server.dashboard``) is mounted at ``/`` when installed. With
    ``tune_gc`` (the default), the server's startup calls :func:`tune_gc_for_serving`.

    Example::

        app = create_app("postgresql://collector@db/rlhf", cors_origins=["https://app.example.com"])
        uvicorn.run(app, host="0.0.0.0", port=8484)
    """
    require("fastapi", "server")
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from ._fast_ingest import FastBatchIngest
    from ._middleware import BodyLimitMiddleware
    from ._routes import build_router

    if max_body_bytes < 1:
        raise ValidationError("max_body_bytes", "must be positive", max_body_bytes)
    if storage is None:
        storage, opened_keys = _open_storage(db_url)
        keys = keys or opened_keys
    elif keys is None:
        if hasattr(storage, "engine"):
            from ._keys import SQLKeyStore

            keys = SQLKeyStore(storage.engine)
        else:
            from ._keys import MemoryKeyStore

            keys = MemoryKeyStore()
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if tune_gc:
            tune_gc_for_serving()
        yield

    app = FastAPI(
        lifespan=lifespan,
        title=title,
        version="1",
        description="Collects LLM interactions and human feedback; serves them back per project.",
    )
    app.state.storage = storage
    app.state.keys = keys
    app.state.projects = Projects(storage)
    app.state.combiner = WriteCombiner()

    def error(status: int, kind: str, message: str, field: str | None = None) -> Any:
        return JSONResponse({"error": kind, "field": field, "message": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Any, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        field = ""
        for part in first.get("loc", ()):
            if part in ("body", "query", "path", "header") and not field:
                continue
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        if first.get("type") == "json_invalid" or not field:
            field = "body"
        return error(422, "validation_error", str(first.get("msg", "invalid request")), field)

    async def _refused(request: Any, exc: Exception) -> Any:
        status, body, _ = error_reply(exc, request.method, request.url.path)
        return JSONResponse(body, status_code=status)

    for kind in (pydantic.ValidationError, NotFoundError, ValidationError, StorageError, RLHFError):
        app.add_exception_handler(kind, _refused)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Any, exc: StarletteHTTPException) -> Any:
        detail = exc.detail if isinstance(exc.detail, dict) else {"error": "http_error", "message": str(exc.detail)}
        return JSONResponse(
            {"field": None, **detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    app.add_exception_handler(Exception, _refused)  # last resort only: inputs are validated before storage

    @app.get("/healthz", tags=["health"], summary="The process is up")
    def healthz() -> dict[str, str]:
        """Always ``{"status": "ok"}`` while the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The database is reachable", responses={503: {}})
    def readyz() -> Any:
        """``{"status": "ready"}`` when a read from the database succeeds, else 503."""
        try:
            storage.get_interaction("readyz-probe")
        except Exception as exc:  # any failure means "not ready"
            logger.warning("readiness check failed: %s", exc)
            return error(503, "not_ready", "the database is not reachable")
        return {"status": "ready"}

    app.include_router(build_router())
    app.add_middleware(FastBatchIngest, state=app.state)  # inside the body limit (and CORS): same checks
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Content-Encoding"],
            max_age=600,
        )
    _mount_dashboard(app)
    return app


def _mount_dashboard(app: Any) -> None:
    """Mount the dashboard when ``rlhfkit.server.dashboard`` provides ``mount(app)`` or ``router``.

    A dashboard that fails to load is logged and left out: the API still serves.
    """
    app.state.dashboard = False
    if importlib.util.find_spec(f"{__package__}.dashboard") is None:
        return
    try:
        dashboard = importlib.import_module(f"{__package__}.dashboard")
        mount: Callable[[Any], None] | None = getattr(dashboard, "mount", None)
        if mount is not None:
            mount(app)
            app.state.dashboard = True
        elif getattr(dashboard, "router", None) is not None:
            app.include_router(dashboard.router)
            app.state.dashboard = True
    except Exception:
        logger.exception("the dashboard could not be mounted; serving the API only")
