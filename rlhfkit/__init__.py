"""rlhfkit: capture every LLM interaction, collect human feedback, train better models.

The whole public API is importable from here::

    from rlhfkit import create_rlhf_logger, StorageBackend, BinaryFeedback

Optional parts (auto-instrumentation, datasets, the collector) load on first
use, so ``import rlhfkit`` needs nothing beyond pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors
from ._config import RLHFConfig, create_storage
from ._logger import AsyncRLHFLogger, RLHFLogger, create_rlhf_logger
from ._models import (
    AnalyticsResult,
    BinaryData,
    BinaryFeedback,
    ComparativeData,
    ContextData,
    ErrorInfo,
    ExportFormat,
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    FeedbackType,
    Interaction,
    InteractionFilter,
    Message,
    MultiDimensionalData,
    PerformanceMetrics,
    RatingData,
    RecordBatch,
    Sentiment,
    StorageBackend,
    TextData,
    TokenUsage,
)
from .storage.base import Storage

if TYPE_CHECKING:
    from .datasets import DatasetSummary, export_dataset
    from .instrument import (
        InstrumentationConfig,
        InstrumentationMetrics,
        PIIRedactor,
        RLHFContextMiddleware,
        RLHFInstrumentation,
        RLHFWSGIMiddleware,
        create_instrumentation,
        redact_pii,
        rlhf_wsgi_middleware,
    )

__version__ = "0.1.0"

# Public names whose modules load on first access: name -> module.
_LAZY = {
    "DatasetSummary": "rlhfkit.datasets",
    "export_dataset": "rlhfkit.datasets",
    "InstrumentationConfig": "rlhfkit.instrument",
    "InstrumentationMetrics": "rlhfkit.instrument",
    "PIIRedactor": "rlhfkit.instrument",
    "RLHFContextMiddleware": "rlhfkit.instrument",
    "RLHFInstrumentation": "rlhfkit.instrument",
    "RLHFWSGIMiddleware": "rlhfkit.instrument",
    "create_instrumentation": "rlhfkit.instrument",
    "redact_pii": "rlhfkit.instrument",
    "rlhf_wsgi_middleware": "rlhfkit.instrument",
}

__all__ = [
    "AnalyticsResult",
    "AsyncRLHFLogger",
    "BinaryData",
    "BinaryFeedback",
    "ComparativeData",
    "ContextData",
    "DatasetSummary",
    "ErrorInfo",
    "ExportFormat",
    "Feedback",
    "FeedbackFilter",
    "FeedbackSession",
    "FeedbackStats",
    "FeedbackType",
    "InstrumentationConfig",
    "InstrumentationMetrics",
    "Interaction",
    "InteractionFilter",
    "Message",
    "MultiDimensionalData",
    "PIIRedactor",
    "PerformanceMetrics",
    "RLHFConfig",
    "RLHFContextMiddleware",
    "RLHFInstrumentation",
    "RLHFLogger",
    "RLHFWSGIMiddleware",
    "RatingData",
    "RecordBatch",
    "Sentiment",
    "Storage",
    "StorageBackend",
    "TextData",
    "TokenUsage",
    "__version__",
    "create_instrumentation",
    "create_rlhf_logger",
    "create_storage",
    "errors",
    "export_dataset",
    "redact_pii",
    "rlhf_wsgi_middleware",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhfkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
