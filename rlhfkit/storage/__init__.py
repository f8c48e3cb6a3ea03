"""Storage backends. Each implements :class:`rlhfkit.storage.base.Storage`."""

from .base import Storage

__all__ = ["Storage"]
