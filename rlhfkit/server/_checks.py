"""The collector's screen of raw request bodies, and its limit on query text.

The limits themselves (NUL characters, lone surrogates, non-finite numbers,
deep nesting, over-long indexed values) are :mod:`rlhfkit._limits`, shared
with the logger; the routes apply them, so that no request can fail inside
the database: such input gets a 422 naming the field.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_TEXT", "BodyScan"]

MAX_TEXT = 10_000


class BodyScan:
    """Hooks for ``json.loads`` that note whether a body holds a value a database refuses.

    NaN and infinities (also from overflowing literals such as ``1e400``) are
    noted while parsing; NUL and surrogate escapes are found in the raw text.
    Only a noted body is walked by :func:`rlhfkit._limits.check_values` (to name the field).
    """

    def __init__(self) -> None:
        self.suspect = False

    def parse_float(self, text: str) -> float:
        """Parse a JSON number with a fraction or exponent."""
        value = float(text)
        if not math.isfinite(value):
            self.suspect = True
        return value

    def parse_constant(self, name: str) -> float:
        """Parse NaN, Infinity or -Infinity (which JSON does not allow, and Python's parser does)."""
        self.suspect = True
        return float(name)

    def loads(self, body: bytes) -> Any:
        """``json.loads(body)`` with the hooks; also notes NUL and surrogate escapes."""
        if b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body:
            self.suspect = True
        return json.loads(body, parse_float=self.parse_float, parse_constant=self.parse_constant)
