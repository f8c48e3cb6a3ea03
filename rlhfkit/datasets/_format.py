"""Shapes shared by every dataset kind: prompts, messages, column types, options.

The prompt of an example is the interaction's ``context`` (earlier turns,
system prompt) followed by its ``prompt`` as the last user turn. Tool calls and
tool results are left out (the formats carry text turns only) and a
``developer`` message becomes a ``system`` one.

* Conversational form (and every OpenAI target): a list of
  ``{"role", "content"}`` messages.
* Standard form: the prompt text alone when there is no context; otherwise a
  transcript, one ``Role: text`` block per turn separated by blank lines and
  ending with ``Assistant:``. Prefer ``conversational=True`` for chat models,
  so that their chat template renders the roles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._collect import InteractionIndex, Judgements, Progress, SignalTable

__all__ = ["Build", "Options", "Row", "assistant", "chat", "prompt_value"]

Row = tuple[bool, dict[str, Any], tuple[int, ...]]
"""``(in_test_split, row, positions of the interactions it came from)``."""

# Column type tags, turned into pyarrow types by the writers.
TEXT, MESSAGES, BOOL, FLOAT, INPUT = "string", "messages", "bool", "float", "input"


@dataclass(frozen=True)
class Options:
    """The validated options of one export."""

    kind: str
    target: str
    conversational: bool
    format: str
    min_margin: float
    rating_threshold: float
    use_text_sentiment: bool
    sft_rule: str | Callable[[Judgements], bool]
    test_fraction: float
    seed: str
    include_margin: bool
    max_pairs_per_prompt: int | None


@dataclass
class Build:
    """Everything a kind needs to produce rows, and where it reports what it dropped."""

    options: Options
    table: SignalTable
    index: InteractionIndex
    progress: Progress | None = None
    notes: Counter[str] = field(default_factory=Counter)
    """Counts reported in the summary (pairs resolved, duplicates removed, ...)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Interactions with feedback that gave no example, by reason."""

    def groups(self, positions: Iterator[int] | list[int]) -> Iterator[list[list[int]]]:
        """Candidates per prompt (see :func:`iter_groups`), counting duplicate responses."""
        from ._collect import iter_groups

        for candidates in iter_groups(self.index, positions):
            for members in candidates:
                if len(members) > 1:
                    self.notes["duplicate responses merged"] += len(members) - 1
            yield candidates


def chat(context: list[tuple[str, str]], prompt: str) -> list[dict[str, str]]:
    """The prompt as messages: the context, then the prompt as the user's turn."""
    return [{"role": role, "content": content} for role, content in context] + [{"role": "user", "content": prompt}]


def assistant(text: str) -> list[dict[str, str]]:
    """A one-message assistant turn."""
    return [{"role": "assistant", "content": text}]


def prompt_value(context: list[tuple[str, str]], prompt: str, conversational: bool) -> str | list[dict[str, str]]:
    """The ``prompt`` column: messages in conversational form, text otherwise."""
    if conversational:
        return chat(context, prompt)
    if not context:
        return prompt
    blocks = [f"{role.capitalize()}: {content}" for role, content in context]
    return "\n\n".join([*blocks, f"User: {prompt}", "Assistant:"])


def completion_value(text: str, conversational: bool) -> str | list[dict[str, str]]:
    """A response column: one assistant message in conversational form, text otherwise."""
    return assistant(text) if conversational else text
