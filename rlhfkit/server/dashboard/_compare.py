"""Side-by-side comparison of responses to one prompt, and the review queue that walks unjudged groups."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from ..._models import FeedbackFilter, Interaction, InteractionFilter
from ...errors import StorageError, ValidationError
from ...storage.base import Storage
from ._forms import comparison_from_form, store_feedback
from ._queries import GROUP_WINDOW, Group, group_key, prompt_groups
from ._session import Session, check_csrf
from ._web import login_redirect, render, signed_in, storage_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SIDE_BY_SIDE = 4
"""At most this many responses are shown (and compared) at once: the newest of the group."""
_MAX_SKIPPED = 200


def _skipped(raw: str | None) -> list[str]:
    keys = [k for k in (raw or "").split(",") if 0 < len(k) <= 32 and k.isalnum()]
    return keys[-_MAX_SKIPPED:]


def _candidates(storage: Storage, group: Group) -> tuple[list[Interaction], dict[str, list[Any]]]:
    ids = group.ids[:SIDE_BY_SIDE]
    found = {i.id: i for i in storage.iter_interactions(InteractionFilter(ids=ids))}
    shown = [found[i] for i in ids if i in found]
    feedback: dict[str, list[Any]] = {i.id: [] for i in shown}
    for item in storage.iter_feedback(FeedbackFilter(interaction_ids=[i.id for i in shown])):
        for target in item.interaction_ids():
            if target in feedback:
                feedback[target].append(item)
    return shown, feedback


def _find(storage: Storage, key: str) -> Group | None:
    if not (0 < len(key) <= 32 and key.isalnum()):
        return None
    return next((g for g in prompt_groups(storage) if g.key == key), None)


def _show(
    request: Request, session: Session, group: Group, *, review: bool = False, skipped: list[str] | None = None,
    remaining: int = 0, status: int = 200, **extra: Any,
) -> Any:  # fmt: skip
    storage = storage_of(request, session)
    shown, feedback = _candidates(storage, group)
    skip_url = "/review?" + urlencode({"skip": ",".join([*(skipped or []), group.key])})
    return render(
        request, "compare.html", session, status=status, group=group, candidates=shown, feedback=feedback,
        review=review, skipped=",".join(skipped or []), remaining=remaining, skip_url=skip_url, **extra,
    )  # fmt: skip


@router.get("/compare")
def groups(request: Request, pending: str | None = None) -> Any:
    """Every prompt answered more than once among the newest interactions, newest first."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    found = prompt_groups(storage_of(request, session))
    if pending:
        found = [g for g in found if not g.judged]
    return render(request, "groups.html", session, groups=found[:200], total=len(found), pending=bool(pending),
                  window=GROUP_WINDOW)  # fmt: skip


@router.get("/compare/{key}")
def compare(request: Request, key: str, saved: str | None = None) -> Any:
    """The newest responses of one group side by side, with the form to pick the better one."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    group = _find(storage_of(request, session), key)
    if group is None:
        return render(request, "message.html", session, status=404, title="Not found",
                      message="This prompt has no other response among the newest interactions to compare with.")  # fmt: skip
    return _show(request, session, group, saved=bool(saved))


@router.get("/review")
def review(request: Request, skip: str | None = None) -> Any:
    """The next group nobody has judged yet (``skip`` lists the groups passed over)."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    skipped = _skipped(skip)
    pending = [g for g in prompt_groups(storage_of(request, session)) if not g.judged and g.key not in skipped]
    if not pending:
        return render(request, "review_done.html", session, skipped=len(skipped))
    return _show(request, session, pending[0], review=True, skipped=skipped, remaining=len(pending))


def _judge(storage: Storage, key: str, candidates: list[str], form: Any, user: str) -> None:
    found = list(storage.iter_interactions(InteractionFilter(ids=candidates[:SIDE_BY_SIDE])))
    if len(found) != len(set(candidates)) or any(group_key(i.prompt) != key for i in found):
        raise ValidationError("candidate", "the responses compared must answer the same prompt", candidates)
    store_feedback(storage, comparison_from_form(form, [i.id for i in found], user))


@router.post("/compare/{key}")
async def judge(request: Request, key: str) -> Any:
    """Store the comparison: the picked response preferred over every other one shown."""
    session = signed_in(request)
    if session is None:
        return login_redirect(request)
    form = await request.form()
    if not check_csrf(session, form.get("csrf")):
        return render(request, "message.html", session, status=403, title="Expired form",
                      message="This form has expired; reload the page and try again.")  # fmt: skip
    storage = storage_of(request, session)
    if not (0 < len(key) <= 32 and key.isalnum()):
        return render(request, "message.html", session, status=404, title="Not found", message="No such group.")
    candidates = [str(c) for c in form.getlist("candidate")][:SIDE_BY_SIDE]
    in_review = form.get("review") == "1"
    skipped = _skipped(str(form.get("skipped") or ""))
    try:
        await run_in_threadpool(_judge, storage, key, candidates, form, session.user)
    except (ValidationError, StorageError) as exc:
        message = str(exc)
        group = await run_in_threadpool(_find, storage, key)
        if group is None:
            return render(request, "message.html", session, status=422, title="Not saved", message=message)
        found = group
        return await run_in_threadpool(
            lambda: _show(request, session, found, review=in_review, skipped=skipped, status=422, error=message)
        )
    if in_review:
        return RedirectResponse("/review?" + urlencode({"skip": ",".join(skipped)}), status_code=303)
    return RedirectResponse(f"/compare/{key}?saved=1", status_code=303)

