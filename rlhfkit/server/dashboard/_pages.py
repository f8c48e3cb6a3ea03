"""Sign in and out, the interactions table, the detail page and its feedback forms."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import pydantic
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ..._models import FeedbackFilter, FeedbackType, InteractionFilter
from ...errors import NotFoundError, StorageError, ValidationError
from ._forms import DIMENSIONS, KINDS, feedback_from_form, store_feedback
from ._queries import group_key, interaction_page
from ._session import check_csrf, clear_cookie, new_cookie, same_origin
from ._table import SCAN_WINDOW
from ._web import login_redirect, models_of, render, signed_in, storage_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
_FILTER_FIELDS = ("start", "end", "model", "session", "user", "has_feedback", "feedback_type", "min_rating",
                  "max_rating", "errors", "q")  # fmt: skip


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect elsewhere after signing in."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/interactions"
    return target


@router.get("/")
def home(request: Request) -> Any:
    """The interactions page, or the sign-in form."""
    return RedirectResponse("/interactions" if signed_in(request) else "/login", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Any:
    """The sign-in form: an API key of the project (not a write-only one)."""
    if signed_in(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next=_safe_next(next))


def _login_form(request: Request, status: int = 200, **context: Any) -> Any:
    return render(request, "login.html", None, status=status, **context)


@router.post("/login")
async def login(request: Request) -> Any:
    """Check the key and start a session; a write-only or unknown key is refused."""
    form = await request.form()
    token = str(form.get("api_key") or "").strip()
    target = _safe_next(str(form.get("next") or ""))
    if not same_origin(request):
        return _login_form(request, status=403, error="Sign in from this site's own form.", next=target)
    key = None
    if 0 < len(token) <= 200 and "\x00" not in token:
        key = await run_in_threadpool(request.app.state.keys.lookup, token)
    error = None
    if key is None:
        error = "Unknown or revoked API key."
    elif key.write_only:
        error = "This key is write-only: it can send data but not read it. Sign in with a read key."
    if error is not None:
        return _login_form(request, status=401, error=error, next=target)
    response = RedirectResponse(target, status_code=303)
    new_cookie(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Any:
    """End the session."""
    session = signed_in(request)
    form = await request.form()
    if session is not None and not check_csrf(session, form.get("csrf")):
        return render(request, "message.html", session, status=403, title="Expired form",
                      message="This form has expired; reload the page and try again.")  # fmt: skip
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(request, response)
    return response


# --------------------------------------------------------------------------- interactions


def _time(value: str, field: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, "must be a date and time (YYYY-MM-DDTHH:MM)", value) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _float(value: str, field: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValidationError(field, "must be a number", value) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValidationError(field, "must be a finite number", value)
    return number


def parse_filters(params: Any) -> tuple[InteractionFilter, dict[str, str], list[str]]:
    """The table's query parameters as an InteractionFilter, the values to show back, and any errors."""
    values = {name: str(params.get(name) or "").strip()[:1000] for name in _FILTER_FIELDS}
    fields: dict[str, Any] = {}
    errors: list[str] = []
    parsers: dict[str, Any] = {
        "start": lambda v: {"start_time": _time(v, "start")},
        "end": lambda v: {"end_time": _time(v, "end")},
        "model": lambda v: {"models": [v]},
        "session": lambda v: {"session_id": v},
        "user": lambda v: {"user_id": v},
        "has_feedback": lambda v: {"has_feedback": {"yes": True, "no": False}[v]},
        "feedback_type": lambda v: {"feedback_types": [FeedbackType(v)]},
        "min_rating": lambda v: {"min_rating": _float(v, "min_rating")},
        "max_rating": lambda v: {"max_rating": _float(v, "max_rating")},
        "errors": lambda v: {"errors_only": v in ("1", "on", "true")},
        "q": lambda v: {"search": v},
    }
    for name, value in values.items():
        if not value or "\x00" in value:
            continue
        try:
            fields.update(parsers[name](value))
        except ValidationError as exc:
            errors.append(str(exc))
            values[name] = ""
        except (KeyError, ValueError):
            errors.append(f"{name}: unknown value {value!r}")
            values[name] = ""
    try:
        flt = InteractionFilter(**fields)
    except pydantic.ValidationError as exc:
        errors.append(str(exc.errors()[0].get("msg")))
        flt = InteractionFilter()
    return flt, values, errors


@router.get("/interactions")
def interactions(request: Request) -> Any:
    """The filterable, searchable table of interactions, newest first, paged by cursor."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    storage = storage_of(request, session)
    flt, values, errors = parse_filters(request.query_params)
    before = request.query_params.get("before") or None
    after = None if before else request.query_params.get("after") or None
    page = interaction_page(storage, flt, before=before, after=after, size=PAGE_SIZE)
    kept = {k: v for k, v in values.items() if v}
    return render(
        request, "interactions.html", session, page=page, values=values, errors=errors,
        models=models_of(storage), feedback_types=[t.value for t in FeedbackType],
        filtered=bool(kept), newer_url=_page_url(kept, after=page.newer), older_url=_page_url(kept, before=page.older),
        page_cursor=bool(before or after), first_url="/interactions" + (f"?{urlencode(kept)}" if kept else ""),
        scan_window=SCAN_WINDOW,
    )  # fmt: skip


def _page_url(kept: dict[str, str], **cursor: str | None) -> str | None:
    (name, value), = cursor.items()
    if value is None:
        return None
    return "/interactions?" + urlencode({**kept, name: value})


def _detail(request: Request, session: Any, interaction_id: str, status: int = 200, **extra: Any) -> Any:
    storage = storage_of(request, session)
    interaction = storage.get_interaction(interaction_id) if len(interaction_id) <= 200 else None
    if interaction is None:
        return render(request, "message.html", session, status=404, title="Not found",
                      message="No interaction with this id in this project.")  # fmt: skip
    feedback = list(storage.iter_feedback(FeedbackFilter(interaction_ids=[interaction_id])))
    feedback.sort(key=lambda f: f.id, reverse=True)
    metrics = interaction.metrics
    usage = interaction.token_usage
    tokens_per_second = metrics.tokens_per_second if metrics else None
    if tokens_per_second is None and usage and usage.completion and interaction.latency:
        tokens_per_second = usage.completion / (interaction.latency / 1000)
    environment = interaction.environment.model_dump(exclude_none=True, exclude_defaults=True) if interaction.environment else {}
    return render(
        request, "detail.html", session, status=status, interaction=interaction, feedback=feedback,
        ttft=metrics.time_to_first_token_ms if metrics else None, tokens_per_second=tokens_per_second,
        environment=environment, dimensions=DIMENSIONS, group=group_key(interaction.prompt), **extra,
    )  # fmt: skip


@router.get("/interactions/{interaction_id}")
def detail(request: Request, interaction_id: str, saved: str | None = None) -> Any:
    """One interaction: conversation, response, metrics, context, every feedback, and the feedback forms."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    return _detail(request, session, interaction_id, saved=saved if saved in KINDS else None)


@router.post("/interactions/{interaction_id}/feedback/{kind}")
async def give_feedback(request: Request, interaction_id: str, kind: str) -> Any:
    """Store one feedback from the detail page (source ``dashboard``, user = the key's name)."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    form = await request.form()
    if not check_csrf(session, form.get("csrf")):
        return render(request, "message.html", session, status=403, title="Expired form",
                      message="This form has expired; reload the page and try again.")  # fmt: skip
    storage = storage_of(request, session)
    try:
        feedback = feedback_from_form(kind, form, interaction_id, session.user)
        await run_in_threadpool(store_feedback, storage, feedback)
    except NotFoundError:
        return render(request, "message.html", session, status=404, title="Not found",
                      message="No interaction with this id in this project.")  # fmt: skip
    except ValidationError as exc:
        return await run_in_threadpool(_detail, request, session, interaction_id, 422, error=str(exc), failed=kind)
    except StorageError:
        return await run_in_threadpool(
            _detail, request, session, interaction_id, 503, error="The database did not accept the feedback; retry.",
            failed=kind,
        )  # fmt: skip
    return RedirectResponse(f"/interactions/{quote(interaction_id, safe='')}?saved={kind}#feedback", status_code=303)
