"""Storage backends. Each implements :class:`rlhfkit.storage.Storage`.

``MemoryStorage``, ``LocalStorage`` and ``SQLStorage`` are importable from here;
``RemoteStorage`` (``rlhfkit.storage.remote``) and ``ZeroDBStorage``
(``rlhfkit.storage.zerodb``) need the ``remote`` extra.
"""

from .base import Storage
from .local import LocalStorage
from .memory import MemoryStorage
from .sql import SQLStorage

__all__ = ["LocalStorage", "MemoryStorage", "SQLStorage", "Storage"]
