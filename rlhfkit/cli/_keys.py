"""``rlhfkit keys``: issue API keys for the collector."""

from __future__ import annotations

import typer

__all__ = ["register"]

keys_app = typer.Typer(help="Create and revoke the collector's API keys.", no_args_is_help=True)

_DB_OPTION = typer.Option(
    "sqlite:///rlhf.db", "--db", envvar="RLHFKIT_DB", help="Database URL: sqlite:///path or postgresql://..."
)


@keys_app.command("create")
def create(
    project: str = typer.Option(..., "--project", help="The project whose records the key reads and writes."),
    name: str = typer.Option("default", "--name", help="A label for the key (shown as the feedback's user)."),
    write_only: bool = typer.Option(False, "--write-only", help="The key may ingest but not read."),
    db: str = _DB_OPTION,
) -> None:
    """Create a key and print it: it is shown once; only its hash is stored."""
    from ..errors import ValidationError
    from ..server._keys import SQLKeyStore
    from ..storage.sql import SQLStorage

    storage = SQLStorage(db)
    try:
        storage.initialize()
        key = SQLKeyStore(storage.engine).create(project, name, write_only=write_only)
    except ValidationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        storage.close()
    typer.echo(key)
    typer.echo(
        f"project {project!r}, {'write-only' if write_only else 'read-write'}: keep this key, it will not be shown again.",
        err=True,
    )


@keys_app.command("revoke")
def revoke(
    project: str = typer.Option(..., "--project"),
    name: str = typer.Option(..., "--name", help="Revoke every active key with this name."),
    db: str = _DB_OPTION,
) -> None:
    """Revoke the keys called NAME in PROJECT."""
    from ..server._keys import SQLKeyStore
    from ..storage.sql import SQLStorage

    storage = SQLStorage(db)
    try:
        storage.initialize()
        count = SQLKeyStore(storage.engine).revoke(name, project)
    finally:
        storage.close()
    typer.echo(f"revoked {count} key(s)")


def register(app: typer.Typer) -> None:
    """Add the ``keys`` command group to ``app``."""
    app.add_typer(keys_app, name="keys")
