"""Unpaired preference datasets: ``prompt`` / ``completion`` / ``label`` (TRL's KTO, BCO).

One row per distinct response to a prompt. Its label is the majority of its
votes: a thumbs up is desirable and down undesirable; a rating or a weighted
multi-dimensional score is desirable when its normalised value (0..1) is at
least ``rating_threshold``; a text comment counts by its sentiment only with
``use_text_sentiment``. An even split gives no row (counted). Comparisons give
no labels.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._collect import judgements
from ._format import BOOL, MESSAGES, TEXT, Build, Options, Row, completion_value, prompt_value

__all__ = ["columns", "positions", "rows"]


def columns(options: Options) -> dict[str, str]:
    """Column names and type tags of the rows."""
    kind = MESSAGES if options.conversational else TEXT
    return {"prompt": kind, "completion": kind, "label": BOOL}


def positions(build: Build) -> list[int]:
    """Interactions with at least one vote."""
    table = build.table
    return [i for i in range(len(table)) if table.pos[i] or table.neg[i]]


def rows(build: Build, wanted: list[int]) -> Iterator[Row]:
    """One labelled row per distinct response."""
    o, index = build.options, build.index
    for candidates in build.groups(wanted):
        for members in candidates:
            votes = judgements(build.table, members)
            if votes.positive == votes.negative:
                build.skipped["contradicting labels, even split"] += len(members)
                continue
            if votes.positive and votes.negative:
                build.notes["contradicting labels settled by majority"] += 1
            context, prompt, response = index.text(members[0])
            row = {
                "prompt": prompt_value(context, prompt, o.conversational),
                "completion": completion_value(response, o.conversational),
                "label": votes.positive > votes.negative,
            }
            yield index.in_test(members[0]), row, (members[0],)
