"""One page of the interactions table from SQL, fast at millions of rows on SQLite and PostgreSQL.

Rows come newest first by ``(timestamp, id)``, by keyset cursor. The filters
split in two:

* index filters (project, time range, model, user, session, provider): the
  database seeks its indexes;
* row filters (feedback types, rating range, has feedback, text search, errors
  only): no index serves them in time order. When the matching feedback is
  rare, or the search index names few candidates for a text search, or a user
  or model filter keeps few rows, the page starts from those rows (then a
  sort); otherwise the page walks the table newest first in
  windows of :data:`WALK_STEP` rows (each window bounded by time, so the
  database reads only those rows and checks each with a primary-key lookup),
  until the page is full or :data:`SCAN_WINDOW` rows were read. Then the page
  says how far back it looked and its "older" cursor continues from there.

Every step is a bounded indexed query: no OFFSET over the result, no COUNT of
the table, whatever the table size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..._models import FeedbackType, InteractionFilter

__all__ = ["FEW", "NARROW", "SCAN_WINDOW", "WALK_STEP", "sql_page"]

SCAN_WINDOW = 50_000
"""Rows one page request reads at most when walking for row filters."""
WALK_STEP = 5_000
"""Rows per walking window."""
NARROW = 2_000
FEW = 20_000
"""A user or model filter keeping fewer rows than this: sort them rather than walk the time index."""
"""Fewer matching feedback than this: build the page from their interactions instead of walking."""


@dataclass
class _FeedbackFilter:
    """A feedback-based filter in two shapes: a per-row check, and the ids of the interactions it keeps."""

    exists: Any
    ids: Any
    probe: Any  # the matching feedback rows, counted (capped) to choose between the shapes


def _feedback_filters(project: str, flt: InteractionFilter, dialect: str) -> list[_FeedbackFilter]:
    """The feedback-type, rating-range and has-feedback filters (same meaning as the storage's conditions).

    A feedback other than a comparison is about its ``interaction_id`` only; a
    comparison's interactions are its preferred / alternative targets. In the
    per-row checks on SQLite, ``type || ''`` keeps its planner (no statistics
    unless ANALYZE ran) from scanning every feedback of a type for each row
    through the type index, so each row costs one lookup by interaction id.
    PostgreSQL plans from its statistics and gets the plain column.
    """
    from ...storage._sql_rows import sa
    from ...storage._sql_schema import feedback as f
    from ...storage._sql_schema import feedback_targets as t
    from ...storage._sql_schema import interactions as i

    def rows(*conditions: Any) -> Any:
        return sa.select(sa.literal(1)).where(f.c.project == project, *conditions)

    kind = f.c.type.concat("") if dialect == "sqlite" else f.c.type
    me = i.c.id

    def own(typed: Any, untyped: Any, *more: Any) -> _FeedbackFilter:
        return _FeedbackFilter(
            exists=rows(f.c.interaction_id == me, untyped, *more).exists(),
            ids=sa.select(f.c.interaction_id).where(f.c.project == project, typed, *more),
            probe=rows(typed),  # index only: the rating bounds would need a row read each
        )

    def targeted(which: Any, *conditions: Any) -> _FeedbackFilter:
        return _FeedbackFilter(
            exists=sa.select(sa.literal(1)).where(t.c.project == project, t.c.interaction_id == me, *conditions).exists(),
            ids=sa.select(t.c.interaction_id).where(
                t.c.project == project, t.c.feedback_id.in_(which.with_only_columns(f.c.id)), *conditions
            ),
            probe=which,
        )

    found: list[_FeedbackFilter] = []
    if flt.feedback_types is not None:
        types = {FeedbackType(x).value for x in flt.feedback_types}
        parts = []
        plain = sorted(types - {"comparative"})
        if plain:
            parts.append(own(f.c.type.in_(plain), kind.in_(plain)))
        if "comparative" in types:
            parts.append(targeted(rows(f.c.type == "comparative"), t.c.role.in_(("preferred", "alternative"))))
        found.append(_FeedbackFilter(
            exists=sa.or_(*(p.exists for p in parts)),
            ids=sa.union_all(*(p.ids for p in parts)) if len(parts) > 1 else parts[0].ids,
            probe=sa.union_all(*(p.probe for p in parts)) if len(parts) > 1 else parts[0].probe,
        ))  # fmt: skip
    if flt.min_rating is not None or flt.max_rating is not None:
        bounds = []
        if flt.min_rating is not None:
            bounds.append(f.c.rating_value >= flt.min_rating)
        if flt.max_rating is not None:
            bounds.append(f.c.rating_value <= flt.max_rating)
        found.append(own(f.c.type == "rating", kind == "rating", *bounds))
    if flt.has_feedback:
        found.append(targeted(rows()))
    return found


def _is_narrow(connection: Any, probe: Any) -> bool:
    from ...storage._sql_rows import sa

    capped = probe.limit(NARROW).subquery()
    return int(connection.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()) < NARROW


def _row_checks(storage: Any, flt: InteractionFilter) -> list[Any]:
    """Search, errors-only and has-no-feedback as per-row conditions."""
    from ...storage._sql_rows import sa
    from ...storage._sql_schema import feedback_targets as t
    from ...storage._sql_schema import interactions as i

    checks = []
    if flt.search is not None:
        if storage.dialect == "sqlite":  # LIKE already ignores ASCII case there, as lower() does
            checks.append(sa.or_(i.c.prompt.contains(flt.search, autoescape=True),
                                 i.c.response.contains(flt.search, autoescape=True)))  # fmt: skip
        else:
            checks.append(sa.or_(i.c.prompt.icontains(flt.search, autoescape=True),
                                 i.c.response.icontains(flt.search, autoescape=True)))  # fmt: skip
    if flt.errors_only:
        checks.append(i.c.has_error.is_(True))
    if flt.has_feedback is False:
        mine = t.c.interaction_id == i.c.id
        checks.append(~sa.select(sa.literal(1)).where(t.c.project == storage.project, mine).exists())
    return checks


def _edge(connection: Any, base: list[Any], bound: list[Any], newest_first: bool) -> int | None:
    """The time of the WALK_STEP-th row past the cursor (index only), or None when fewer remain."""
    from ...storage._sql_rows import sa
    from ...storage._sql_schema import interactions as i

    order = i.c.timestamp.desc() if newest_first else i.c.timestamp.asc()
    query = sa.select(i.c.timestamp).where(*base, *bound).order_by(order).limit(1).offset(WALK_STEP)
    edge = connection.execute(query).scalar()
    return None if edge is None else int(edge)


def sql_page(
    storage: Any, flt: InteractionFilter, before: tuple[int, str] | None, after: tuple[int, str] | None, size: int
) -> tuple[list[Any], bool, int | None]:
    """Rows (with a ``feedback`` count) of one page, whether more remain past it, and the time the walk stopped at.

    ``before`` / ``after`` are ``(microseconds, id)`` cursors; an empty id
    stands for "the whole of that microsecond" (where a walk stopped).
    """
    from ...storage._sql_filters import fewer_than, index_filter, interaction_conditions, sa
    from ...storage._sql_schema import feedback_targets as t
    from ...storage._sql_schema import interactions as i
    from ...storage._sql_search import candidates, start_catch_up

    index_only = flt.model_copy(update={
        "feedback_types": None, "min_rating": None, "max_rating": None, "has_feedback": None, "search": None,
        "errors_only": False,
    })  # fmt: skip
    newest_first = after is None
    columns = (
        i.c.id, i.c.timestamp, i.c.model, i.c.user_id, i.c.session_id, i.c.latency, i.c.total_tokens, i.c.has_error,
        sa.func.substr(i.c.prompt, 1, 240).label("prompt"), sa.func.substr(i.c.response, 1, 240).label("response"),
    )  # fmt: skip
    key = sa.tuple_(i.c.timestamp, i.c.id)

    def bound(cursor: tuple[int, str] | None) -> list[Any]:
        # The plain time bound lets the database seek the time index; the tuple settles ties.
        if cursor is None:
            return []
        if newest_first:
            return [i.c.timestamp <= cursor[0], key < sa.tuple_(*cursor)]
        return [i.c.timestamp >= cursor[0], key > sa.tuple_(*cursor)]

    with storage._connect() as connection:
        search_rows = None
        if flt.search is not None:
            search_rows = candidates(connection, flt.search)
        base = interaction_conditions(storage.project, index_only, search_rows=search_rows)
        checks = _row_checks(storage, flt)
        # A session, an id list or a search the index narrowed is selective: sorting its rows beats walking.
        narrow = flt.session_id is not None or flt.ids is not None or search_rows is not None
        indexed = index_filter(index_only)
        if not narrow and indexed is not None and (indexed.user_id is not None or indexed.models is not None):
            narrow = fewer_than(connection, base, FEW)
        for part in _feedback_filters(storage.project, flt, storage.dialect):
            if _is_narrow(connection, part.probe):
                base.append(i.c.id.in_(part.ids))
                narrow = True
            else:
                checks.append(part.exists)
        # ``timestamp + 0`` cannot use the time index: the database then starts from the narrow filter.
        when = i.c.timestamp + 0 if narrow else i.c.timestamp
        order = (when.desc(), i.c.id.desc()) if newest_first else (when.asc(), i.c.id.asc())

        found: list[Any] = []
        cursor, stopped, read = before if newest_first else after, None, 0
        while True:
            edge = None if narrow or not checks else _edge(connection, base, bound(cursor), newest_first)
            window = [] if edge is None else [i.c.timestamp >= edge if newest_first else i.c.timestamp <= edge]
            query = sa.select(*columns).where(*base, *checks, *bound(cursor), *window).order_by(*order)
            found += connection.execute(query.limit(size + 1 - len(found))).all()
            if len(found) > size or edge is None:
                break
            # The window's edge microsecond was read whole: go on strictly past it.
            cursor = (edge, "") if newest_first else (edge + 1, "")
            read += WALK_STEP
            if newest_first and read >= SCAN_WINDOW:
                stopped = edge
                break
        more = len(found) > size
        found = found[:size]
        if not newest_first:
            found.reverse()
        counts: dict[str, int] = {}
        if found:
            counted = (
                sa.select(t.c.interaction_id, sa.func.count())
                .where(t.c.project == storage.project, t.c.interaction_id.in_([r.id for r in found]))
                .group_by(t.c.interaction_id)
            )
            counts = {k: int(n) for k, n in connection.execute(counted)}
    if search_rows is not None:
        start_catch_up(storage)
    return [(r, counts.get(r.id, 0)) for r in found], more, stopped
