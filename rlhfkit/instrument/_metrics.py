"""Running counters behind :meth:`RLHFInstrumentation.get_metrics` (worker thread only).

Counters, not a scan of the buffer: they stay right after the buffer is
flushed or evicted. Latency percentiles come from the last 10,000 calls.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, deque
from dataclasses import dataclass, field

from .._models import Interaction

__all__ = ["InstrumentationMetrics", "MetricsTracker", "normalize_prompt"]

_WINDOW = 10_000
_MAX_PROMPTS = 10_000
_NON_WORD = re.compile(r"[^\w\s]+")
_SPACES = re.compile(r"\s+")


def normalize_prompt(prompt: str) -> str:
    """A prompt lower-cased, without punctuation, whitespace collapsed, cut at 200 characters."""
    return _SPACES.sub(" ", _NON_WORD.sub(" ", prompt.lower())).strip()[:200]


_NORMALIZED_KEPT = 1024


class _Normalized(dict[str, str]):
    """:func:`normalize_prompt` remembered for the last prompts seen (applications repeat theirs)."""

    def __missing__(self, prompt: str) -> str:
        if len(self) >= _NORMALIZED_KEPT:
            self.clear()
        normalized = self[prompt] = normalize_prompt(prompt)
        return normalized


@dataclass(frozen=True)
class InstrumentationMetrics:
    """A snapshot of what an instrumentation has captured. Times in milliseconds."""

    total_interactions: int = 0
    total_feedback: int = 0
    feedback_rate: float = 0.0
    average_response_time: float = 0.0
    error_rate: float = 0.0
    failed_uploads: int = 0
    dropped_records: int = 0
    evicted_records: int = 0
    pipeline_errors: int = 0
    interactions_per_session: dict[str, int] = field(default_factory=dict)
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    p50_ttft_ms: float | None = None
    p95_ttft_ms: float | None = None
    interactions_by_model: dict[str, int] = field(default_factory=dict)
    interactions_by_hour: dict[int, int] = field(default_factory=dict)
    top_prompts: list[tuple[str, int]] = field(default_factory=list)
    error_rate_by_model: dict[str, float] = field(default_factory=dict)


def _percentile(values: deque[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class MetricsTracker:
    """Counts interactions, feedback, errors and delivery failures as they happen."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.total = 0
        self.errors = 0
        self.feedback = 0
        self.with_feedback: set[str] = set()
        self.latency_sum = 0.0
        self.latency_count = 0
        self.latencies: deque[float] = deque(maxlen=_WINDOW)
        self.ttfts: deque[float] = deque(maxlen=_WINDOW)
        self.failed_uploads = 0
        self.dropped = 0
        self.evicted = 0
        self.pipeline_errors = 0
        self.by_session: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()
        self.errors_by_model: Counter[str] = Counter()
        self.by_hour: Counter[int] = Counter()
        self.prompts: Counter[str] = Counter()
        self.normalized = _Normalized()

    def interaction(self, interaction: Interaction, usage_patterns: bool) -> None:
        """Count one accepted interaction."""
        self.total += 1
        model = interaction.model or "unknown"
        if interaction.error is not None:
            self.errors += 1
            self.errors_by_model[model] += 1
        if interaction.latency is not None:
            self.latency_sum += interaction.latency
            self.latency_count += 1
            self.latencies.append(interaction.latency)
        if interaction.metrics is not None and interaction.metrics.time_to_first_token_ms is not None:
            self.ttfts.append(interaction.metrics.time_to_first_token_ms)
        if interaction.session_id:
            self.by_session[interaction.session_id] += 1
        if usage_patterns:
            self.by_model[model] += 1
            self.by_hour[interaction.timestamp.hour] += 1
            self.prompts[self.normalized[interaction.prompt]] += 1
            if len(self.prompts) > _MAX_PROMPTS:
                self.prompts = Counter(dict(self.prompts.most_common(_MAX_PROMPTS // 2)))

    def feedback_for(self, interaction_id: str) -> None:
        """Count one feedback on ``interaction_id``."""
        self.feedback += 1
        self.with_feedback.add(interaction_id)

    def snapshot(self, top: int = 10) -> InstrumentationMetrics:
        """The current numbers."""
        total = self.total
        error_rate_by_model: dict[str, float] = {}
        for model, count in self.by_model.items():
            error_rate_by_model[model] = self.errors_by_model.get(model, 0) / count if count else 0.0
        return InstrumentationMetrics(
            total_interactions=total,
            total_feedback=self.feedback,
            feedback_rate=len(self.with_feedback) / total if total else 0.0,
            average_response_time=self.latency_sum / self.latency_count if self.latency_count else 0.0,
            error_rate=self.errors / total if total else 0.0,
            failed_uploads=self.failed_uploads,
            dropped_records=self.dropped,
            evicted_records=self.evicted,
            pipeline_errors=self.pipeline_errors,
            interactions_per_session=dict(self.by_session),
            p50_latency_ms=_percentile(self.latencies, 50),
            p95_latency_ms=_percentile(self.latencies, 95),
            p50_ttft_ms=_percentile(self.ttfts, 50),
            p95_ttft_ms=_percentile(self.ttfts, 95),
            interactions_by_model=dict(self.by_model),
            interactions_by_hour=dict(sorted(self.by_hour.items())),
            top_prompts=self.prompts.most_common(top),
            error_rate_by_model=error_rate_by_model,
        )
