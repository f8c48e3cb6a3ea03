"""The exceptions rlhfkit raises.

::

    RLHFError
    ├── ConfigurationError        a setting is missing, wrong, or contradicts another
    │   └── MissingDependencyError    an optional extra is not installed
    ├── ValidationError (ValueError)  a call's input is refused; ``field`` names the culprit
    │   └── NotFoundError             a referenced record does not exist
    ├── StorageError              a backend could not read or write
    │   └── DeliveryError             a remote backend refused a batch
    └── ClosedError               the logger or instrumentation was closed

A refused call stores nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ClosedError",
    "ConfigurationError",
    "DeliveryError",
    "MissingDependencyError",
    "NotFoundError",
    "RLHFError",
    "StorageError",
    "ValidationError",
]


class RLHFError(Exception):
    """Base of every exception rlhfkit raises on purpose."""


class ConfigurationError(RLHFError):
    """A setting is missing, invalid, or contradicts another."""


class MissingDependencyError(ConfigurationError, ImportError):
    """An optional extra is needed: the message says which ``pip install`` fixes it."""

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed: pip install 'rlhfkit[{extra}]'")
        self.package = package
        self.extra = extra


class ValidationError(RLHFError, ValueError):
    """A call's input was refused. ``field`` names the offending argument or field."""

    def __init__(self, field: str, message: str, value: Any = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.value = value


class NotFoundError(ValidationError):
    """A record that the call refers to does not exist."""


class StorageError(RLHFError):
    """A storage backend failed to read or write."""


class DeliveryError(StorageError):
    """A remote service refused records (a 4xx other than 408/429)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ClosedError(RLHFError):
    """The object was closed; create a new one."""


def from_pydantic(exc: Any, prefix: str = "") -> ValidationError:
    """Turn a pydantic ``ValidationError`` into ours, naming the first bad field."""
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()) if part not in {"function-after"})
    field = f"{prefix}.{loc}" if prefix and loc else (loc or prefix or "input")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return ValidationError(field, message, first.get("input"))


def require(module: str, extra: str) -> Any:
    """Import an optional dependency, or raise a MissingDependencyError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra) from exc
