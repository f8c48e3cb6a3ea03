"""The dashboard's reads: newest-first keyset pages, same-prompt groups, comparison coverage.

On the SQL storage these are bounded indexed queries (see :mod:`._table` for
the interactions table); any other backend is served through the Storage
Protocol, which suits the bounded in-memory backend.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..._models import FeedbackFilter, FeedbackType, Interaction, InteractionFilter
from ...storage.base import Storage

__all__ = [
    "GROUP_WINDOW",
    "Group",
    "Page",
    "Row",
    "compared_ids",
    "cursor_of",
    "group_key",
    "interaction_page",
    "normalise_prompt",
    "parse_cursor",
    "prompt_groups",
]

GROUP_WINDOW = 5_000
"""How many of the newest interactions the compare page and the review queue group."""
_SNIPPET = 240
_CHUNK = 500
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Row:
    """One line of the interactions table."""

    id: str
    timestamp: datetime
    model: str | None
    user_id: str | None
    session_id: str | None
    latency: float | None
    total_tokens: int | None
    has_error: bool
    prompt: str
    response: str
    feedback: int = 0


@dataclass
class Page:
    """A page of rows, newest first, with the cursors to the pages around it."""

    rows: list[Row]
    newer: str | None = None
    older: str | None = None
    scanned_to: datetime | None = None
    """Set when a text search or error filter looked only at a window of rows: the oldest time it reached."""


def _is_sql(storage: Storage) -> bool:
    return hasattr(storage, "engine") and hasattr(storage, "project") and hasattr(storage, "_connect")


def _row(i: Interaction) -> Row:
    usage = i.token_usage
    return Row(
        id=i.id, timestamp=i.timestamp, model=i.model, user_id=i.user_id, session_id=i.session_id,
        latency=i.latency, total_tokens=None if usage is None else usage.total, has_error=i.error is not None,
        prompt=i.prompt[:_SNIPPET], response=i.response[:_SNIPPET], feedback=len(i.feedback_ids),
    )  # fmt: skip


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def cursor_of(row: Row) -> str:
    """The cursor of a row: its time in microseconds and its id (the table's sort key)."""
    return f"{_micros(row.timestamp)}.{row.id}"


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """``(microseconds, id)`` of a cursor, or None when it is missing or malformed."""
    if not cursor or len(cursor) > 240:
        return None
    micros, sep, interaction_id = cursor.partition(".")
    if not sep or not micros.lstrip("-").isdigit() or len(micros) > 20:
        return None
    return int(micros), interaction_id


def interaction_page(
    storage: Storage, flt: InteractionFilter, *, before: str | None = None, after: str | None = None, size: int = 50
) -> Page:
    """Interactions matching ``flt``, newest first (by time, then id): the page older than ``before`` or newer than ``after``.

    ``before`` and ``after`` are cursors from a previous page (:func:`cursor_of`).
    """
    flt = flt.model_copy(update={"limit": None, "offset": 0, "after_id": None})
    older_than, newer_than = parse_cursor(before), parse_cursor(after)
    if older_than is not None:
        newer_than = None
    floor: int | None = None
    if _is_sql(storage):
        rows, more, floor = _sql_rows(storage, flt, older_than, newer_than, size)
    else:
        rows, more = _generic_page(storage, flt, older_than, newer_than, size)
    scanned_to = None if floor is None else _EPOCH + timedelta(microseconds=floor)
    # An empty id sorts first: the cursor "floor." continues just below the window scanned.
    below = None if floor is None else f"{floor}."
    if not rows:
        return Page(rows=[], older=below, scanned_to=scanned_to)
    first, last = cursor_of(rows[0]), cursor_of(rows[-1])
    if newer_than is not None:
        return Page(rows=rows, newer=first if more else None, older=last)
    return Page(
        rows=rows, newer=first if older_than is not None else None,
        older=last if more else below, scanned_to=None if more else scanned_to,
    )  # fmt: skip


def _sql_rows(
    storage: Any, flt: InteractionFilter, before: tuple[int, str] | None, after: tuple[int, str] | None, size: int
) -> tuple[list[Row], bool, int | None]:
    from ...storage._sql_schema import from_micros
    from ._table import sql_page

    found, more, stopped = sql_page(storage, flt, before, after, size)
    rows = [
        Row(
            id=r.id, timestamp=from_micros(r.timestamp), model=r.model, user_id=r.user_id, session_id=r.session_id,
            latency=r.latency, total_tokens=r.total_tokens, has_error=bool(r.has_error), prompt=r.prompt or "",
            response=r.response or "", feedback=count,
        )  # fmt: skip
        for r, count in found
    ]
    return rows, more, stopped


def _generic_page(
    storage: Storage, flt: InteractionFilter, before: tuple[int, str] | None, after: tuple[int, str] | None, size: int
) -> tuple[list[Row], bool]:
    # Time order needs every match: only for backends without a query engine (bounded in-memory ones).
    found = sorted(storage.iter_interactions(flt), key=lambda i: (_micros(i.timestamp), i.id))
    if after is not None:
        newer = [i for i in found if (_micros(i.timestamp), i.id) > after][: size + 1]
        return [_row(i) for i in reversed(newer[:size])], len(newer) > size
    older = [i for i in found if before is None or (_micros(i.timestamp), i.id) < before][-(size + 1) :]
    older.reverse()
    return [_row(i) for i in older[:size]], len(older) > size


# --------------------------------------------------------------------------- same-prompt groups


def normalise_prompt(prompt: str) -> str:
    """A prompt as compared for grouping: NFKC, case-folded, whitespace runs collapsed."""
    return " ".join(unicodedata.normalize("NFKC", prompt).casefold().split())


def group_key(prompt: str) -> str:
    """The short stable key of a prompt's group (in URLs)."""
    return hashlib.sha256(normalise_prompt(prompt).encode()).hexdigest()[:16]


@dataclass
class Group:
    """Responses to one normalised prompt, newest first."""

    key: str
    prompt: str
    ids: list[str] = field(default_factory=list)
    models: list[str | None] = field(default_factory=list)
    latest: datetime | None = None
    judged: bool = False

    @property
    def size(self) -> int:
        """How many responses the group has (in the window)."""
        return len(self.ids)


def _recent(storage: Storage, window: int) -> Iterable[tuple[str, str, str | None, datetime]]:
    """(id, prompt, model, timestamp) of the newest ``window`` interactions, newest first."""
    if _is_sql(storage):
        from ...storage._sql_rows import sa
        from ...storage._sql_schema import from_micros
        from ...storage._sql_schema import interactions as i

        s: Any = storage
        query = (
            sa.select(i.c.id, i.c.prompt, i.c.model, i.c.timestamp)
            .where(i.c.project == s.project)
            .order_by(i.c.id.desc())
            .limit(window)
        )
        with s._connect() as connection:
            return [(r.id, r.prompt, r.model, from_micros(r.timestamp)) for r in connection.execute(query)]
    found = [(i.id, i.prompt, i.model, i.timestamp) for i in storage.iter_interactions(InteractionFilter())]
    return list(reversed(found[-window:]))


def prompt_groups(storage: Storage, *, window: int = GROUP_WINDOW, min_size: int = 2) -> list[Group]:
    """Groups of at least ``min_size`` responses to one prompt among the newest ``window`` interactions.

    Newest group first; ``judged`` is set when a comparison already covers one of its responses.
    """
    groups: dict[str, Group] = {}
    for interaction_id, prompt, model, timestamp in _recent(storage, window):
        key = group_key(prompt)
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key=key, prompt=prompt, latest=timestamp)
        group.ids.append(interaction_id)
        group.models.append(model)
    found = [g for g in groups.values() if g.size >= min_size]
    judged = compared_ids(storage, [i for g in found for i in g.ids])
    for group in found:
        group.judged = any(i in judged for i in group.ids)
    return found


def compared_ids(storage: Storage, ids: list[str]) -> set[str]:
    """Those of ``ids`` that some comparative feedback names as preferred or alternative."""
    found: set[str] = set()
    if not ids:
        return found
    if _is_sql(storage):
        from ...storage._sql_rows import sa
        from ...storage._sql_schema import feedback_targets as t

        s: Any = storage
        with s._connect() as connection:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = sa.select(t.c.interaction_id).where(
                    t.c.project == s.project, t.c.interaction_id.in_(chunk), t.c.role.in_(("preferred", "alternative"))
                )
                found.update(connection.execute(query).scalars())
        return found
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        flt = FeedbackFilter(interaction_ids=chunk, types=[FeedbackType.COMPARATIVE])
        for feedback in storage.iter_feedback(flt):
            found.update(x for x in feedback.interaction_ids() if x in chunk)
    return found
