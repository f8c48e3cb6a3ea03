"""Reward tables for regression reward models: ``prompt`` / ``response`` / ``score``.

One row per distinct response to a prompt; ``score`` is the mean of all its
normalised scores (0..1): ratings, thumbs (1 / 0), weighted multi-dimensional
scores, and text sentiment when ``use_text_sentiment`` is on. In
conversational form ``prompt`` is a list of messages and ``response`` one
assistant message.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._collect import judgements
from ._format import FLOAT, MESSAGES, TEXT, Build, Options, Row, completion_value, prompt_value

__all__ = ["columns", "positions", "rows"]


def columns(options: Options) -> dict[str, str]:
    """Column names and type tags of the rows."""
    kind = MESSAGES if options.conversational else TEXT
    return {"prompt": kind, "response": kind, "score": FLOAT}


def positions(build: Build) -> list[int]:
    """Interactions with at least one score."""
    table = build.table
    return [i for i in range(len(table)) if table.has_scores(i)]


def rows(build: Build, wanted: list[int]) -> Iterator[Row]:
    """One scored row per distinct response."""
    o, index = build.options, build.index
    for candidates in build.groups(wanted):
        for members in candidates:
            score = judgements(build.table, members).score
            if score is None:  # pragma: no cover - positions() keeps scored interactions only
                continue
            context, prompt, response = index.text(members[0])
            row = {
                "prompt": prompt_value(context, prompt, o.conversational),
                "response": completion_value(response, o.conversational),
                "score": float(score),
            }
            yield index.in_test(members[0]), row, (members[0],)
