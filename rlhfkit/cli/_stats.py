"""``rlhfkit stats``: feedback statistics and the model leaderboard of a database."""

from __future__ import annotations

import typer

from ._common import DB_OPTION, open_storage
from ._export import parse_time

__all__ = ["register"]


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def stats(
    db: str = DB_OPTION,
    project: str = typer.Option("default", "--project", help="Project of the records."),
    start: str | None = typer.Option(None, "--start", help="From this ISO time (inclusive)."),
    end: str | None = typer.Option(None, "--end", help="Until this ISO time (exclusive)."),
    model: str | None = typer.Option(None, "--model", help="Only feedback about this model's responses."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole analytics result as JSON."),
) -> None:
    """Print feedback statistics, the model leaderboard and annotator agreement."""
    from rich.console import Console
    from rich.table import Table

    from .._models import FeedbackFilter
    from ..analytics import build_analytics

    flt = FeedbackFilter(start_time=parse_time(start, "--start"), end_time=parse_time(end, "--end"), model=model)
    storage = open_storage(db, project)
    try:
        result = build_analytics(storage, flt)
    finally:
        storage.close()
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    console = Console()
    s = result.stats
    overview = Table(title="feedback")
    overview.add_column("measure")
    overview.add_column("value", justify="right")
    rows = [
        ("interactions", str(s.total_interactions)),
        ("feedback", str(s.total_feedback)),
        ("feedback rate", f"{s.feedback_rate:.1%}"),
        ("thumbs up / down", f"{s.binary.thumbs_up} / {s.binary.thumbs_down}"),
        ("thumbs up ratio", f"{s.binary.ratio:.1%}"),
        ("ratings", str(s.rating.count)),
        ("average rating (1..5)", _num(s.rating.average if s.rating.count else None)),
        ("median rating (1..5)", _num(s.rating.median if s.rating.count else None)),
        ("comparisons", str(s.comparative.count)),
    ]
    for name, value in rows:
        overview.add_row(name, value)
    console.print(overview)

    if s.by_model:
        per_model = Table(title="per model")
        for column in ("model", "interactions", "feedback", "thumbs up", "thumbs down", "avg rating", "avg latency ms"):
            per_model.add_column(column, justify="left" if column == "model" else "right")
        for name, m in sorted(s.by_model.items()):
            per_model.add_row(name, str(m.interactions), str(m.feedback), str(m.thumbs_up), str(m.thumbs_down),
                              _num(m.average_rating), _num(m.average_latency_ms, 0))  # fmt: skip
        console.print(per_model)

    board = Table(title="leaderboard (Bradley–Terry, 95% interval)")
    for column in ("rank", "model", "rating", "interval", "win rate", "wins", "losses", "comparisons"):
        board.add_column(column, justify="left" if column == "model" else "right")
    for row in result.leaderboard:
        board.add_row(str(row["rank"]), row["model"], f"{row['rating']:.0f}", f"{row['ci_low']:.0f}–{row['ci_high']:.0f}",
                      "-" if row["win_rate"] is None else f"{row['win_rate']:.1%}", str(row["wins"]),
                      str(row["losses"]), str(row["comparisons"]))  # fmt: skip
    if result.leaderboard:
        console.print(board)
    else:
        console.print("leaderboard: no comparisons between models yet")

    if result.agreement:
        agreement = Table(title="annotator agreement (Krippendorff's alpha)")
        for column in ("feedback type", "alpha", "metric", "items", "annotators"):
            agreement.add_column(column, justify="left" if column == "feedback type" else "right")
        for kind, entry in result.agreement.items():
            agreement.add_row(kind, _num(entry["alpha"], 3), entry["metric"], str(entry["items"]), str(entry["annotators"]))
        console.print(agreement)
    if result.top_issues:
        console.print("top issues: " + ", ".join(result.top_issues))


def register(app: typer.Typer) -> None:
    """Add the ``stats`` command to ``app``."""
    app.command("stats")(stats)
