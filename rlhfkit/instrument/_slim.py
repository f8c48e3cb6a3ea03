"""What the caller's thread keeps of each stream chunk: a plain text delta as its text, anything else whole.

A stream's chunks wait on the :class:`~rlhfkit.instrument._calls.Call` until
the worker turns the call into a record. Kept whole, an SDK chunk is a
handful of garbage-collected objects (the model, its ``__dict__``, its
choices and delta), which pile up between worker rounds, survive collections
into the older generations and make the interpreter's collector run more
often and longer on the caller's thread. Most chunks only carry a piece of
text, so those are kept as the ``str`` alone, which the collector never
visits; the extractors of :mod:`._extract` read a ``str`` item as exactly
that piece of text. Every other chunk (first ones, finish reasons, usage,
tool calls, anything unexpected) is kept as it came.

A slimmer is ``slim(chunk, call) -> kept`` and may replace ``call.slim``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._calls import Call

__all__ = ["Slimmer", "keep", "slimmer_for"]

Slimmer = Callable[[Any, "Call"], Any]

_MISSING = object()


def keep(chunk: Any, call: Call) -> Any:
    """Keep ``chunk`` whole."""
    return chunk


def _openai_chat_head(chunk: Any, call: Call) -> Any:
    # The record takes the first id and model seen; until a kept chunk carries
    # both, every chunk is kept whole so that none of them is lost.
    try:
        if getattr(chunk, "id", None) and getattr(chunk, "model", None):
            call.slim = _openai_chat_text
    except Exception:  # never raise into the caller's loop
        pass
    return chunk


def _openai_chat_text(chunk: Any, call: Call) -> Any:
    """A chunk whose only news is text for choice 0, as that text."""
    # Fields are read from the models' __dict__: a pydantic model's attribute
    # access goes through its __getattr__ hook, several times slower per field.
    # A field missing from __dict__ (not declared by this SDK version) keeps the chunk whole.
    try:
        fields = chunk.__dict__
        if fields.get("usage", _MISSING) is None:
            choices = fields["choices"]
            if type(choices) is list and len(choices) == 1:
                choice = choices[0].__dict__
                if choice["index"] == 0 and choice["finish_reason"] is None:
                    delta = choice["delta"].__dict__
                    content = delta["content"]
                    if type(content) is str and content and not delta["tool_calls"]:
                        return content
    except Exception:  # never raise into the caller's loop
        pass
    return chunk


def _openai_responses_text(event: Any, call: Call) -> Any:
    """A ``response.output_text.delta`` event, as its text."""
    try:
        fields = event.__dict__
        if fields["type"] == "response.output_text.delta":
            delta = fields["delta"]
            if delta is None or type(delta) is str:
                return delta or ""
    except Exception:  # never raise into the caller's loop
        pass
    return event


def _anthropic_text(event: Any, call: Call) -> Any:
    """A ``content_block_delta`` event carrying a ``text_delta``, as its text."""
    try:
        fields = event.__dict__
        if fields["type"] == "content_block_delta":
            delta = fields["delta"].__dict__
            if delta["type"] == "text_delta":
                text = delta["text"]
                if text is None or type(text) is str:
                    return text or ""
    except Exception:  # never raise into the caller's loop
        pass
    return event


_SLIMMERS: dict[tuple[str, str], Slimmer] = {
    ("openai", "chat"): _openai_chat_head,
    ("openai", "responses"): _openai_responses_text,
    ("anthropic", "messages"): _anthropic_text,
}


def slimmer_for(provider: str, api: str) -> Slimmer:
    """The slimmer for a stream of ``provider``'s ``api``; :func:`keep` for an unknown one."""
    return _SLIMMERS.get((provider, api), keep)
