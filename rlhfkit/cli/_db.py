"""``rlhfkit db``: create and migrate the SQL schema, and show where it stands."""

from __future__ import annotations

import typer

__all__ = ["register"]

db_app = typer.Typer(help="Create and migrate the database schema (SQLite or PostgreSQL).", no_args_is_help=True)

_DB_OPTION = typer.Option(
    "sqlite:///rlhf.db", "--db", envvar="RLHFKIT_DB", help="Database URL: sqlite:///path or postgresql://..."
)


@db_app.command("upgrade")
def upgrade(db: str = _DB_OPTION) -> None:
    """Apply the migrations the database has not run yet."""
    from ..storage.sql import SQLStorage

    storage = SQLStorage(db)
    try:
        ran = storage.upgrade()
    finally:
        storage.close()
    if ran:
        typer.echo(f"applied migrations: {', '.join(f'{v:03d}' for v in ran)}")
    else:
        typer.echo("database is up to date")


@db_app.command("status")
def status(db: str = _DB_OPTION) -> None:
    """List the migrations and whether each has been applied."""
    from ..storage._migrations import MIGRATIONS, applied_versions
    from ..storage.sql import SQLStorage

    storage = SQLStorage(db)
    try:
        with storage.engine.connect() as connection:
            done = applied_versions(connection)
    finally:
        storage.close()
    for version, name, _function in MIGRATIONS:
        typer.echo(f"{version:03d}_{name}: {'applied' if version in done else 'pending'}")


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group to ``app``."""
    app.add_typer(db_app, name="db")
