"""RLHFConfig: every setting of a logger, and how a backend is built from it.

Settings resolve as: argument → ``RLHFKIT_<NAME>`` environment variable →
default. Durations are seconds, with the unit in the name; the spec's
millisecond names (``batch_flush_interval``, ``session_timeout``) are accepted
too and converted.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._limits import check_values
from ._models import StorageBackend
from .errors import ConfigurationError, from_pydantic
from .storage.base import Storage

__all__ = ["RLHFConfig", "create_storage"]

_MS_ALIASES = {"batch_flush_interval": "batch_flush_interval_s", "session_timeout": "session_timeout_s"}


class RLHFConfig(BaseModel):
    """Settings of an :class:`~rlhfkit.RLHFLogger` (the spec's RLHFConfig, in Python names)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    backend: StorageBackend = StorageBackend.MEMORY
    backend_config: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description='per backend: {"sqlite": {"path"}}, {"local": {"data_dir", "compress", "max_file_size", '
        '"rotate_files"}}, {"memory": {"max_entries"}}, {"custom": {"implementation"}}, '
        '{"postgres": {"url"}}, {"remote": {"url", "api_key", "spool_dir"}}, {"zerodb": {...}}',
    )
    enable_batching: bool = True
    batch_size: int = Field(default=50, ge=1)
    batch_flush_interval_s: float = Field(default=5.0, gt=0)
    max_queue_size: int = Field(default=100_000, ge=1, description="records held before log calls wait")
    enable_compression: bool = False
    auto_generate_ids: bool = True
    enable_session_tracking: bool = True
    session_timeout_s: float = Field(default=1800.0, gt=0)
    allow_anonymous: bool = True
    default_metadata: dict[str, Any] = Field(default_factory=dict)
    debug: bool = False
    close_timeout_s: float = Field(default=30.0, ge=0, description="how long close() and exit wait for storage")

    @field_validator("default_metadata")
    @classmethod
    def _storable_metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        # Merged into every record: a value no backend can store would refuse every call.
        check_values(metadata, "")
        return metadata

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        for spec_name, name in _MS_ALIASES.items():
            if spec_name in values:
                values.setdefault(name, float(values.pop(spec_name)) / 1000.0)
        for name in cls.model_fields:
            env = os.environ.get(f"RLHFKIT_{name.upper()}")
            if name not in values and env is not None and name not in {"backend_config", "default_metadata"}:
                values[name] = env
        return values

    @classmethod
    def build(cls, **settings: Any) -> RLHFConfig:
        """Validate settings, raising :class:`~rlhfkit.errors.ConfigurationError` naming the bad one."""
        from pydantic import ValidationError as PydanticValidationError

        try:
            return cls.model_validate(settings)
        except PydanticValidationError as exc:
            error = from_pydantic(exc)
            raise ConfigurationError(str(error)) from exc


def _snake(name: str) -> str:
    """``vectorTableName`` → ``vector_table_name``: the spec's camelCase keys are accepted too."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _section(config: RLHFConfig, name: str) -> dict[str, Any]:
    return {_snake(key): value for key, value in (config.backend_config.get(name) or {}).items()}


def create_storage(config: RLHFConfig) -> Storage:
    """Build the storage backend that ``config`` names (optional extras imported here)."""
    backend = config.backend
    if backend is StorageBackend.MEMORY:
        from .storage.memory import MemoryStorage

        return MemoryStorage(max_entries=int(_section(config, "memory").get("max_entries", 10_000)))
    if backend is StorageBackend.LOCAL:
        from .storage.local import LocalStorage

        local = _section(config, "local")
        return LocalStorage(
            data_dir=local.get("data_dir", "./rlhf-data"),
            compress=bool(local.get("compress", config.enable_compression)),
            max_file_size_mb=float(local.get("max_file_size", local.get("max_file_size_mb", 100))),
            rotate_files=bool(local.get("rotate_files", True)),
        )
    if backend in (StorageBackend.SQLITE, StorageBackend.POSTGRES):
        from .storage.sql import SQLStorage

        section = _section(config, backend.value)
        if backend is StorageBackend.SQLITE:
            url = section.get("url") or f"sqlite:///{section.get('path', 'rlhf.db')}"
        else:
            url = section.get("url") or section.get("dsn") or os.environ.get("RLHFKIT_POSTGRES_URL")
            if not url:
                raise ConfigurationError('backend_config["postgres"]["url"] is required for StorageBackend.POSTGRES')
        return SQLStorage(url, project=section.get("project", "default"))
    if backend is StorageBackend.REMOTE:
        from .storage.remote import RemoteStorage

        remote = _section(config, "remote")
        if not remote.get("url"):
            raise ConfigurationError('backend_config["remote"]["url"] is required for StorageBackend.REMOTE')
        url = remote.pop("url")
        remote.setdefault("compress", config.enable_compression)
        return RemoteStorage(url, **remote)
    if backend is StorageBackend.ZERODB:
        from .storage.zerodb import ZeroDBStorage

        return ZeroDBStorage(**_section(config, "zerodb"))
    implementation = _section(config, "custom").get("implementation")
    if implementation is None:
        raise ConfigurationError("Custom storage backend implementation required")
    if not isinstance(implementation, Storage):
        raise ConfigurationError(
            "Custom storage backend implementation must implement rlhfkit.storage.Storage "
            f"(got {type(implementation).__name__})"
        )
    return implementation
