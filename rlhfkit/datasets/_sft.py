"""Supervised fine-tuning datasets from responses people liked.

TRL: ``{"prompt", "completion"}`` in standard form, ``{"messages": [...]}`` in
conversational form; OpenAI chat fine-tuning: ``{"messages": [...]}``. A
distinct response to a prompt becomes an example when its votes (see
:mod:`rlhfkit.datasets._unpaired` for what a vote is) pass ``sft_rule``:

* ``"majority"`` (default): more positive than negative votes;
* ``"unanimous"``: at least one positive vote and no negative one;
* ``"best"``: per prompt, the one response with the highest mean score among
  those with a majority of positive votes;
* a callable ``rule(Judgements) -> bool``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ._collect import Judgements, judgements
from ._format import MESSAGES, TEXT, Build, Options, Row, assistant, chat, prompt_value

__all__ = ["RULES", "columns", "positions", "rows"]

RULES: dict[str, Callable[[Judgements], bool]] = {
    "majority": lambda j: j.positive > j.negative,
    "unanimous": lambda j: j.positive > 0 and j.negative == 0,
    "best": lambda j: j.positive > j.negative,
}
"""The named SFT rules (``best`` further keeps one response per prompt)."""


def columns(options: Options) -> dict[str, str]:
    """Column names and type tags of the rows."""
    if options.target == "openai" or options.conversational:
        return {"messages": MESSAGES}
    return {"prompt": TEXT, "completion": TEXT}


def positions(build: Build) -> list[int]:
    """Interactions with at least one vote."""
    table = build.table
    return [i for i in range(len(table)) if table.pos[i] or table.neg[i]]


def rows(build: Build, wanted: list[int]) -> Iterator[Row]:
    """One example per accepted response."""
    o, index = build.options, build.index
    rule = o.sft_rule if callable(o.sft_rule) else RULES[o.sft_rule]
    for candidates in build.groups(wanted):
        accepted: list[tuple[list[int], Judgements]] = []
        for members in candidates:
            votes = judgements(build.table, members)
            if rule(votes):
                accepted.append((members, votes))
            else:
                build.skipped["feedback not positive by the sft rule"] += len(members)
        if o.sft_rule == "best" and len(accepted) > 1:
            accepted.sort(key=lambda a: (-(a[1].score or 0.0), a[1].negative - a[1].positive, a[0][0]))
            for members, _ in accepted[1:]:
                build.skipped["not the best response to its prompt"] += len(members)
            del accepted[1:]
        for members, _ in accepted:
            context, prompt, response = index.text(members[0])
            if o.target == "openai" or o.conversational:
                row: dict[str, object] = {"messages": chat(context, prompt) + assistant(response)}
            else:
                row = {"prompt": prompt_value(context, prompt, False), "completion": response}
            yield index.in_test(members[0]), row, (members[0],)
