"""``rlhfkit export``: build a training dataset from a database, with a progress bar."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from ._common import DB_OPTION, open_storage

__all__ = ["parse_time", "register"]


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or time (UTC when no offset is given), or None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {value!r}", param_hint=option) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def export(
    kind: str = typer.Option(..., "--kind", help="preference, unpaired, sft or reward."),
    out: Path = typer.Option(..., "--out", help="Directory for the files and the dataset card."),
    db: str = DB_OPTION,
    project: str = typer.Option("default", "--project", help="Project of the records."),
    target: str = typer.Option("trl", "--target", help="trl or openai."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or parquet."),
    conversational: bool = typer.Option(False, "--conversational", help="Messages instead of plain text (TRL)."),
    start: str | None = typer.Option(None, "--start", help="Only feedback given at or after this ISO time."),
    end: str | None = typer.Option(None, "--end", help="Only feedback given before this ISO time."),
    model: str | None = typer.Option(None, "--model", help="Only feedback about this model's responses."),
    user: str | None = typer.Option(None, "--user", help="Only feedback from this user."),
    min_margin: float = typer.Option(0.2, "--min-margin", help="Score difference (0..1) that makes a pair."),
    rating_threshold: float = typer.Option(0.75, "--rating-threshold", help="Score (0..1) that counts as positive."),
    text_sentiment: bool = typer.Option(False, "--text-sentiment", help="Count text comments by their sentiment."),
    sft_rule: str = typer.Option("majority", "--sft-rule", help="majority, unanimous or best."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Share of prompts in the test split."),
    seed: str = typer.Option("0", "--seed", help="Seed of the train / test split."),
    margin: bool = typer.Option(False, "--margin", help="Add TRL's margin column (preference)."),
    max_pairs: int = typer.Option(64, "--max-pairs-per-prompt", help="Pairs kept per prompt, widest first."),
) -> None:
    """Build a preference, unpaired, SFT or reward dataset (TRL or OpenAI format) and its card."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table

    from .._models import FeedbackFilter
    from ..datasets import export_dataset
    from ..errors import ValidationError

    flt = FeedbackFilter(start_time=parse_time(start, "--start"), end_time=parse_time(end, "--end"), model=model,
                         user_id=user)  # fmt: skip
    storage = open_storage(db, project)
    console = Console(stderr=True)
    labels = {"feedback": "Reading feedback", "interactions": "Reading interactions", "examples": "Writing examples"}
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        ) as bar:  # fmt: skip
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int | None) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done, total=total)

            summary = export_dataset(
                storage, kind, out, target=target, conversational=conversational, format=fmt, min_margin=min_margin,
                rating_threshold=rating_threshold, use_text_sentiment=text_sentiment, sft_rule=sft_rule,
                test_fraction=test_fraction, seed=seed, include_margin=margin, max_pairs_per_prompt=max_pairs,
                filter=flt, progress=progress,
            )  # fmt: skip
    except ValidationError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.field.replace('_', '-')}") from exc
    finally:
        storage.close()

    table = Table(title=f"{summary.kind} dataset ({summary.target}, {summary.format})")
    table.add_column("split")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for split in ("train", "test"):
        table.add_row(split, str(summary.counts.get(split, 0)), summary.files.get(split, "-"))
    out_console = Console()
    out_console.print(table)
    if summary.skipped:
        skipped = Table(title="skipped interactions")
        skipped.add_column("reason")
        skipped.add_column("count", justify="right")
        for reason, count in sorted(summary.skipped.items(), key=lambda kv: -kv[1]):
            skipped.add_row(reason, str(count))
        out_console.print(skipped)
    out_console.print(summary.message)
    out_console.print(f"dataset card: {summary.card}")


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app``."""
    app.command("export")(export)
