"""``rlhfkit demo``: log a realistic data set and print its stats."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .._config import RLHFConfig
from .._logger import RLHFLogger
from .._models import FeedbackStats
from ._common import DB_OPTION, open_storage

__all__ = ["register", "stats_table"]


def stats_table(stats: FeedbackStats, title: str = "Feedback stats") -> Table:
    """A rich table of the headline numbers, then one row per model."""
    table = Table(title=title, show_lines=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("interactions", f"{stats.total_interactions:,}"),
        ("feedback", f"{stats.total_feedback:,}"),
        ("feedback rate", f"{stats.feedback_rate:.1%}"),
        ("thumbs up / down", f"{stats.binary.thumbs_up:,} / {stats.binary.thumbs_down:,}"),
        ("thumbs-up ratio", f"{stats.binary.ratio:.1%}"),
        ("ratings (avg / median, 1-5)", f"{stats.rating.count:,} ({stats.rating.average:.2f} / {stats.rating.median:.1f})"),
        ("text comments (+ / - / =)", f"{stats.text.positive} / {stats.text.negative} / {stats.text.neutral}"),
        ("multi-dimensional (avg weighted)", f"{stats.multi_dimensional.count} ({stats.multi_dimensional.average_weighted_score:.2f})"),
        ("comparisons", f"{stats.comparative.count:,}"),
    ]  # fmt: skip
    for metric, value in rows:
        table.add_row(metric, value)
    for model, per_model in sorted(stats.by_model.items()):
        win_rate = stats.comparative.win_rate_by_model.get(model)
        rating = "-" if per_model.average_rating is None else f"{per_model.average_rating:.2f}"
        wins = "-" if win_rate is None else f"{win_rate:.0%}"
        table.add_row(f"[bold]{model}[/bold]", f"{per_model.interactions:,} calls, rating {rating}, wins {wins}")
    return table


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command()
    def demo(
        db: str = DB_OPTION,
        rounds: int = typer.Option(5, min=1, help="Passes over the demo prompts (30 interactions each)."),
        seed: int = typer.Option(7, help="Random seed, for a reproducible data set."),
        if_empty: bool = typer.Option(False, "--if-empty", help="Log only into a database that has no interactions yet."),
    ) -> None:
        """Log a realistic set of interactions and feedback of all five types, then print the stats."""
        from .._demo_data import DEMO_MODELS, populate_demo

        console = Console()
        storage = open_storage(db)
        if if_empty and storage.feedback_stats().total_interactions:
            console.print(f"{db} already has data; not adding demo records.")
            console.print(stats_table(storage.feedback_stats()))
            return
        logger = RLHFLogger(RLHFConfig(batch_size=500), storage=storage)
        with logger, Progress(console=console, transient=True) as progress:
            task = progress.add_task("logging demo interactions", total=rounds * 10 * len(DEMO_MODELS))
            counts = populate_demo(logger, rounds=rounds, seed=seed, progress=lambda n: progress.advance(task, n))
            stats = logger.get_feedback_stats()
        console.print(f"Logged {counts['interactions']:,} interactions and {counts['feedback']:,} feedback into {db}")
        console.print(stats_table(stats))
