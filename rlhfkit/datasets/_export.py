"""export_dataset: from stored feedback to training files, a card and a summary."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from .._models import FeedbackFilter
from ..errors import ValidationError
from ..storage.base import Storage
from . import _collect, _pairs, _preference, _reward, _sft, _unpaired
from ._card import write_card
from ._collect import InteractionIndex, Judgements, Progress, SignalTable
from ._format import Build, Options
from ._sources import iter_feedback_rows
from ._writers import SPLITS, SplitWriter

__all__ = ["DatasetKind", "DatasetSummary", "export_dataset"]

logger = logging.getLogger("rlhfkit.datasets")


class DatasetKind(StrEnum):
    """The kinds of training data :func:`export_dataset` builds."""

    PREFERENCE = "preference"
    UNPAIRED = "unpaired"
    SFT = "sft"
    REWARD = "reward"


_KINDS: dict[str, ModuleType] = {
    "preference": _preference,
    "unpaired": _unpaired,
    "sft": _sft,
    "reward": _reward,
}
_TARGETS = {"trl": set(_KINDS), "openai": {"preference", "sft"}}
_FORMATS = ("jsonl", "parquet")


class DatasetSummary(BaseModel):
    """What :func:`export_dataset` wrote, and what it left out and why."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    target: str
    format: str
    conversational: bool
    directory: str
    files: dict[str, str] = Field(default_factory=dict, description="split -> file path")
    counts: dict[str, int] = Field(default_factory=dict, description="split -> rows")
    skipped: dict[str, int] = Field(default_factory=dict, description="interactions with feedback left out, by reason")
    unused_feedback: dict[str, int] = Field(default_factory=dict, description="feedback that carried no usable judgement")
    notes: dict[str, int] = Field(default_factory=dict, description="pairs, merged duplicates, settled contradictions")
    feedback_read: int = 0
    interactions_read: int = 0
    options: dict[str, Any] = Field(default_factory=dict, description="the rules and thresholds used")
    start_time: datetime | None = Field(default=None, description="earliest interaction in the examples")
    end_time: datetime | None = Field(default=None, description="latest interaction in the examples")
    models: dict[str, int] = Field(default_factory=dict, description="responses used, per model")
    card: str | None = None
    message: str = ""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        """Rows in every split."""
        return sum(self.counts.values())

    @property
    def total_skipped(self) -> int:
        """Interactions with feedback that gave no example."""
        return sum(self.skipped.values())


def _choice(field: str, value: Any, valid: Any) -> str:
    names = sorted(str(v) for v in valid)
    text = str(getattr(value, "value", value))
    if text not in names:
        raise ValidationError(field, f"unknown {field} {text!r}; valid: {', '.join(names)}", value)
    return text


def _fraction(field: str, value: Any, *, upper_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, "must be a number between 0 and 1", value)
    number = float(value)
    if not (0.0 <= number < 1.0 if upper_open else 0.0 <= number <= 1.0):
        raise ValidationError(field, f"must be between 0 and 1{' (1 excluded)' if upper_open else ''}", value)
    return number


def _options(
    kind: Any,
    target: Any,
    conversational: bool,
    format: Any,
    min_margin: Any,
    rating_threshold: Any,
    use_text_sentiment: bool,
    sft_rule: Any,
    test_fraction: Any,
    seed: Any,
    include_margin: bool,
    max_pairs_per_prompt: Any,
) -> Options:
    kind = _choice("kind", kind, _KINDS)
    target = _choice("target", target, _TARGETS)
    fmt = _choice("format", format, _FORMATS)
    if kind not in _TARGETS[target]:
        valid = ", ".join(sorted(_TARGETS[target]))
        raise ValidationError("target", f"target {target!r} has no {kind!r} format; its kinds are: {valid}", target)
    if include_margin and (kind != "preference" or target != "trl"):
        raise ValidationError("include_margin", "the margin column exists only for kind 'preference', target 'trl'", True)
    if not callable(sft_rule):
        sft_rule = _choice("sft_rule", sft_rule, _sft.RULES)
    if max_pairs_per_prompt is not None and (
        isinstance(max_pairs_per_prompt, bool) or not isinstance(max_pairs_per_prompt, int) or max_pairs_per_prompt < 1
    ):
        raise ValidationError("max_pairs_per_prompt", "must be a positive integer or None", max_pairs_per_prompt)
    if not isinstance(seed, int | str) or isinstance(seed, bool):
        raise ValidationError("seed", "must be an integer or a string", seed)
    return Options(
        kind=kind,
        target=target,
        conversational=bool(conversational),
        format=fmt,
        min_margin=_fraction("min_margin", min_margin),
        rating_threshold=_fraction("rating_threshold", rating_threshold),
        use_text_sentiment=bool(use_text_sentiment),
        sft_rule=sft_rule,
        test_fraction=_fraction("test_fraction", test_fraction, upper_open=True),
        seed=str(seed),
        include_margin=bool(include_margin),
        max_pairs_per_prompt=max_pairs_per_prompt,
    )


def export_dataset(
    storage: Storage,
    kind: DatasetKind | str,
    path: str | Path,
    *,
    target: str = "trl",
    conversational: bool = False,
    format: str = "jsonl",
    min_margin: float = 0.2,
    rating_threshold: float = 0.75,
    use_text_sentiment: bool = False,
    sft_rule: str | Callable[[Judgements], bool] = "majority",
    test_fraction: float = 0.1,
    seed: int | str = 0,
    include_margin: bool = False,
    max_pairs_per_prompt: int | None = 64,
    filter: FeedbackFilter | None = None,
    progress: Progress | None = None,
) -> DatasetSummary:
    """Build a training dataset of ``kind`` from the feedback in ``storage``, into directory ``path``.

    Writes ``{kind}-train.{format}`` and ``{kind}-test.{format}`` (a split with
    no rows gets no file) and a dataset card ``README.md``, and returns a
    :class:`DatasetSummary`. ``kind`` is ``preference``, ``unpaired``, ``sft``
    or ``reward``; ``target`` is ``trl`` (every kind) or ``openai``
    (preference and sft); ``format`` is ``jsonl`` or ``parquet`` (needs
    ``rlhfkit[parquet]``). Scores are normalised to 0..1 before ``min_margin``
    (score difference that makes a pair) and ``rating_threshold`` (score that
    counts as a positive vote) apply. ``filter`` selects the feedback
    (time range, model, user, types ...). The split is by prompt: a prompt's key
    is the first 8 bytes of the sha256 of its normalised context and text; it
    is in ``test`` when the sha256 of ``f"{seed}\\x00"`` + key, read as a 64-bit
    number, falls below ``test_fraction`` of 2**64. So about ``test_fraction``
    of the prompts go to ``test``, the same ones on every run, never one prompt
    in both splits.
    ``progress(stage, done, total)`` is called as the export advances.

    An empty selection is not an error: the summary (and the card, and a
    warning log) says why there are no examples. Unknown kinds, targets,
    formats or rules raise :class:`~rlhfkit.errors.ValidationError` listing the
    valid ones.

    Example::

        summary = export_dataset(storage, "preference", "out/", conversational=True)
        print(summary.counts, summary.skipped)
    """
    options = _options(
        kind, target, conversational, format, min_margin, rating_threshold, use_text_sentiment,
        sft_rule, test_fraction, seed, include_margin, max_pairs_per_prompt,
    )  # fmt: skip
    if filter is not None and not isinstance(filter, FeedbackFilter):
        raise ValidationError("filter", "must be a FeedbackFilter", filter)
    module = _KINDS[options.kind]
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise ValidationError("path", "must be a directory (the dataset is several files and a card)", str(path))
    directory.mkdir(parents=True, exist_ok=True)
    writer = SplitWriter(directory, options.kind, options.format, module.columns(options))

    table = SignalTable(rating_threshold=options.rating_threshold, use_text_sentiment=options.use_text_sentiment)
    for n, feedback in enumerate(iter_feedback_rows(storage, filter or FeedbackFilter()), 1):
        table.add(feedback)
        if progress is not None and n % 10_000 == 0:
            progress("feedback", n, None)
    if progress is not None:
        progress("feedback", table.feedback_read, table.feedback_read)

    index = InteractionIndex(len(table), keep_text=True)
    build = Build(options, table, index, progress)
    model_codes: Counter[int] = Counter()
    times = index.time
    first, last = float("inf"), float("-inf")
    try:
        wanted = module.positions(build)
        if len(wanted) < len(table):
            build.skipped[f"no feedback usable for kind {options.kind!r}"] += len(table) - len(wanted)
        index.load(storage, table.ids, wanted, seed=options.seed, test_fraction=options.test_fraction, progress=progress)
        build.skipped.update(index.skipped)
        for n, (in_test, row, used) in enumerate(module.rows(build, wanted), 1):
            writer.write(SPLITS[1] if in_test else SPLITS[0], row)
            for i in used:
                model_codes[index.model[i]] += 1
                t = times[i]
                if t < first:
                    first = t
                if t > last:
                    last = t
            if progress is not None and n % 1_000 == 0:
                progress("examples", n, None)
        files = writer.close()
        if progress is not None:
            done = sum(writer.counts.values())
            progress("examples", done, done)
    except BaseException:
        writer.abort()
        raise
    finally:
        index.close()
    for other in _FORMATS:
        if other != options.format:
            for split in SPLITS:
                (directory / f"{options.kind}-{split}.{other}").unlink(missing_ok=True)

    summary = DatasetSummary(
        kind=options.kind,
        target=options.target,
        format=options.format,
        conversational=options.conversational or options.target == "openai",
        directory=str(directory),
        files=files,
        counts=dict(writer.counts),
        skipped=dict(build.skipped),
        unused_feedback=dict(table.unused),
        notes=dict(build.notes),
        feedback_read=table.feedback_read,
        interactions_read=index.read,
        options=_describe(options),
        start_time=None if first > last else datetime.fromtimestamp(first, UTC),
        end_time=None if first > last else datetime.fromtimestamp(last, UTC),
        models=dict(_by_name(index, model_codes)),
    )
    summary.message = _message(summary)
    summary.card = str(write_card(directory, summary.model_dump(mode="json"), _rules(options.kind)))
    if summary.total == 0:
        logger.warning("%s", summary.message)
    else:
        logger.info("%s", summary.message)
    return summary


def _by_name(index: InteractionIndex, codes: Counter[int]) -> Counter[str]:
    named: Counter[str] = Counter()
    for code, n in codes.items():
        named[index.models[code] or "unknown"] += n
    return named


def _describe(options: Options) -> dict[str, Any]:
    described: dict[str, Any] = {
        "test_fraction": options.test_fraction,
        "seed": options.seed,
        "use_text_sentiment": options.use_text_sentiment,
    }
    if options.kind == "preference":
        described |= {"min_margin": options.min_margin, "max_pairs_per_prompt": options.max_pairs_per_prompt}
        described["include_margin"] = options.include_margin
    if options.kind in ("unpaired", "sft"):
        described["rating_threshold"] = options.rating_threshold
    if options.kind == "sft":
        rule = options.sft_rule
        described["sft_rule"] = rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")
    return described


def _message(summary: DatasetSummary) -> str:
    if summary.total:
        counts = ", ".join(f"{summary.counts[s]} {s}" for s in SPLITS)
        return f"Wrote {summary.total} {summary.kind} examples ({counts}) to {summary.directory}."
    if summary.feedback_read == 0:
        why = "no feedback matched the selection"
    else:
        reasons = sorted(summary.skipped.items(), key=lambda kv: -kv[1])[:3]
        detail = "; ".join(f"{reason}: {count}" for reason, count in reasons)
        why = f"{summary.feedback_read} feedback read, but none gave a {summary.kind} example" + (
            f" ({detail})" if detail else ""
        )
    return f"Empty {summary.kind} dataset: {why}."


_SPLIT_RULE = """Train / test split by prompt: a prompt's key is the first 8 bytes of the
sha256 of its normalised context and text (NFKC, whitespace collapsed); the
prompt is in ``test`` when the sha256 of the seed, a NUL byte and the key,
read as a 64-bit number, is below ``test_fraction`` of 2**64. Every example of
a prompt is in the same split, the same one on every run with the same seed."""


def _rules(kind: str) -> str:
    texts = [_KINDS[kind].__doc__ or "", _SPLIT_RULE]
    if kind == "preference":
        texts.append(_pairs.__doc__ or "")
    texts.append((_collect.__doc__ or "").rsplit("\n\n", 1)[-1])
    return "\n\n".join(t.strip() for t in texts if t.strip())
