"""The ``rlhfkit`` command line.

Each command group lives in its own module with a ``register(app)`` function;
this module only assembles them.
"""

from __future__ import annotations

import importlib
import logging

from ..errors import MissingDependencyError

try:
    import typer
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("typer", "cli") from exc

__all__ = ["app", "main"]

app = typer.Typer(
    name="rlhfkit",
    help="Capture LLM interactions and human feedback, serve them, and turn them into training data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Modules that add commands; each defines register(app).
_COMMAND_MODULES = [
    "_demo",
    "_db",
    "_serve",
    "_keys",
    "_export",
    "_stats",
]


@app.callback()
def _main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages of the 'rlhfkit' logger."),
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


for _name in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:
    """Entry point of the ``rlhfkit`` script."""
    app()
