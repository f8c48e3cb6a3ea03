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
    from .datasets import export_dataset

__version__ = "0.1.0"

# Public names whose modules load on first access: name -> module.
_LAZY = {
    "export_dataset": "rlhfkit.datasets",
}

__all__ = [
    "AnalyticsResult",
    "AsyncRLHFLogger",
    "BinaryData",
    "BinaryFeedback",
    "ComparativeData",
    "ContextData",
    "ErrorInfo",
    "ExportFormat",
    "Feedback",
    "FeedbackFilter",
    "FeedbackSession",
    "FeedbackStats",
    "FeedbackType",
    "Interaction",
    "InteractionFilter",
    "Message",
    "MultiDimensionalData",
    "PerformanceMetrics",
    "RLHFConfig",
    "RLHFLogger",
    "RatingData",
    "RecordBatch",
    "Sentiment",
    "Storage",
    "StorageBackend",
    "TextData",
    "TokenUsage",
    "__version__",
    "create_rlhf_logger",
    "create_storage",
    "errors",
    "export_dataset",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rlhfkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
