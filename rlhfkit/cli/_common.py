"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import typer

from ..errors import ConfigurationError
from ..storage.base import Storage

__all__ = ["DB_OPTION", "open_storage"]

DB_OPTION = typer.Option(
    "sqlite:///rlhf.db",
    "--db",
    envvar="RLHFKIT_DB",
    help="Database URL: sqlite:///path/to/file.db or postgresql://user@host:5432/dbname.",
)


def open_storage(url: str, project: str = "default") -> Storage:
    """Open (and migrate) the SQL storage at ``url``; exit with a clear message when it can't."""
    from ..storage.sql import SQLStorage

    if not url.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+psycopg:")):
        raise typer.BadParameter(f"unsupported database URL {url!r}: use sqlite:///path or postgresql://...", param_hint="--db")
    try:
        storage = SQLStorage(url, project=project)
        storage.initialize()
    except ConfigurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--db") from exc
    return storage
