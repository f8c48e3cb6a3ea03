"""Preference datasets: ``prompt`` / ``chosen`` / ``rejected`` (TRL) or OpenAI's DPO format.

TRL (DPO, ORPO, CPO, RewardTrainer): ``{"prompt", "chosen", "rejected"}``,
strings in standard form and message lists in conversational form, with an
optional float ``margin`` column (RewardTrainer reads it). OpenAI preference
fine-tuning: ``{"input": {"messages": [...]}, "preferred_output": [assistant],
"non_preferred_output": [assistant]}``. How pairs are made is described in
``rlhfkit.datasets._pairs`` (and in the dataset card).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._format import (
    FLOAT,
    INPUT,
    MESSAGES,
    TEXT,
    Build,
    Options,
    Row,
    assistant,
    chat,
    completion_value,
    prompt_value,
)
from ._pairs import PairBuilder

__all__ = ["columns", "positions", "rows"]


def columns(options: Options) -> dict[str, str]:
    """Column names and type tags of the rows."""
    if options.target == "openai":
        return {"input": INPUT, "preferred_output": MESSAGES, "non_preferred_output": MESSAGES}
    kind = MESSAGES if options.conversational else TEXT
    cols = {"prompt": kind, "chosen": kind, "rejected": kind}
    if options.include_margin:
        cols["margin"] = FLOAT
    return cols


def positions(build: Build) -> list[int]:
    """Interactions worth reading: those compared or scored."""
    table = build.table
    compared = table.compared()
    return [i for i in range(len(table)) if i in compared or table.has_scores(i)]


def rows(build: Build, wanted: list[int]) -> Iterator[Row]:
    """One row per resolved pair, prompt by prompt."""
    o, index = build.options, build.index
    builder = PairBuilder(
        build.table, index, min_margin=o.min_margin, max_pairs_per_prompt=o.max_pairs_per_prompt
    )
    from_comparisons = written = 0
    for candidates in build.groups(wanted):
        pairs = builder.pairs(candidates)
        written += len(pairs)
        paired = {p.chosen for p in pairs} | {p.rejected for p in pairs}
        for members in candidates:
            if members[0] not in paired:
                reason = "no pair: only response to its prompt" if len(candidates) == 1 else "no pair: ties or differences below min_margin"
                build.skipped[reason] += len(members)
        texts: dict[int, tuple[list[tuple[str, str]], str, str]] = {}
        for pair in pairs:
            for i in (pair.chosen, pair.rejected):
                if i not in texts:
                    texts[i] = index.text(i)
            context, prompt, chosen = texts[pair.chosen]
            rejected = texts[pair.rejected][2]
            if pair.from_comparison:
                from_comparisons += 1
            row: dict[str, Any]
            if o.target == "openai":
                row = {
                    "input": {"messages": chat(context, prompt)},
                    "preferred_output": assistant(chosen),
                    "non_preferred_output": assistant(rejected),
                }
            else:
                row = {
                    "prompt": prompt_value(context, prompt, o.conversational),
                    "chosen": completion_value(chosen, o.conversational),
                    "rejected": completion_value(rejected, o.conversational),
                }
                if o.include_margin:
                    row["margin"] = float(pair.margin)
            yield index.in_test(pair.chosen), row, (pair.chosen, pair.rejected)
    for reason, count in builder.counts.items():
        build.notes[reason] += count
    if from_comparisons:
        build.notes["pairs from comparisons"] += from_comparisons
    if written - from_comparisons:
        build.notes["pairs from scores only"] += written - from_comparisons
