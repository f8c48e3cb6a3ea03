"""The demo command and the top-level help of the rlhfkit CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rlhfkit.cli import app
from rlhfkit.storage.sql import SQLStorage

runner = CliRunner()


def test_demo_logs_all_five_feedback_types_and_prints_stats(tmp_path: Path) -> None:
    """`rlhfkit demo` fills a SQLite file with every feedback type and prints the stats table."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = runner.invoke(app, ["demo", "--db", url, "--rounds", "2"])
    assert result.exit_code == 0, result.output
    assert "Logged 60 interactions" in result.output and "feedback rate" in result.output
    stats = SQLStorage(url).feedback_stats()
    assert stats.total_interactions == 60
    assert set(stats.by_type) == {"binary", "rating", "text", "multi_dimensional", "comparative"}


def test_demo_if_empty_adds_nothing_to_a_database_with_data(tmp_path: Path) -> None:
    """`--if-empty` (used by make run) leaves a database that has data as it is."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    assert runner.invoke(app, ["demo", "--db", url, "--rounds", "1"]).exit_code == 0
    result = runner.invoke(app, ["demo", "--db", url, "--if-empty"])
    assert result.exit_code == 0 and "already has data" in result.output
    assert SQLStorage(url).feedback_stats().total_interactions == 30


def test_help_lists_every_command() -> None:
    """`rlhfkit --help` names each command."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "export", "stats", "db", "keys"):
        assert command in result.output


def test_bad_database_url_is_a_clear_usage_error() -> None:
    """An unsupported --db URL exits with a message naming --db."""
    result = runner.invoke(app, ["demo", "--db", "mysql://nope"])
    assert result.exit_code == 2 and "--db" in result.output
