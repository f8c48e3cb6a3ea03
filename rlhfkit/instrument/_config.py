"""InstrumentationConfig: every option of the auto-instrumentation, checked once.

Settings resolve as argument → ``RLHFKIT_*`` environment variable → default:
``RLHFKIT_SAMPLE_RATE``, ``RLHFKIT_INSTRUMENTATION_ENABLED``, ``RLHFKIT_REMOTE_ENDPOINT``,
``RLHFKIT_API_KEY``, ``RLHFKIT_DATA_DIR``, ``RLHFKIT_APP_VERSION``, ``RLHFKIT_ENVIRONMENT``.
Names are the spec's options in snake_case, with units in the names
(``flush_interval_s``); the spec's ``flush_interval`` (milliseconds) is
accepted too and converted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ValidationError

if TYPE_CHECKING:
    from .._models import Feedback, Interaction

__all__ = ["InstrumentationConfig", "StorageKind"]

StorageKind = Literal["memory", "local", "remote"]

_STORAGES = ("memory", "local", "remote")


@dataclass
class InstrumentationConfig:
    """How an :class:`RLHFInstrumentation` captures and where it sends what it captures.

    Example::

        config = InstrumentationConfig(sample_rate=0.5, storage="local", data_dir="./rlhf-data")
    """

    enabled: bool = True
    capture_interactions: bool = True
    capture_feedback: bool = True
    capture_metrics: bool = True
    capture_errors: bool = True
    capture_usage_patterns: bool = True
    collect_context: bool = True
    custom_context: dict[str, Any] = field(default_factory=dict)
    sample_rate: float = 1.0
    sample_seed: int | None = None
    max_buffer_size: int = 1000
    on_buffer_full: Callable[[list[Interaction]], Any] | None = None
    on_interaction_captured: Callable[[Interaction], Any] | None = None
    on_feedback_captured: Callable[[Feedback], Any] | None = None
    storage: StorageKind = "memory"
    remote_endpoint: str | None = None
    api_key: str | None = None
    data_dir: str | None = None
    spool_dir: str | None = None
    batch_size: int = 10
    flush_interval_s: float = 60.0
    app_version: str | None = None
    environment: str | None = None
    user_id_header: str = "X-User-Id"
    session_id_header: str = "X-Session-Id"

    def __post_init__(self) -> None:
        if self.storage not in _STORAGES:
            raise ValidationError("storage", f"must be one of {', '.join(_STORAGES)}", self.storage)
        if not 0.0 <= float(self.sample_rate) <= 1.0:
            raise ValidationError("sample_rate", "must be between 0 and 1", self.sample_rate)
        if int(self.max_buffer_size) < 1:
            raise ValidationError("max_buffer_size", "must be at least 1", self.max_buffer_size)
        if int(self.batch_size) < 1:
            raise ValidationError("batch_size", "must be at least 1", self.batch_size)
        if not float(self.flush_interval_s) > 0:
            raise ValidationError("flush_interval_s", "must be positive", self.flush_interval_s)
        for name in ("on_buffer_full", "on_interaction_captured", "on_feedback_captured"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValidationError(name, "must be callable", value)
        if not isinstance(self.custom_context, Mapping):
            raise ValidationError("custom_context", "must be a mapping", self.custom_context)
        self.custom_context = dict(self.custom_context)
        if self.storage == "remote" and not (
            self.remote_endpoint or os.environ.get("RLHFKIT_REMOTE_ENDPOINT")
        ):
            raise ValidationError("remote_endpoint", "is required when storage is 'remote'")
        self.remote_endpoint = self.remote_endpoint or os.environ.get("RLHFKIT_REMOTE_ENDPOINT")
        self.api_key = self.api_key or os.environ.get("RLHFKIT_API_KEY")
        self.data_dir = self.data_dir or os.environ.get("RLHFKIT_DATA_DIR") or "./rlhf-data"
        self.app_version = self.app_version or os.environ.get("RLHFKIT_APP_VERSION")
        self.environment = self.environment or os.environ.get("RLHFKIT_ENVIRONMENT")

    @classmethod
    def from_kwargs(cls, config: InstrumentationConfig | None = None, **kwargs: Any) -> InstrumentationConfig:
        """A config from ``config`` (or the defaults) with ``kwargs`` applied on top.

        Unknown names raise :class:`~rlhfkit.errors.ValidationError`;
        ``flush_interval`` (the spec's name, in milliseconds) sets ``flush_interval_s``.
        """
        if "flush_interval" in kwargs:
            value = kwargs.pop("flush_interval")
            try:
                kwargs["flush_interval_s"] = float(value) / 1000.0
            except (TypeError, ValueError):
                raise ValidationError("flush_interval", "must be a number of milliseconds", value) from None
        if config is None:
            _from_environment(kwargs)
        known = {f.name for f in fields(cls)}
        for name in kwargs:
            if name not in known:
                raise ValidationError(name, "is not an InstrumentationConfig option", kwargs[name])
        if config is None:
            return cls(**kwargs)
        values = {f.name: getattr(config, f.name) for f in fields(cls)}
        values.update(kwargs)
        return cls(**values)


def _from_environment(kwargs: dict[str, Any]) -> None:
    """Fill ``sample_rate`` and ``enabled`` from RLHFKIT_SAMPLE_RATE / RLHFKIT_INSTRUMENTATION_ENABLED when not given."""
    rate = os.environ.get("RLHFKIT_SAMPLE_RATE")
    if "sample_rate" not in kwargs and rate:
        try:
            kwargs["sample_rate"] = float(rate)
        except ValueError:
            raise ValidationError("RLHFKIT_SAMPLE_RATE", "must be a number between 0 and 1", rate) from None
    enabled = os.environ.get("RLHFKIT_INSTRUMENTATION_ENABLED")
    if "enabled" not in kwargs and enabled:
        kwargs["enabled"] = enabled.strip().lower() not in {"0", "false", "no", "off"}
