"""The one data model of rlhfkit.

Every part of the package (the loggers, the instrumentation, every storage
backend, the collector, the dataset builders) speaks these types. Field names
follow the OpenTelemetry GenAI conventions where one exists, so that an export
to OpenTelemetry is a renaming, not a translation.

Times are timezone-aware UTC ``datetime`` objects; durations are floats in
milliseconds with the unit in the name (``latency_ms`` is exposed as
``latency`` for the spec's sake).
"""

from __future__ import annotations

import copy
import functools
import itertools
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

__all__ = [
    "AnalyticsResult",
    "BinaryData",
    "BinaryFeedback",
    "BinaryStats",
    "ComparativeData",
    "ComparativeStats",
    "ContextData",
    "ErrorInfo",
    "ExportFormat",
    "Feedback",
    "FeedbackData",
    "FeedbackFilter",
    "FeedbackSession",
    "FeedbackStats",
    "FeedbackType",
    "Interaction",
    "InteractionFilter",
    "Message",
    "ModelStats",
    "MultiDimensionalData",
    "MultiDimensionalStats",
    "PerformanceMetrics",
    "RatingData",
    "RatingStats",
    "RecordBatch",
    "Sentiment",
    "StorageBackend",
    "TextData",
    "TextStats",
    "TokenUsage",
    "new_id",
    "utc_now",
]


def utc_now() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class _IdSource:
    """Per-process random prefix plus a counter; renewed after ``fork``."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = f"{random.SystemRandom().getrandbits(48):012x}"
        self.counter = itertools.count(random.SystemRandom().getrandbits(24))
        self.head = (-1, -1, "")  # (millisecond, counter >> 8, the first 30 characters of their ids)


_ids = _IdSource()


def new_id() -> str:
    """A new record id: 32 hex characters, sortable by creation time.

    12 characters of Unix time in milliseconds, 12 of a random per-process
    prefix, then 8 of a per-process counter: ids sort in creation order
    (cursor pagination relies on it) and do not collide across processes,
    threads or forks. They are unique, not secret.
    """
    return "%012x%s%08x" % (time.time_ns() // 1_000_000, _ids.prefix, next(_ids.counter) & 0xFFFFFFFF)


def _new_id_at(time_ns: int) -> str:
    """:func:`new_id` for a clock reading already taken (``time.time_ns()``), so one reading serves id and timestamp."""
    ms, n = time_ns // 1_000_000, next(_ids.counter) & 0xFFFFFFFF
    head = _ids.head
    if head[0] != ms or head[1] != n >> 8:  # formatted once for up to 256 ids (% formatting is slow)
        head = _ids.head = (ms, n >> 8, "%012x%s%06x" % (ms, _ids.prefix, n >> 8))
    return head[2] + _HEX_BYTE[n & 0xFF]


_HEX_BYTE = tuple(f"{i:02x}" for i in range(256))


_from_timestamp = datetime.fromtimestamp


def _utc_from_ns(time_ns: int) -> datetime:
    """The UTC datetime of a ``time.time_ns()`` reading, truncated to microseconds like :func:`utc_now`."""
    # Exact: the float is within half a microsecond of the whole microsecond, which fromtimestamp rounds to.
    return _from_timestamp((time_ns // 1000) / 1e6, UTC)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-23:59: raised as ValueError so pydantic names the field
        raise ValueError("date is out of range once converted to UTC") from None


class _Model(BaseModel):
    """Base of every record: strict about unknown fields, JSON friendly."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_enum_values=False)


M = TypeVar("M", bound=BaseModel)
_ATOMIC = (type(None), bool, int, float, str, bytes)
# The slots every pydantic model has, set as pydantic-core sets them (BaseModel.__setattr__ would validate).
_new_object = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _construct(cls: type[M], values: dict[str, Any], fields_set: set[str], extra: dict[str, Any] | None = None) -> M:
    """A model of ``cls`` holding ``values`` as its ``__dict__``, without validation (see :class:`_TrustedBuilder`)."""
    model: M = _new_object(cls)
    _set_dict(model, values)
    _set_fields_set(model, fields_set)
    _set_extra(model, extra)
    _set_private(model, None)
    return model


class _TrustedBuilder(Generic[M]):
    """Builds models from field values already checked, without validating them again.

    For hot paths that check their input by hand::

        values = builder.values()      # every field: defaults, fresh from their factories
        values["prompt"] = prompt      # then each of the ``given`` fields
        model = builder.build(values)

    The model equals ``cls.model_validate`` of the given fields when each value
    is already of its field's exact type (``float`` for a float, a model for a
    nested model) and passes the field's validators; ``model_fields_set`` is
    ``given``, as after validation. It costs a dict copy and a few stores
    instead of a pass of the validator.
    """

    __slots__ = ("cls", "factories", "fields_set", "template")

    def __init__(self, cls: type[M], given: tuple[str, ...]) -> None:
        if cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
            raise TypeError(f"{cls.__name__} has private attributes or extra fields: validate it instead")
        unknown = set(given) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
        self.cls = cls
        self.fields_set = frozenset(given)
        self.template: dict[str, Any] = {}
        self.factories: list[tuple[str, Callable[[], Any]]] = []
        for name, info in cls.model_fields.items():
            self.template[name] = None
            if name in given:
                continue
            if info.is_required():
                raise TypeError(f"{cls.__name__}.{name} is required: add it to the given fields")
            if info.default_factory is not None:
                if info.default_factory_takes_validated_data:
                    raise TypeError(f"{cls.__name__}.{name}: a default factory taking data is not supported")
                self.factories.append((name, info.default_factory))  # type: ignore[arg-type]
            elif type(info.default) in _ATOMIC:
                self.template[name] = info.default
            else:  # a mutable default: validation gives each model its own copy
                self.factories.append((name, functools.partial(copy.deepcopy, info.default)))

    def values(self) -> dict[str, Any]:
        """A fresh dict of every field: the defaults, and None for each given field until it is set."""
        values = self.template.copy()
        for name, factory in self.factories:
            values[name] = factory()
        return values

    def build(self, values: dict[str, Any]) -> M:
        """The model holding ``values`` (from :meth:`values`, every given field set); it keeps the dict."""
        return _construct(self.cls, values, set(self.fields_set))


# --------------------------------------------------------------------------- enums


class StorageBackend(StrEnum):
    """Where a logger keeps its records."""

    MEMORY = "memory"
    LOCAL = "local"
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    REMOTE = "remote"
    ZERODB = "zerodb"
    CUSTOM = "custom"


class FeedbackType(StrEnum):
    """The five kinds of human feedback."""

    BINARY = "binary"
    RATING = "rating"
    TEXT = "text"
    MULTI_DIMENSIONAL = "multi_dimensional"
    COMPARATIVE = "comparative"


class BinaryFeedback(StrEnum):
    """A thumbs up or a thumbs down."""

    THUMBS_UP = "thumbs_up"
    THUMBS_DOWN = "thumbs_down"


class Sentiment(StrEnum):
    """The sentiment of a text comment."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"


class ExportFormat(StrEnum):
    """File formats of :meth:`RLHFLogger.export_feedback`."""

    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


# --------------------------------------------------------------------------- interaction parts


class Message(_Model):
    """One message of a conversation (OpenAI-style roles)."""

    model_config = ConfigDict(extra="allow")

    role: str
    content: str = ""

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in {"user", "assistant", "system", "tool", "developer", "function"}:
            raise ValueError("role must be one of user, assistant, system, tool, developer")
        return role


class TokenUsage(_Model):
    """Token counts as the provider reported them."""

    prompt: int = Field(default=0, ge=0)
    completion: int = Field(default=0, ge=0)
    total: int = Field(default=0, ge=0)
    cached: int | None = Field(default=None, ge=0, description="prompt tokens read from the provider's cache")
    reasoning: int | None = Field(default=None, ge=0, description="completion tokens spent on reasoning")

    @model_validator(mode="after")
    def _fill_total(self) -> TokenUsage:
        if self.total == 0 and (self.prompt or self.completion):
            self.total = self.prompt + self.completion
        return self


class PerformanceMetrics(_Model):
    """What a call cost in time, measured on a monotonic clock (milliseconds)."""

    time_to_first_token_ms: float | None = Field(default=None, ge=0)
    total_response_time_ms: float | None = Field(default=None, ge=0)
    streaming_time_ms: float | None = Field(default=None, ge=0)
    tokens_per_second: float | None = Field(default=None, ge=0)
    network_latency_ms: float | None = Field(default=None, ge=0)
    retry_count: int = Field(default=0, ge=0)
    cache_hit: bool | None = None


class ErrorInfo(_Model):
    """A failed call: what was raised, and the HTTP status when there was one."""

    type: str
    message: str = ""
    status_code: int | None = None


class ContextData(_Model):
    """Where a call was made: the process, and the web request being served."""

    user_agent: str | None = None
    device_type: str | None = None
    platform: str | None = None
    language: str | None = None
    timezone: str | None = None
    screen_resolution: str | None = None
    referrer: str | None = None
    url: str | None = None
    user_id: str | None = None
    app_version: str | None = None
    environment: str | None = None
    hostname: str | None = None
    python_version: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class Interaction(_Model):
    """One exchange with a model: what was asked, what came back, and how.

    ``prompt`` is the last user turn; earlier turns (system prompt included)
    are in ``context``. Captured calls also fill ``provider``, ``metrics``,
    ``error``, ``environment`` and the tool fields.
    """

    id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    prompt: str = Field(min_length=1)
    response: str = ""
    model: str | None = None
    model_params: dict[str, Any] = Field(default_factory=dict)
    latency: float | None = Field(default=None, ge=0, description="end-to-end latency in milliseconds")
    token_usage: TokenUsage | None = None
    user_id: str | None = None
    session_id: str | None = None
    context: list[Message] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime = Field(default_factory=utc_now)
    feedback_ids: list[str] = Field(default_factory=list)
    # Filled by the auto-instrumentation; optional for hand-logged interactions.
    provider: str | None = None
    response_id: str | None = None
    finish_reason: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list, description="tools offered to the model")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, description="tool calls in the response")
    metrics: PerformanceMetrics | None = None
    error: ErrorInfo | None = None
    environment: ContextData | None = None
    incomplete: bool = Field(default=False, description="a stream that ended before the model finished")

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be empty")
        return prompt

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)


# --------------------------------------------------------------------------- feedback


class BinaryData(_Model):
    """A thumbs up or down."""

    type: Literal["binary"] = "binary"
    value: BinaryFeedback


class RatingData(_Model):
    """A rating from 1 to ``max_rating``, with an optional comment."""

    type: Literal["rating"] = "rating"
    value: float
    max_rating: int = Field(default=5, ge=1)
    comment: str | None = None

    @model_validator(mode="after")
    def _in_range(self) -> RatingData:
        if not math.isfinite(self.value) or not 1 <= self.value <= self.max_rating:
            raise ValueError(f"rating must be between 1 and max_rating ({self.max_rating}), got {self.value}")
        return self

    @property
    def normalized(self) -> float:
        """The rating mapped onto 0..1 (1 → 0, max_rating → 1)."""
        return 1.0 if self.max_rating == 1 else (self.value - 1) / (self.max_rating - 1)


class TextData(_Model):
    """A free-text comment, with its sentiment when known."""

    type: Literal["text"] = "text"
    comment: str = Field(min_length=1)
    sentiment: Sentiment | None = None

    @field_validator("comment")
    @classmethod
    def _comment_has_text(cls, comment: str) -> str:
        if not comment.strip():
            raise ValueError("comment must not be empty")
        return comment


class MultiDimensionalData(_Model):
    """Scores on several named dimensions (1..``max_score``), optionally weighted."""

    type: Literal["multi_dimensional"] = "multi_dimensional"
    dimensions: dict[str, float] = Field(min_length=1)
    weights: dict[str, float] | None = None
    overall_comment: str | None = None
    max_score: float = Field(default=5, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> MultiDimensionalData:
        for name, score in self.dimensions.items():
            if not math.isfinite(score) or score < 0 or score > self.max_score:
                raise ValueError(f"dimension {name!r} must be between 0 and {self.max_score}, got {score}")
        if self.weights is not None:
            unknown = sorted(set(self.weights) - set(self.dimensions))
            if unknown:
                raise ValueError(f"weights given for dimensions that are not rated: {', '.join(unknown)}")
            if any(w < 0 or not math.isfinite(w) for w in self.weights.values()):
                raise ValueError("weights must be finite and non-negative")
            if sum(self.weights.values()) <= 0:
                raise ValueError("weights must have a positive sum")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def weighted_score(self) -> float:
        """The weighted mean of the dimensions (plain mean without weights)."""
        if not self.weights:
            return sum(self.dimensions.values()) / len(self.dimensions)
        total = sum(self.weights.values())
        return sum(self.dimensions[d] * w for d, w in self.weights.items()) / total


class ComparativeData(_Model):
    """One preferred response over one or more alternatives."""

    type: Literal["comparative"] = "comparative"
    preferred_id: str = Field(min_length=1)
    alternative_ids: list[str] = Field(min_length=1)
    reason: str | None = None
    confidence: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _preferred_not_an_alternative(self) -> ComparativeData:
        if self.preferred_id in self.alternative_ids:
            raise ValueError("the preferred id must not be among the alternative ids")
        if len(set(self.alternative_ids)) != len(self.alternative_ids):
            raise ValueError("alternative ids must be distinct")
        return self


FeedbackData = Annotated[
    BinaryData | RatingData | TextData | MultiDimensionalData | ComparativeData,
    Field(discriminator="type"),
]
"""The payload of a :class:`Feedback`, told apart by its ``type``."""


class Feedback(_Model):
    """A person's judgement of an interaction (of several, for comparisons)."""

    id: str = Field(default_factory=new_id, min_length=1, max_length=200)
    interaction_id: str = Field(min_length=1)
    type: FeedbackType
    data: FeedbackData
    user_id: str | None = None
    session_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime = Field(default_factory=utc_now)
    source: str | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return _as_utc(value)

    @model_validator(mode="after")
    def _type_matches_data(self) -> Feedback:
        if self.data.type != self.type.value:
            raise ValueError(f"type {self.type.value!r} does not match data of type {self.data.type!r}")
        return self

    def interaction_ids(self) -> list[str]:
        """Every interaction this feedback is about (several for a comparison)."""
        if isinstance(self.data, ComparativeData):
            return [self.data.preferred_id, *self.data.alternative_ids]
        return [self.interaction_id]


class FeedbackSession(_Model):
    """Interactions and feedback grouped as one user's visit or conversation."""

    id: str = Field(default_factory=new_id, min_length=1)
    user_id: str | None = None
    start_time: datetime = Field(default_factory=utc_now)
    end_time: datetime | None = None
    interaction_ids: list[str] = Field(default_factory=list)
    feedback_ids: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class RecordBatch(_Model):
    """What a storage backend writes in one go. Writes are idempotent on ids."""

    interactions: list[Interaction] = Field(default_factory=list)
    feedback: list[Feedback] = Field(default_factory=list)
    sessions: list[FeedbackSession] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.interactions) + len(self.feedback) + len(self.sessions)


# --------------------------------------------------------------------------- filters


class _Filter(_Model):
    start_time: datetime | None = None
    end_time: datetime | None = None
    user_id: str | None = None
    session_id: str | None = None
    limit: int | None = Field(default=None, ge=1)
    offset: int = Field(default=0, ge=0)
    after_id: str | None = Field(
        default=None, description="cursor: only records whose id sorts after this one"
    )

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _as_utc(value)


class FeedbackFilter(_Filter):
    """Which feedback to read. Every field given must match (AND).

    Results come in id order (which is creation order).
    """

    ids: list[str] | None = None
    interaction_ids: list[str] | None = None
    types: list[FeedbackType] | None = None
    min_rating: float | None = None
    max_rating: float | None = None
    sentiment: Sentiment | None = None
    source: str | None = None
    model: str | None = Field(default=None, description="the model of the interaction the feedback is about")


class InteractionFilter(_Filter):
    """Which interactions to read. Every field given must match (AND).

    Results come in id order (which is creation order).
    """

    ids: list[str] | None = None
    models: list[str] | None = None
    provider: str | None = None
    has_feedback: bool | None = None
    feedback_types: list[FeedbackType] | None = None
    min_rating: float | None = None
    max_rating: float | None = None
    errors_only: bool = False
    search: str | None = Field(default=None, description="case-insensitive text in prompt or response")


# --------------------------------------------------------------------------- stats


class BinaryStats(_Model):
    """Thumbs counts; ``ratio`` is the share of thumbs up (0 when there are none)."""

    thumbs_up: int = 0
    thumbs_down: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ratio(self) -> float:
        total = self.thumbs_up + self.thumbs_down
        return self.thumbs_up / total if total else 0.0


class RatingStats(_Model):
    """Ratings; ``average`` and ``median`` are on a 1..5 scale (normalised by max_rating)."""

    count: int = 0
    average: float = 0.0
    median: float = 0.0
    distribution: dict[int, int] = Field(default_factory=dict, description="count per 1..5 star bucket")


class TextStats(_Model):
    """Text comments by sentiment."""

    count: int = 0
    positive: int = 0
    negative: int = 0
    neutral: int = 0
    unknown: int = 0


class MultiDimensionalStats(_Model):
    """Average score per dimension, and the average weighted score."""

    count: int = 0
    dimension_averages: dict[str, float] = Field(default_factory=dict)
    average_weighted_score: float = 0.0


class ComparativeStats(_Model):
    """Comparisons won and lost, per model."""

    count: int = 0
    wins_by_model: dict[str, int] = Field(default_factory=dict)
    losses_by_model: dict[str, int] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def win_rate_by_model(self) -> dict[str, float]:
        models = set(self.wins_by_model) | set(self.losses_by_model)
        rates = {}
        for model in sorted(models):
            won, lost = self.wins_by_model.get(model, 0), self.losses_by_model.get(model, 0)
            rates[model] = won / (won + lost) if won + lost else 0.0
        return rates


class ModelStats(_Model):
    """The headline numbers of one model."""

    model: str
    interactions: int = 0
    feedback: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    average_rating: float | None = None
    average_latency_ms: float | None = None


class FeedbackStats(_Model):
    """Aggregated feedback statistics over a time range."""

    total_interactions: int = 0
    total_feedback: int = 0
    interactions_with_feedback: int = 0
    by_type: dict[str, int] = Field(default_factory=dict)
    binary: BinaryStats = Field(default_factory=BinaryStats)
    rating: RatingStats = Field(default_factory=RatingStats)
    text: TextStats = Field(default_factory=TextStats)
    multi_dimensional: MultiDimensionalStats = Field(default_factory=MultiDimensionalStats)
    comparative: ComparativeStats = Field(default_factory=ComparativeStats)
    by_model: dict[str, ModelStats] = Field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def feedback_rate(self) -> float:
        """Share of interactions that received at least one feedback."""
        return self.interactions_with_feedback / self.total_interactions if self.total_interactions else 0.0


class AnalyticsResult(_Model):
    """Everything :meth:`RLHFLogger.get_analytics` knows about a selection.

    The leaderboard, quality trends and annotator agreement are filled by the
    analytics module; see :mod:`rlhfkit.analytics`.
    """

    stats: FeedbackStats
    trends: list[dict[str, Any]] = Field(default_factory=list, description="per day: volume, rates, averages")
    top_issues: list[str] = Field(
        default_factory=list, description="most frequent words of negative comments"
    )
    leaderboard: list[dict[str, Any]] = Field(default_factory=list)
    quality_over_time: list[dict[str, Any]] = Field(default_factory=list)
    agreement: dict[str, Any] = Field(default_factory=dict)


def coerce_models(values: Sequence[str] | str | None) -> list[str] | None:
    """Accept one model name or several."""
    if values is None:
        return None
    return [values] if isinstance(values, str) else list(values)
