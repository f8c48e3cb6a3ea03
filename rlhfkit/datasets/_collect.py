"""Streaming collection of what a dataset needs from a storage backend.

Two passes, both streamed and both compact:

1. :class:`SignalTable` reads the selected feedback once and keeps, per
   interaction id, running sums of its normalised scores, its positive and
   negative votes, and the pairs of every comparison, in flat ``array`` columns
   (a few dozen bytes per interaction, no model objects kept).
2. :class:`InteractionIndex` reads only the interactions that feedback is
   about, in chunks of ids, and keeps per interaction a 64-bit prompt key, a
   64-bit response key, its split, model and time. With ``keep_text`` the text
   needed for rows goes to an anonymous temporary file, read back by offset
   when rows are written, so memory does not grow with the text.

Scores are put on 0..1: a rating by ``(value - 1) / (max_rating - 1)``, a
thumbs up is 1 and down 0, a multi-dimensional judgement by its weighted
score over ``max_score``, a text comment (only with ``use_text_sentiment``)
1 when positive and 0 when negative. A judgement is a positive vote when its
score is at least ``rating_threshold`` (thumbs and sentiment by their sign).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, NamedTuple

from ..storage.base import Storage
from ._sources import FeedbackRow, iter_interaction_rows

__all__ = [
    "SIGNALS",
    "InteractionIndex",
    "Judgements",
    "Progress",
    "SignalTable",
    "iter_groups",
    "judgements",
    "normalise_text",
]

SIGNALS = ("rating", "binary", "multi_dimensional", "text")
"""The score signals, in the order of the SignalTable columns."""
RATING, BINARY, MULTI, TEXT = range(len(SIGNALS))
_SIGNAL_OF = {"rating": RATING, "binary": BINARY, "multi_dimensional": MULTI, "text": TEXT}

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: called as a long export advances (total may be None)."""

_CHUNK_IDS = 500


class Judgements(NamedTuple):
    """What people said about one response: the input of a custom ``sft_rule``.

    ``positive`` and ``negative`` count votes; ``score`` is the mean of every
    normalised score (0..1), None when there is none.
    """

    positive: int
    negative: int
    score: float | None


def normalise_text(text: str) -> str:
    """Unicode NFKC, whitespace runs collapsed to one space, ends stripped."""
    if text.isascii():  # NFKC leaves ASCII unchanged
        return " ".join(text.split())
    return " ".join(unicodedata.normalize("NFKC", text).split())


class SignalTable:
    """Per-interaction judgement totals of the selected feedback, in flat arrays."""

    def __init__(self, *, rating_threshold: float, use_text_sentiment: bool) -> None:
        self.rating_threshold = rating_threshold
        self.use_text_sentiment = use_text_sentiment
        self.index: dict[str, int] = {}
        self.ids: list[str] = []
        self.sums = [array("d") for _ in SIGNALS]
        self.counts = [array("I") for _ in SIGNALS]
        self.pos = array("I")
        self.neg = array("I")
        self.cmp_pref = array("I")
        self.cmp_alt = array("I")
        self.cmp_margin = array("d")
        self.feedback_read = 0
        self.by_type: Counter[str] = Counter()
        self.unused: Counter[str] = Counter()
        """Feedback that carries no usable judgement, by reason."""

    def __len__(self) -> int:
        return len(self.ids)

    def idx(self, interaction_id: str) -> int:
        """The position of an interaction, added when first seen."""
        i = self.index.get(interaction_id)
        if i is None:
            i = len(self.ids)
            self.index[interaction_id] = i
            self.ids.append(interaction_id)
            for column in self.sums:
                column.append(0.0)
            for counts in self.counts:
                counts.append(0)
            self.pos.append(0)
            self.neg.append(0)
        return i

    def add(self, row: FeedbackRow) -> None:
        """Fold one feedback into the table."""
        self.feedback_read += 1
        kind = row.type
        self.by_type[kind] += 1
        if kind == "comparative":
            data = row.data or {}
            preferred = self.idx(data["preferred_id"])
            confidence = data.get("confidence")
            margin = 1.0 if confidence is None else float(confidence)
            for alt in data["alternative_ids"]:
                self.cmp_pref.append(preferred)
                self.cmp_alt.append(self.idx(alt))
                self.cmp_margin.append(margin)
            return
        value = row.score
        if kind == "text":
            if not self.use_text_sentiment:
                self.unused["text comment (use_text_sentiment is off)"] += 1
                return
            if row.sentiment not in ("positive", "negative"):
                self.unused["text comment without positive or negative sentiment"] += 1
                return
            value = 1.0 if row.sentiment == "positive" else 0.0
        signal = _SIGNAL_OF.get(kind)
        if signal is None or value is None:
            self.unused[f"unreadable {kind} feedback"] += 1
            return
        positive = value >= (0.5 if signal in (BINARY, TEXT) else self.rating_threshold)
        i = self.idx(row.interaction_id)
        self.sums[signal][i] += value
        self.counts[signal][i] += 1
        if positive:
            self.pos[i] += 1
        else:
            self.neg[i] += 1

    def has_scores(self, i: int) -> bool:
        """True when interaction ``i`` has at least one score."""
        return any(counts[i] for counts in self.counts)

    def compared(self) -> set[int]:
        """Positions of every interaction that is part of a comparison."""
        return set(self.cmp_pref) | set(self.cmp_alt)


class InteractionIndex:
    """Compact facts about the interactions a dataset may use, by SignalTable position."""

    UNREAD, USABLE, SKIPPED, MISSING = 0, 1, 2, 3

    def __init__(self, size: int, *, keep_text: bool) -> None:
        self.group = array("Q", bytes(8 * size))
        self.response = array("Q", bytes(8 * size))
        self.model = array("i", [-1]) * size
        self.time = array("d", bytes(8 * size))
        self.state = array("b", bytes(size))
        """UNREAD (not asked for), USABLE, SKIPPED (read; no usable text) or MISSING (not stored)."""
        self.offset = array("q", bytes(8 * size)) if keep_text else array("q")
        # Byte lengths of the context (JSON), prompt and response stored at offset.
        self.lengths = [array("I", bytes(4 * size)) if keep_text else array("I") for _ in range(3)]
        self.models: list[str | None] = []
        self._model_codes: dict[str | None, int] = {}
        self.skipped: Counter[str] = Counter()
        """Interactions left out, by reason."""
        self.read = 0
        self._store: IO[bytes] | None = tempfile.TemporaryFile() if keep_text else None  # noqa: SIM115 - closed by close()
        self._end = 0
        self._unflushed = False
        self._salt, self._cut = b"0\x00", 0
        self._split_key, self._split_test = -1, False

    def load(
        self,
        storage: Storage,
        ids: Sequence[str],
        positions: Iterable[int],
        *,
        seed: str,
        test_fraction: float,
        progress: Progress | None = None,
    ) -> None:
        """Read the interactions at ``positions`` (of ``ids``) in chunks of ids."""
        wanted = sorted(positions, key=ids.__getitem__)
        total = len(wanted)
        self._salt = f"{seed}\x00".encode()
        self._cut = int(test_fraction * 2**64)
        # Hot loop over up to millions of rows: names bound locally on purpose.
        sha256, norm, from_bytes = hashlib.sha256, normalise_text, int.from_bytes
        group, response, model, time, state = self.group, self.response, self.model, self.time, self.state
        store, offset, (ctx_len, prompt_len, response_len) = self._store, self.offset, self.lengths
        usable = self.USABLE
        end = self._end
        codes = self._model_codes
        read = 0
        for start in range(0, total, _CHUNK_IDS):
            chunk = wanted[start : start + _CHUNK_IDS]
            by_id = {ids[i]: i for i in chunk}
            for row in iter_interaction_rows(storage, list(by_id)):
                i = by_id.pop(row.id, None)
                if i is None:
                    continue
                read += 1
                code = codes.get(row.model)
                model[i] = code if code is not None else self._model_code(row.model)
                time[i] = row.timestamp
                if row.incomplete or not row.response or row.response.isspace():
                    state[i] = self.SKIPPED
                    self.skipped[_unusable(row.response, row.failed, row.incomplete) or "unusable"] += 1
                    continue
                context = row.context
                if context:
                    key_text = "\x1e".join(f"{role}\x1f{norm(text)}" for role, text in context)
                    digest = sha256(f"{key_text}\x1euser\x1f{norm(row.prompt)}".encode()).digest()
                else:
                    digest = sha256(f"\x1euser\x1f{norm(row.prompt)}".encode()).digest()
                group[i] = from_bytes(digest[:8])
                response[i] = from_bytes(sha256(norm(row.response).encode()).digest()[:8])
                state[i] = usable
                if store is not None:
                    offset[i] = end
                    encoded_ctx = _encode_context(context).encode() if context else b""
                    prompt_text, response_text = row.prompt, row.response
                    if prompt_text.isascii() and response_text.isascii():
                        # One encode; byte lengths equal character lengths.
                        store.write(encoded_ctx + (prompt_text + response_text).encode())
                        lc, lp, lr = len(encoded_ctx), len(prompt_text), len(response_text)
                    else:
                        encoded_prompt, encoded_response = prompt_text.encode(), response_text.encode()
                        store.write(encoded_ctx + encoded_prompt + encoded_response)
                        lc, lp, lr = len(encoded_ctx), len(encoded_prompt), len(encoded_response)
                    ctx_len[i], prompt_len[i], response_len[i] = lc, lp, lr
                    end += lc + lp + lr
            for i in by_id.values():
                state[i] = self.MISSING
                self.skipped["interaction not found"] += 1
            if progress is not None:
                progress("interactions", min(start + _CHUNK_IDS, total), total)
        self._end = end
        self.read += read
        self._unflushed = True

    def _model_code(self, model: str | None) -> int:
        code = self._model_codes.get(model)
        if code is None:
            if len(self.models) >= 2**31 - 1:  # pragma: no cover - array("i") bound
                raise OverflowError("too many distinct models")
            code = self._model_codes[model] = len(self.models)
            self.models.append(model)
        return code

    def model_name(self, i: int) -> str | None:
        """The model of interaction ``i`` (None when it was not recorded or not read)."""
        code = self.model[i]
        return None if code < 0 else self.models[code]

    def in_test(self, i: int) -> bool:
        """True when interaction ``i``'s prompt is in the test split.

        The split depends on the prompt key only; rows come prompt by prompt,
        so the last answer is remembered.
        """
        key = self.group[i]
        if key != self._split_key:
            digest = hashlib.sha256(self._salt + key.to_bytes(8)).digest()
            self._split_key, self._split_test = key, int.from_bytes(digest[:8]) < self._cut
        return self._split_test

    def found(self, i: int) -> bool:
        """True when interaction ``i`` was read (usable or not)."""
        return self.state[i] in (self.USABLE, self.SKIPPED)

    def usable(self, i: int) -> bool:
        """True when interaction ``i`` was read and has usable text."""
        return self.state[i] == self.USABLE

    def text(self, i: int) -> tuple[list[tuple[str, str]], str, str]:
        """``(context, prompt, response)`` of interaction ``i``; needs ``keep_text``."""
        if self._store is None:
            raise RuntimeError("this index was built without keep_text")
        lc, lp, lr = self.lengths[0][i], self.lengths[1][i], self.lengths[2][i]
        if self._unflushed:
            self._store.flush()
            self._unflushed = False
        raw = os.pread(self._store.fileno(), lc + lp + lr, self.offset[i])
        context = [(role, content) for role, content in json.loads(raw[:lc])] if lc else []
        return context, raw[lc : lc + lp].decode(), raw[lc + lp :].decode()

    def close(self) -> None:
        """Delete the temporary text store."""
        if self._store is not None:
            self._store.close()
            self._store = None


_encode_context = json.JSONEncoder(ensure_ascii=False).encode


def _unusable(response: str, failed: bool, incomplete: bool) -> str | None:
    if not response.strip():
        return "failed call without a response" if failed else "empty response"
    if incomplete:
        return "incomplete (truncated) response"
    return None


def iter_groups(index: InteractionIndex, positions: Iterable[int]) -> Iterator[list[list[int]]]:
    """Usable interactions grouped by prompt, then by identical response.

    Yields, per prompt (in prompt-key order), a list of candidates; a candidate
    is the list of positions of interactions that gave the same normalised
    response to that prompt (the first one stands for all).
    """
    group, response, state, usable = index.group, index.response, index.state, index.USABLE
    # Sorting by the prompt key alone (a C-level key function) is stable, so
    # members stay in position order; responses are then grouped per prompt.
    order = sorted((i for i in positions if state[i] == usable), key=group.__getitem__)
    start, total = 0, len(order)
    while start < total:
        g = group[order[start]]
        end = start + 1
        while end < total and group[order[end]] == g:
            end += 1
        if end - start == 1:
            yield [[order[start]]]
        else:
            by_response: dict[int, list[int]] = {}
            for i in order[start:end]:
                by_response.setdefault(response[i], []).append(i)
            yield [by_response[r] for r in sorted(by_response)]
        start = end


def judgements(table: SignalTable, members: Sequence[int], signals: Sequence[int] = (RATING, BINARY, MULTI, TEXT)) -> Judgements:
    """The votes and mean score of a candidate (all its members pooled)."""
    pos = sum(table.pos[i] for i in members)
    neg = sum(table.neg[i] for i in members)
    total = n = 0.0
    for s in signals:
        sums, counts = table.sums[s], table.counts[s]
        for i in members:
            total += sums[i]
            n += counts[i]
    return Judgements(pos, neg, total / n if n else None)
