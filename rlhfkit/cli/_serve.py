"""``rlhfkit serve``: run the collector under uvicorn."""

from __future__ import annotations

import os

import typer

__all__ = ["register"]


def serve(
    db: str = typer.Option(
        "sqlite:///rlhf.db", "--db", envvar="RLHFKIT_DB", help="Database URL: sqlite:///path or postgresql://..."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8484, "--port", help="Port to listen on."),
    create_key: str | None = typer.Option(
        None,
        "--create-key",
        metavar="NAME",
        help="Print a read-write key called NAME for project 'default' (RLHFKIT_API_KEY is reused when valid).",
    ),
    max_body_mb: float = typer.Option(10.0, "--max-body-mb", help="Larger request bodies get 413."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="An origin allowed to call the API (repeatable)."),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="uvicorn worker processes (default: one per CPU; one for an in-memory database).",
    ),
    access_log: bool = typer.Option(
        False,
        "--access-log/--no-access-log",
        envvar="RLHFKIT_ACCESS_LOG",
        help="Log a line per request (off by default: at thousands of batches a second it costs CPU).",
    ),
) -> None:
    """Serve the collector (API, and dashboard when installed) on HOST:PORT."""
    from ..errors import require
    from ..server import create_app

    uvicorn = require("uvicorn", "server")
    workers = workers or default_workers(db)
    app = create_app(db, max_body_bytes=int(max_body_mb * 1024 * 1024), cors_origins=cors_origin)
    address = f"http://{host}:{port}"
    typer.echo(f"rlhfkit collector on {address}  (database {db})")
    if getattr(app.state, "dashboard", False):
        typer.echo(f"dashboard: {address}/")
    if create_key:
        key = _demo_key(app.state.keys, create_key)
        typer.echo(f"API key for project 'default': {key}")
        typer.echo(f'  curl -H "Authorization: Bearer {key}" {address}/v1/stats')
    if workers > 1:  # each worker process builds its own app from these
        os.environ["RLHFKIT_DB"] = db
        os.environ["RLHFKIT_MAX_BODY_MB"] = str(max_body_mb)
        os.environ["RLHFKIT_CORS_ORIGINS"] = ",".join(cors_origin)
        uvicorn.run(
            "rlhfkit.cli._serve:_app_from_env", factory=True, host=host, port=port, workers=workers,
            log_level="info", access_log=access_log,
        )  # fmt: skip
    else:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)


def default_workers(db: str) -> int:
    """One worker process per CPU: the collector keeps no state of its own, and a process uses one core.

    SQLite writers of one file queue on a gate that hands the write lock on at
    once, so a second process on SQLite prepares batches while the first one
    writes (measured faster than one). An in-memory database lives in one
    process, so it gets one worker.
    """
    from ..storage.sql import is_memory_url

    return 1 if is_memory_url(db) else max(1, os.cpu_count() or 1)


def _demo_key(keys: object, name: str) -> str:
    """RLHFKIT_API_KEY when it is an active read-write key of 'default', else a new key called ``name``."""
    existing = os.environ.get("RLHFKIT_API_KEY")
    if existing:
        found = keys.lookup(existing)  # type: ignore[attr-defined]
        if found is not None and found.project == "default" and not found.write_only:
            return existing
    return keys.create("default", name)  # type: ignore[attr-defined, no-any-return]


def _app_from_env() -> object:
    """The app factory uvicorn's workers call (``--workers`` > 1)."""
    from ..server import create_app

    origins = [o for o in os.environ.get("RLHFKIT_CORS_ORIGINS", "").split(",") if o]
    return create_app(
        os.environ.get("RLHFKIT_DB", "sqlite:///rlhf.db"),
        max_body_bytes=int(float(os.environ.get("RLHFKIT_MAX_BODY_MB", "10")) * 1024 * 1024),
        cors_origins=origins,
    )


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to ``app``."""
    app.command("serve")(serve)
