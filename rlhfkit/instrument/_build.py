"""Build :class:`~rlhfkit.Interaction` and :class:`~rlhfkit.Feedback` records (worker side, and capture_* calls).

The spec's feedback events map onto the core feedback types:

===============  =========================================================
spec type        core record
===============  =========================================================
``thumbs-up``    binary, thumbs up
``thumbs-down``  binary, thumbs down
``rating``       rating ``value`` of ``max_rating`` (default 5), comment kept
``text``         text, the ``value`` (or ``comment``) as the comment
``custom``       a dict of numbers → multi-dimensional; a bool → binary;
                 a number → rating; a string → text
===============  =========================================================

The spec type and, for ``custom``, the original value are kept in ``metadata``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from .._limits import check_record
from .._models import (
    BinaryData,
    BinaryFeedback,
    ContextData,
    ErrorInfo,
    Feedback,
    FeedbackType,
    Interaction,
    Message,
    MultiDimensionalData,
    PerformanceMetrics,
    RatingData,
    TextData,
    TokenUsage,
)
from ..errors import ValidationError, from_pydantic
from . import _trusted
from ._calls import Call
from ._capture import CapturedCall, response_text
from ._context import merge_context
from ._extract import (
    _g,
    _openai_chat_request,
    _openai_usage,
    error_info,
    jsonable,
    model_of,
    params_of,
    tools_of,
)
from ._fast import read_call

__all__ = ["feedback_from_event", "interaction_from_call", "interaction_from_captured", "token_usage"]

_API_NAMES = {"chat": "chat.completions", "responses": "responses", "messages": "messages"}
SPEC_FEEDBACK_TYPES = ("thumbs-up", "thumbs-down", "rating", "text", "custom")


def _who(scope: Mapping[str, Any] | None, request: Mapping[str, Any] | None, key: str) -> str | None:
    for layer in (scope, request):
        if layer and layer.get(key):
            return str(layer[key])
    return None


def token_usage(value: Any) -> TokenUsage | None:
    """A TokenUsage from one, from our field names, or from an OpenAI / Anthropic usage dict or object."""
    if value is None or isinstance(value, TokenUsage):
        return value
    if isinstance(value, Mapping) and set(value) <= set(TokenUsage.model_fields):
        return TokenUsage(**value)
    if _g(value, "input_tokens") is not None and _g(value, "cache_read_input_tokens") is not None:
        from ._extract import _anthropic_usage

        return _anthropic_usage(value)
    return _openai_usage(value)


def _metrics(
    t0: float,
    t_first: float | None,
    t_end: float | None,
    usage: TokenUsage | None,
    units: int | None,
    retries: int,
) -> PerformanceMetrics:
    # Times in milliseconds, never negative; None when a clock reading is missing.
    total = None if t_end is None else max(0.0, (t_end - t0) * 1000.0)
    if t_first is None:
        streaming = ttft = None
    else:
        streaming = None if t_end is None else max(0.0, (t_end - t_first) * 1000.0)
        ttft = max(0.0, (t_first - t0) * 1000.0)
    if usage is None:
        produced, cache_hit = units, None
    else:
        produced = usage.completion or units
        cached = usage.cached
        cache_hit = None if cached is None else cached > 0
    window = streaming if streaming else total
    tps = produced / (window / 1000.0) if produced and window else None
    return _trusted.metrics(ttft, total, streaming, tps, retries, cache_hit)


def interaction_from_call(call: Call, base_context: ContextData | None, capture_metrics: bool) -> Interaction:
    """The Interaction of a finished SDK call."""
    kwargs, stream = call.kwargs, call.stream
    prompt, context, read = read_call(call.provider, call.api, kwargs, call.result, call.chunks)
    usage = read.get("usage")
    end_time = call.t_last if call.end == "gc" and call.t_last is not None else call.t_end
    retries = call.retries_taken if call.retries_taken is not None else max(call.attempts - 1, 0)
    metrics = _metrics(call.t0, call.t_first, end_time, usage, read.get("output_units"), retries)
    model = model_of(kwargs, read.get("response_model"))
    metadata: dict[str, Any] = {"api": _API_NAMES.get(call.api, call.api), "stream": stream}
    if stream:
        metadata["stream_end"] = call.end
    response_model = read.get("response_model")
    if response_model and response_model != model:
        metadata["response_model"] = response_model
    scope, request = call.scope, call.request_ctx
    if scope is None and request is None:
        user_id = session_id = None
    else:
        user_id, session_id = _who(scope, request, "user_id"), _who(scope, request, "session_id")
    if user_id is None:
        user = kwargs.get("user") or _g(kwargs.get("metadata"), "user_id")
        user_id = user if isinstance(user, str) else None
    error = call.error
    values = _trusted.interaction_values()
    values["prompt"] = prompt
    values["context"] = context
    values["tools"] = tools_of(kwargs)
    values["model_params"] = params_of(kwargs)
    values["response"] = read["response"]
    values["tool_calls"] = read["tool_calls"]
    values["finish_reason"] = read["finish_reason"]
    values["response_id"] = read.get("response_id")
    values["model"] = model
    values["provider"] = call.provider
    values["token_usage"] = usage
    values["latency"] = metrics.total_response_time_ms
    values["metrics"] = metrics if capture_metrics else None
    values["error"] = error_info(error) if error is not None else None
    values["incomplete"] = stream and (call.end != "exhausted" or not read.get("finished", False) or error is not None)
    values["user_id"] = user_id
    values["session_id"] = session_id
    values["environment"] = merge_context(base_context, request, scope) if base_context else None
    values["metadata"] = metadata
    values["timestamp"] = datetime.fromtimestamp(call.wall, UTC)
    return _trusted.interaction_of(values)


def _prompt_and_context(prompt: Any, context: list[Any]) -> tuple[str, list[Message]]:
    extra = [m if isinstance(m, Message) else Message(**m) for m in context]
    if isinstance(prompt, str):
        return prompt, extra
    if isinstance(prompt, Message):
        return prompt.content, extra
    if isinstance(prompt, Mapping) and "content" in prompt:
        return response_text(prompt.get("content")), extra
    if isinstance(prompt, list):
        text, earlier = _openai_chat_request({"messages": prompt})
        return text, [*extra, *earlier]
    return response_text(prompt), extra


def interaction_from_captured(
    call: CapturedCall, base_context: ContextData | None, capture_metrics: bool
) -> Interaction:
    """The Interaction of a ``@capture`` / ``capture_call`` call."""
    prompt, context = _prompt_and_context(call.prompt, call.context)
    response = (
        response_text(call.response)
        if call.response is not None
        else "".join(response_text(c) for c in call.chunks)
    )
    usage = token_usage(call.usage)
    metrics = _metrics(call.t0, call.t_first, call.t_end, usage, len(call.chunks) or None, 0)
    return Interaction(
        prompt=prompt if prompt.strip() else "(no text prompt)",
        response=response,
        context=context,
        model=call.model,
        provider=call.provider,
        model_params=jsonable(call.model_params),
        token_usage=usage,
        tool_calls=call.tool_calls,
        finish_reason=call.finish_reason,
        latency=metrics.total_response_time_ms,
        metrics=metrics if capture_metrics else None,
        error=error_info(call.error) if call.error is not None else None,
        incomplete=call.incomplete,
        user_id=_who(call.scope, call.request_ctx, "user_id"),
        session_id=_who(call.scope, call.request_ctx, "session_id"),
        environment=merge_context(base_context, call.request_ctx, call.scope) if base_context else None,
        metadata=jsonable(call.metadata),
        timestamp=datetime.fromtimestamp(call.wall, UTC),
    )


def error_of(error: Any) -> ErrorInfo | None:
    """An ErrorInfo from an exception, an ErrorInfo, a mapping or a message."""
    if error is None or isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        return error_info(error)
    if isinstance(error, Mapping):
        return ErrorInfo(**error)
    return ErrorInfo(type="Error", message=str(error))


def _feedback_data(kind: str, value: Any, comment: str | None, max_rating: int) -> tuple[FeedbackType, Any]:
    if kind == "thumbs-up":
        return FeedbackType.BINARY, BinaryData(value=BinaryFeedback.THUMBS_UP)
    if kind == "thumbs-down":
        return FeedbackType.BINARY, BinaryData(value=BinaryFeedback.THUMBS_DOWN)
    if kind == "rating":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("value", "a rating must be a number", value)
        return FeedbackType.RATING, RatingData(value=float(value), max_rating=max_rating, comment=comment)
    if kind == "text":
        text = value if isinstance(value, str) and value.strip() else comment
        if not text:
            raise ValidationError("value", "text feedback needs a non-empty text", value)
        return FeedbackType.TEXT, TextData(comment=text)
    # custom
    if isinstance(value, bool):
        return _feedback_data("thumbs-up" if value else "thumbs-down", value, comment, max_rating)
    if isinstance(value, int | float):
        return _feedback_data("rating", value, comment, max_rating)
    if isinstance(value, str):
        return _feedback_data("text", value, comment, max_rating)
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
    ):
        dims = {str(k): float(v) for k, v in value.items()}
        return FeedbackType.MULTI_DIMENSIONAL, MultiDimensionalData(
            dimensions=dims, overall_comment=comment, max_score=max(float(max_rating), *dims.values())
        )
    if comment:
        return FeedbackType.TEXT, TextData(comment=comment)
    raise ValidationError(
        "value", "custom feedback needs a bool, a number, a text or a dict of numbers", value
    )


def feedback_from_event(
    interaction_id: str,
    kind: str,
    value: Any = None,
    *,
    comment: str | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_rating: int = 5,
) -> Feedback:
    """The Feedback record of a spec feedback event; :class:`~rlhfkit.errors.ValidationError` on bad input."""
    if not isinstance(interaction_id, str) or not interaction_id:
        raise ValidationError("interaction_id", "must be a non-empty string", interaction_id)
    if kind not in SPEC_FEEDBACK_TYPES:
        raise ValidationError("type", f"must be one of {', '.join(SPEC_FEEDBACK_TYPES)}", kind)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValidationError("metadata", "must be a mapping", metadata)
    try:
        feedback_type, data = _feedback_data(kind, value, comment, max_rating)
        meta = dict(metadata or {})
        meta["event_type"] = kind
        if kind == "custom":
            meta["value"] = jsonable(value)
        elif comment and feedback_type is FeedbackType.BINARY:
            meta["comment"] = comment
        feedback = Feedback(
            interaction_id=interaction_id,
            type=feedback_type,
            data=data,
            user_id=user_id,
            session_id=session_id,
            metadata=meta,
            source="instrumentation",
        )
    except PydanticValidationError as exc:
        raise from_pydantic(exc, "feedback") from None
    except (OverflowError, TypeError) as exc:  # a rating beyond any float, say
        raise ValidationError("value", str(exc), value) from None
    check_record(feedback)
    return feedback
