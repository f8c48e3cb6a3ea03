"""The analytics page (charts drawn in the browser from ``/analytics/data.json``) and the export page."""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ..._models import ExportFormat, FeedbackFilter
from ...errors import RLHFError, ValidationError
from ._charts import analytics_payload, leaderboard
from ._web import login_redirect, render, signed_in, storage_of

__all__ = ["DATASET_KINDS", "RAW_KINDS", "router"]

router = APIRouter(include_in_schema=False)

RANGES = {"1": 1, "7": 7, "30": 30, "90": 90, "all": None}
"""The analytics page's time ranges, in days."""
RAW_KINDS = {"all": "Interactions with their feedback", "interactions": "Interactions only",
             "feedback": "Feedback only"}  # fmt: skip
DATASET_KINDS = {
    "preference": "Preference pairs (prompt / chosen / rejected)",
    "unpaired": "Unpaired preference (prompt / completion / label)",
    "sft": "Supervised fine-tuning (prompt / completion)",
    "reward": "Reward model (prompt / response / score)",
}
_MEDIA = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
          "parquet": "application/vnd.apache.parquet"}  # fmt: skip


def _datasets_available() -> bool:
    return importlib.util.find_spec("rlhfkit.datasets") is not None


def _range(name: str) -> tuple[datetime | None, datetime]:
    days = RANGES.get(name, 30)
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return (None if days is None else end - timedelta(days=days)), end


@router.get("/analytics")
def analytics(request: Request, range: str = "30") -> Any:
    """Charts per model over time, the leaderboard and the rating distribution."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    return render(request, "analytics.html", session, range=range if range in RANGES else "30", ranges=RANGES)


@router.get("/analytics/data.json")
def analytics_data(request: Request, range: str = "30") -> Any:
    """The analytics page's data: summary, series per model, leaderboard, rating distribution."""
    session = signed_in(request)
    if session is None:
        return JSONResponse({"error": "unauthorized", "message": "sign in first"}, status_code=401)
    start, end = _range(range)
    days = RANGES.get(range, 30)
    bucket: Literal["hour", "day"] = "hour" if days is not None and days <= 2 else "day"
    payload = analytics_payload(storage_of(request, session), bucket, start, end)
    payload["bucket"] = bucket
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})


@router.get("/analytics/leaderboard.json")
def leaderboard_data(request: Request, range: str = "30") -> Any:
    """The model leaderboard of the range (feedback given in it)."""
    session = signed_in(request)
    if session is None:
        return JSONResponse({"error": "unauthorized", "message": "sign in first"}, status_code=401)
    start, end = _range(range)
    rows = leaderboard(storage_of(request, session), start, end)
    return JSONResponse({"leaderboard": rows}, headers={"Cache-Control": "no-store"})


def _export_page(request: Request, session: Any, status: int = 200, **extra: Any) -> Any:
    return render(
        request, "export.html", session, status=status, raw_kinds=RAW_KINDS,
        dataset_kinds=DATASET_KINDS if _datasets_available() else {}, formats=[f.value for f in ExportFormat],
        **extra,
    )  # fmt: skip


@router.get("/export")
def export_page(request: Request) -> Any:
    """Choose what to export and in which format."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    return _export_page(request, session)


def _when(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be a date and time (YYYY-MM-DDTHH:MM)", value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _dataset_zip(storage: Any, kind: str, fmt: str, target: str, flt: FeedbackFilter) -> tuple[Path, Path]:
    """Build the dataset in a temporary directory and zip it; returns (zip file, directory to delete)."""
    from ...datasets import export_dataset

    workdir = Path(tempfile.mkdtemp(prefix="rlhfkit-dataset-"))
    try:
        out = workdir / kind
        export_dataset(storage, kind, out, target=target, format=fmt, filter=flt)
        archive = workdir / f"{kind}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for file in sorted(out.iterdir()):
                bundle.write(file, f"{kind}/{file.name}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return archive, workdir


@router.get("/export/download")
async def download(
    request: Request, kind: str = "all", format: str = "jsonl", target: str = "trl",
    start: str | None = None, end: str | None = None,
) -> Any:  # fmt: skip
    """The export as a file: a raw export streamed, or a training dataset as a zip (splits and card)."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    storage = storage_of(request, session)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    project = re.sub(r"[^A-Za-z0-9_.-]", "_", session.project)[:60]
    try:
        start_time, end_time = _when(start, "start"), _when(end, "end")
        if kind in RAW_KINDS:
            from ..._export import export_stream

            try:
                fmt = ExportFormat(format)
            except ValueError:
                raise ValidationError("format", f"must be one of {', '.join(f.value for f in ExportFormat)}") from None
            chunks = export_stream(
                storage, fmt, start_time=start_time, end_time=end_time,
                include_interactions=kind != "feedback", include_feedback=kind != "interactions",
            )  # fmt: skip
            name = f"rlhf-{project}-{kind}-{stamp}.{fmt.value}"
            return StreamingResponse(
                chunks, media_type=_MEDIA[fmt.value], headers={"Content-Disposition": f'attachment; filename="{name}"'}
            )
        if kind in DATASET_KINDS and _datasets_available():
            flt = FeedbackFilter(start_time=start_time, end_time=end_time)
            archive, workdir = await run_in_threadpool(_dataset_zip, storage, kind, format, target, flt)
            return FileResponse(
                archive, media_type="application/zip", filename=f"rlhf-{project}-{kind}-{stamp}.zip",
                background=BackgroundTask(shutil.rmtree, workdir, ignore_errors=True),
            )  # fmt: skip
        raise ValidationError("kind", f"unknown export kind {kind!r}", kind)
    except RLHFError as exc:
        return _export_page(request, session, status=422, error=str(exc))
