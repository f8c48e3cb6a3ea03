"""The collector's ``/v1`` endpoints.

Ingest is idempotent on record ids: a batch delivered twice is stored once
(duplicates are not counted: that would cost a query per request). A batch in
which a feedback names an interaction that is neither in the batch nor stored
is refused whole (422 naming that feedback): a refused request stores nothing,
so the sender can keep or correct the batch as one unit.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import pydantic
from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from .._limits import check_storable, check_text, check_values
from .._models import (
    AnalyticsResult,
    ComparativeData,
    ExportFormat,
    Feedback,
    FeedbackFilter,
    FeedbackSession,
    FeedbackStats,
    FeedbackType,
    Interaction,
    InteractionFilter,
    RecordBatch,
    Sentiment,
)
from ..errors import NotFoundError, ValidationError, from_pydantic
from ..storage.base import Storage
from ._checks import MAX_TEXT, BodyScan
from ._combine import WriteCombiner
from ._ingest import ParsedPaths, parse_batch
from ._keys import ApiKey

__all__ = ["build_router"]

_bearer = HTTPBearer(auto_error=False, description="An API key created with `rlhfkit keys create`.")

_MEDIA_TYPES = {
    ExportFormat.JSON: "application/json",
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
}


# --------------------------------------------------------------------------- bodies and replies


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_SPEC_OBJECT: Any = {"type": "object", "description": "the spec's camelCase shape (CapturedInteraction / FeedbackEvent)"}
_INTERACTION_ITEM: Any = {"anyOf": [_ref("Interaction"), _SPEC_OBJECT]}
_FEEDBACK_ITEM: Any = {"anyOf": [_ref("Feedback"), _SPEC_OBJECT]}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class BatchPayload(BaseModel):
    """The batch the instrumentation posts: ``{sessionId, interactions, timestamp}``, plus feedback and sessions.

    Interactions are rlhfkit Interaction objects or the spec's
    CapturedInteraction objects (camelCase, prompt and response as
    ``{role, content}`` messages, ``metrics``, ``usage``); feedback are
    Feedback objects or the spec's FeedbackEvent objects.
    """

    model_config = ConfigDict(extra="allow")

    sessionId: str | None = None
    interactions: list[dict[str, Any]] = Field(default_factory=list)
    feedback: list[dict[str, Any]] = Field(default_factory=list)
    sessions: list[dict[str, Any]] = Field(default_factory=list)
    timestamp: float | str | None = None


_BATCH_SCHEMA: Any = {
    "title": "BatchPayload",
    "description": (BatchPayload.__doc__ or "").strip(),
    "type": "object",
    "properties": {
        "sessionId": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "interactions": {"type": "array", "items": _INTERACTION_ITEM},
        "feedback": {"type": "array", "items": _FEEDBACK_ITEM},
        "sessions": {"type": "array", "items": _ref("FeedbackSession")},
        "timestamp": {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]},
    },
}


class FeedbackBatchPayload(BaseModel):
    """Several feedback records at once (Feedback or FeedbackEvent objects)."""

    feedback: list[dict[str, Any]] = Field(min_length=1, json_schema_extra={"items": _FEEDBACK_ITEM})


class IngestResult(BaseModel):
    """What an ingest call stored: every record of the request (records already stored are stored once)."""

    accepted: int
    ids: list[str] = Field(default_factory=list, description="ids of the interactions and feedback received")


class InteractionPage(BaseModel):
    """One page of interactions; pass ``next_cursor`` as ``after_id`` for the next one."""

    data: list[Interaction]
    next_cursor: str | None = None


class FeedbackPage(BaseModel):
    """One page of feedback; pass ``next_cursor`` as ``after_id`` for the next one."""

    data: list[Feedback]
    next_cursor: str | None = None


class InteractionDetail(BaseModel):
    """An interaction with every feedback given on it."""

    interaction: Interaction
    feedback: list[Feedback]


class ErrorBody(BaseModel):
    """Every error reply."""

    error: str
    field: str | None = None
    message: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 403, 404, 413, 415, 422, 503)
}


# --------------------------------------------------------------------------- auth and storage


async def _key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(
            401,
            {"error": "unauthorized", "message": "send Authorization: Bearer <api key>"},
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = credentials.credentials
    key = None
    if len(token) <= 200 and "\x00" not in token:
        keys = request.app.state.keys
        cached = getattr(keys, "cached", None)
        found, key = cached(token) if cached is not None else (False, None)
        if not found:  # a database read: off the event loop
            key = await run_in_threadpool(keys.lookup, token)
    if key is None:
        raise HTTPException(
            401, {"error": "unauthorized", "message": "unknown or revoked API key"}, headers={"WWW-Authenticate": "Bearer"}
        )
    return key  # type: ignore[no-any-return]


async def _writer(request: Request, key: Annotated[ApiKey, Depends(_key)]) -> Storage:
    return request.app.state.projects(key.project)  # type: ignore[no-any-return]


async def _reader(request: Request, key: Annotated[ApiKey, Depends(_key)]) -> Storage:
    if key.write_only:
        raise HTTPException(403, {"error": "forbidden", "message": "this API key may only ingest records"})
    return request.app.state.projects(key.project)  # type: ignore[no-any-return]


Writer = Annotated[Storage, Depends(_writer)]
Reader = Annotated[Storage, Depends(_reader)]


# --------------------------------------------------------------------------- ingest


def _store(
    storage: Storage, batch: RecordBatch, paths: ParsedPaths, combiner: WriteCombiner | None = None
) -> IngestResult:
    check_storable(batch, paths.interactions, paths.feedback)
    in_batch = {i.id for i in batch.interactions}
    wanted = {t for f in batch.feedback for _, t in _targets(f)} - in_batch
    unknown = storage.missing_interactions(wanted) if wanted else set()
    if unknown:
        for feedback, where in zip(batch.feedback, paths.feedback, strict=False):
            for field, target in _targets(feedback):
                if target in unknown:
                    raise NotFoundError(f"{where}.{field}".lstrip("."), f"no interaction with id {target!r} in this project")
    if combiner is None:
        storage.write(batch)
    else:
        combiner.write(storage, batch)
    return IngestResult(accepted=len(batch), ids=[i.id for i in batch.interactions] + [f.id for f in batch.feedback])


class _OwnShapeBatch(BaseModel):
    """A batch all in rlhfkit's own shape: validated straight from the JSON bytes (the fast path)."""

    model_config = ConfigDict(extra="allow")

    sessionId: str | None = None
    interactions: list[Interaction] = Field(default_factory=list)
    feedback: list[Feedback] = Field(default_factory=list)
    sessions: list[FeedbackSession] = Field(default_factory=list)
    timestamp: float | str | None = None


def _fast_batch(body: bytes) -> tuple[RecordBatch, ParsedPaths] | None:
    """The batch when ``body`` is plain rlhfkit JSON; None sends it down the detailed path.

    NUL escapes go the detailed path (which names the field); non-finite
    numbers are caught by check_storable on either path.
    """
    # A one-byte search first: it is several times quicker, and most bodies hold no escape at all.
    if b"\\" in body and b"\\u0000" in body:
        return None
    try:
        payload = _OwnShapeBatch.model_validate_json(body)
    except (pydantic.ValidationError, ValueError):
        return None
    if payload.sessionId is not None:
        for interaction in payload.interactions:
            if interaction.session_id is None:
                interaction.session_id = payload.sessionId
    batch = RecordBatch(interactions=payload.interactions, feedback=payload.feedback, sessions=payload.sessions)
    paths = ParsedPaths(
        interactions=[f"interactions[{i}]" for i in range(len(batch.interactions))],
        feedback=[f"feedback[{i}]" for i in range(len(batch.feedback))],
    )
    return batch, paths


def _ingest_raw(storage: Storage, body: bytes, combiner: WriteCombiner) -> IngestResult:
    fast = _fast_batch(body)
    if fast is not None:
        return _store(storage, *fast, combiner)
    scan = BodyScan()
    try:
        document = scan.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("body", f"not valid JSON: {exc}", None) from None
    if not isinstance(document, dict):
        raise ValidationError("body", "must be a JSON object", None)
    if scan.suspect:
        check_values(document, "")
    payload = BatchPayload.model_validate(document)
    batch, paths = parse_batch(payload.interactions, payload.feedback, payload.sessions, payload.sessionId)
    return _store(storage, batch, paths, combiner)


def _targets(feedback: Feedback) -> list[tuple[str, str]]:
    data = feedback.data
    if isinstance(data, ComparativeData):
        return [("interaction_id", feedback.interaction_id), ("data.preferred_id", data.preferred_id)] + [
            (f"data.alternative_ids[{i}]", other) for i, other in enumerate(data.alternative_ids)
        ]
    return [("interaction_id", feedback.interaction_id)]


# --------------------------------------------------------------------------- query parameters


F = TypeVar("F", InteractionFilter, FeedbackFilter)


def _filter(cls: type[F], **fields: Any) -> F:
    """Build a filter from query parameters; a refused value is a 422 naming the parameter."""
    try:
        return cls(**fields)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc) from None


def _utc(value: datetime | None, field: str) -> datetime | None:
    """A query time in UTC (naive times are UTC); one out of range is a 422."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationError(field, "date is out of range once converted to UTC", None) from None


def _finite(value: float | None, field: str) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValidationError(field, "must be a finite number", value)
    return value


def _strings(values: dict[str, str | list[str] | None]) -> None:
    for name, value in values.items():
        for item in [value] if isinstance(value, str) else value or []:
            check_text(item, name, MAX_TEXT)


Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
Strings = Annotated[list[str] | None, Query(max_length=1000)]


def build_router() -> APIRouter:
    """The ``/v1`` routes of the collector."""
    router = APIRouter(prefix="/v1", responses=_ERRORS)

    @router.post(
        "/interactions/batch",
        tags=["ingest"],
        summary="Ingest a batch (the instrumentation's payload)",
        openapi_extra=_body(_BATCH_SCHEMA),
    )
    async def ingest_batch(request: Request, storage: Writer) -> IngestResult:
        """Store interactions, feedback and sessions; idempotent on ids. Refused whole on any bad record."""
        # The body is read raw so that the common case (nothing a database
        # would refuse anywhere in it) skips the walk over every value.
        body = await request.body()
        return await run_in_threadpool(_ingest_raw, storage, body, request.app.state.combiner)

    @router.post(
        "/interactions", tags=["ingest"], summary="Ingest one interaction", openapi_extra=_body(_INTERACTION_ITEM)
    )
    def ingest_interaction(
        request: Request, storage: Writer, interaction: Annotated[dict[str, Any], Body()]
    ) -> IngestResult:
        """Store one interaction (rlhfkit or CapturedInteraction shape); idempotent on its id."""
        check_values(interaction, "")
        try:
            batch, paths = parse_batch([interaction])
        except ValidationError as exc:
            raise ValidationError(_unprefix(exc.field, "interactions[0]"), exc.message, exc.value) from None
        return _store(storage, batch, _strip(paths, "interactions[0]"), request.app.state.combiner)

    @router.post("/feedback", tags=["ingest"], summary="Ingest one feedback", openapi_extra=_body(_FEEDBACK_ITEM))
    def ingest_feedback(request: Request, storage: Writer, feedback: Annotated[dict[str, Any], Body()]) -> IngestResult:
        """Store one feedback of any of the five types; 422 when its interaction is unknown."""
        check_values(feedback, "")
        try:
            batch, paths = parse_batch(feedback=[feedback])
        except ValidationError as exc:
            raise ValidationError(_unprefix(exc.field, "feedback[0]"), exc.message, exc.value) from None
        return _store(storage, batch, _strip(paths, "feedback[0]"), request.app.state.combiner)

    @router.post("/feedback/batch", tags=["ingest"], summary="Ingest several feedback")
    def ingest_feedback_batch(request: Request, payload: FeedbackBatchPayload, storage: Writer) -> IngestResult:
        """Store several feedback; refused whole when one is invalid or names an unknown interaction."""
        check_values(payload.model_dump(), "")
        batch, paths = parse_batch(feedback=payload.feedback)
        return _store(storage, batch, paths, request.app.state.combiner)

    @router.get("/interactions/{interaction_id}", tags=["read"], summary="One interaction with its feedback")
    def get_interaction(interaction_id: str, storage: Reader) -> InteractionDetail:
        """The interaction and every feedback about it; 404 when unknown."""
        if "\x00" in interaction_id:
            raise HTTPException(404, {"error": "not_found", "message": "no such interaction"})
        interaction = storage.get_interaction(interaction_id)
        if interaction is None:
            raise HTTPException(404, {"error": "not_found", "message": "no such interaction"})
        feedback = list(storage.iter_feedback(FeedbackFilter(interaction_ids=[interaction_id])))
        return InteractionDetail(interaction=interaction, feedback=feedback)

    @router.get("/interactions", tags=["read"], summary="List interactions")
    def list_interactions(
        storage: Reader,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        user_id: Text = None,
        session_id: Text = None,
        models: Strings = None,
        provider: Text = None,
        has_feedback: bool | None = None,
        feedback_types: Annotated[list[FeedbackType] | None, Query()] = None,
        min_rating: float | None = None,
        max_rating: float | None = None,
        errors_only: bool = False,
        search: Text = None,
        ids: Strings = None,
        after_id: Text = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> InteractionPage:
        """Interactions matching every filter given, in id order; ``next_cursor`` pages on."""
        _strings({"user_id": user_id, "session_id": session_id, "models": models, "provider": provider,
                  "search": search, "ids": ids, "after_id": after_id})
        flt = _filter(
            InteractionFilter,
            start_time=start_time, end_time=end_time, user_id=user_id, session_id=session_id, models=models,
            provider=provider, has_feedback=has_feedback, feedback_types=feedback_types,
            min_rating=_finite(min_rating, "min_rating"), max_rating=_finite(max_rating, "max_rating"),
            errors_only=errors_only, search=search, ids=ids, after_id=after_id, limit=limit, offset=offset,
        )
        data = list(storage.iter_interactions(flt))
        return InteractionPage(data=data, next_cursor=data[-1].id if len(data) == limit else None)

    @router.get("/feedback", tags=["read"], summary="List feedback")
    def list_feedback(
        storage: Reader,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        user_id: Text = None,
        session_id: Text = None,
        interaction_ids: Strings = None,
        types: Annotated[list[FeedbackType] | None, Query()] = None,
        min_rating: float | None = None,
        max_rating: float | None = None,
        sentiment: Sentiment | None = None,
        source: Text = None,
        model: Text = None,
        ids: Strings = None,
        after_id: Text = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> FeedbackPage:
        """Feedback matching every filter given, in id order; ``next_cursor`` pages on."""
        _strings({"user_id": user_id, "session_id": session_id, "interaction_ids": interaction_ids,
                  "source": source, "model": model, "ids": ids, "after_id": after_id})
        flt = _filter(
            FeedbackFilter,
            start_time=start_time, end_time=end_time, user_id=user_id, session_id=session_id,
            interaction_ids=interaction_ids, types=types, min_rating=_finite(min_rating, "min_rating"),
            max_rating=_finite(max_rating, "max_rating"), sentiment=sentiment, source=source, model=model,
            ids=ids, after_id=after_id, limit=limit, offset=offset,
        )
        data = list(storage.iter_feedback(flt))
        return FeedbackPage(data=data, next_cursor=data[-1].id if len(data) == limit else None)

    @router.get("/stats", tags=["read"], summary="Feedback statistics")
    def stats(storage: Reader, start_time: datetime | None = None, end_time: datetime | None = None) -> FeedbackStats:
        """Aggregates over interactions and feedback whose timestamp is in [start_time, end_time)."""
        return storage.feedback_stats(_utc(start_time, "start_time"), _utc(end_time, "end_time"))

    @router.get("/analytics", tags=["read"], summary="Analytics: stats, trends, leaderboard")
    def analytics(
        storage: Reader,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        models: Strings = None,
    ) -> AnalyticsResult:
        """Statistics plus trends, leaderboard and agreement when the analytics module provides them."""
        _strings({"models": models})
        flt = _filter(InteractionFilter, start_time=start_time, end_time=end_time, models=models)
        from .. import analytics as module

        build = getattr(module, "build_analytics", None)
        if build is not None:
            result = build(storage, flt)
            if isinstance(result, AnalyticsResult):
                return result
        return AnalyticsResult(stats=storage.feedback_stats(flt.start_time, flt.end_time))

    @router.get(
        "/export",
        tags=["read"],
        summary="Download an export",
        response_class=StreamingResponse,
        responses={200: {"content": {m.split(";")[0]: {} for m in _MEDIA_TYPES.values()}}},
    )
    def export(
        storage: Reader,
        format: ExportFormat = ExportFormat.JSONL,
        kind: Literal["all", "interactions", "feedback"] = "all",
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> StreamingResponse:
        """Interactions and/or feedback in one of the core formats, streamed as a file download."""
        from .._export import export_stream

        chunks = export_stream(
            storage, format, start_time=_utc(start_time, "start_time"), end_time=_utc(end_time, "end_time"),
            include_interactions=kind in ("all", "interactions"), include_feedback=kind in ("all", "feedback"),
        )
        name = f"rlhf-{kind}.{format.value}"
        return StreamingResponse(
            chunks, media_type=_MEDIA_TYPES[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    @router.get("/sessions/{session_id}", tags=["read"], summary="One session")
    def get_session(session_id: str, storage: Reader) -> FeedbackSession:
        """The session with its interaction and feedback ids; 404 when unknown."""
        if "\x00" in session_id:
            raise HTTPException(404, {"error": "not_found", "message": "no such session"})
        session = storage.get_session(session_id)
        if session is None:
            raise HTTPException(404, {"error": "not_found", "message": "no such session"})
        return session

    return router


def _unprefix(field: str, prefix: str) -> str:
    return field.removeprefix(prefix).lstrip(".") or "body"


def _strip(paths: ParsedPaths, prefix: str) -> ParsedPaths:
    """Paths of a single-record body: ``interactions[0].model`` becomes ``model``."""
    return ParsedPaths(
        interactions=[p.removeprefix(prefix) for p in paths.interactions],
        feedback=[p.removeprefix(prefix) for p in paths.feedback],
    )
