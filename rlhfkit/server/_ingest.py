"""Turn request bodies into records: rlhfkit's own JSON or the spec's camelCase shapes.

The auto-instrumentation spec posts ``CapturedInteraction`` objects (prompt
and response as ``{role, content}`` messages, ``metrics``, ``usage``,
``timestamp`` in epoch milliseconds) and ``FeedbackEvent`` objects. Both are
converted to :class:`~rlhfkit.Interaction` / :class:`~rlhfkit.Feedback`;
every refusal is a :class:`~rlhfkit.errors.ValidationError` naming the field
(``interactions[3].prompt``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from .._models import Feedback, FeedbackSession, Interaction, RecordBatch
from ..errors import ValidationError, from_pydantic

__all__ = ["ParsedPaths", "parse_batch", "to_feedback", "to_interaction"]

_COMPUTED_DATA = ("weighted_score",)

_CONTEXT_FIELDS = {
    "userAgent": "user_agent", "deviceType": "device_type", "platform": "platform",
    "language": "language", "timezone": "timezone", "screenResolution": "screen_resolution",
    "referrer": "referrer", "url": "url", "userId": "user_id", "appVersion": "app_version",
    "environment": "environment", "custom": "custom",
}
_METRIC_KEYS = frozenset(
    {"timeToFirstToken", "totalResponseTime", "streamingTime", "tokensPerSecond", "networkLatency", "retryCount",
     "cacheHit", "promptTokenCount", "responseTokenCount"}
)  # fmt: skip
_METRIC_FIELDS = {
    "timeToFirstToken": "time_to_first_token_ms", "totalResponseTime": "total_response_time_ms",
    "streamingTime": "streaming_time_ms", "tokensPerSecond": "tokens_per_second",
    "networkLatency": "network_latency_ms", "retryCount": "retry_count", "cacheHit": "cache_hit",
}


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(where, "must be a JSON object", value)
    return value


def _timestamp(value: Any, where: str) -> Any:
    """Epoch numbers (milliseconds above 2e10, else seconds) become datetimes; strings pass."""
    if isinstance(value, bool):
        raise ValidationError(where, "must be a number or an ISO 8601 string", value)
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 2e10 else value  # pydantic's rule for numeric datetimes
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValidationError(where, "is not a valid epoch time", value) from exc
    return value


def _text(message: Any, where: str) -> str:
    """The text of a spec ``Message`` (a plain string is taken as is)."""
    if isinstance(message, str):
        return message
    if message is None:
        return ""
    content = _object(message, where).get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    raise ValidationError(f"{where}.content", "must be a string or a list of content parts", content)


_SPEC_KEYS = frozenset({"sessionId", "usage", "feedback", "userId"})
_SPEC_FIELDS = frozenset(
    {"id", "sessionId", "session_id", "prompt", "response", "context", "metrics", "usage", "feedback", "error",
     "timestamp", "metadata", "userId"}
)  # fmt: skip


def _is_captured(raw: dict[str, Any]) -> bool:
    """Whether ``raw`` is in the spec's shape (rlhfkit's own shape has none of these marks)."""
    if isinstance(raw.get("prompt"), dict) or isinstance(raw.get("response"), dict):
        return True
    if isinstance(raw.get("context"), dict) or not _SPEC_KEYS.isdisjoint(raw):
        return True
    metrics = raw.get("metrics")
    return isinstance(metrics, dict) and not _METRIC_KEYS.isdisjoint(metrics)


def _usage(usage: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any] | None:
    prompt = usage.get("promptTokens", usage.get("prompt_tokens", usage.get("inputTokens", metrics.get("promptTokenCount"))))
    completion = usage.get(
        "completionTokens", usage.get("completion_tokens", usage.get("outputTokens", metrics.get("responseTokenCount")))
    )
    total = usage.get("totalTokens", usage.get("total_tokens"))
    if prompt is None and completion is None and total is None:
        return None
    return {"prompt": prompt or 0, "completion": completion or 0, "total": total or 0}


def _from_captured(raw: dict[str, Any], where: str, session_id: Any) -> tuple[dict[str, Any], list[Any]]:
    """A CapturedInteraction as Interaction fields, plus its embedded feedback events."""
    metadata = dict(_object(raw.get("metadata") or {}, f"{where}.metadata"))
    context = _object(raw.get("context") or {}, f"{where}.context")
    metrics = _object(raw.get("metrics") or {}, f"{where}.metrics")
    usage = _object(raw.get("usage") or {}, f"{where}.usage")
    response = raw.get("response")
    fields: dict[str, Any] = {
        "prompt": _text(raw.get("prompt"), f"{where}.prompt"),
        "response": _text(response, f"{where}.response"),
        "session_id": raw.get("sessionId", raw.get("session_id")) or session_id,
        "metadata": metadata,
    }
    for key in ("id", "model", "provider"):
        value = raw.get(key, metadata.get(key) if key != "id" else None)
        if value is not None:
            fields[key] = value
    if isinstance(response, dict) and isinstance(response.get("model"), str) and "model" not in fields:
        fields["model"] = response["model"]
    if "timestamp" in raw:
        fields["timestamp"] = _timestamp(raw["timestamp"], f"{where}.timestamp")
    environment = {ours: context[theirs] for theirs, ours in _CONTEXT_FIELDS.items() if context.get(theirs) is not None}
    extra = {k: v for k, v in context.items() if k not in _CONTEXT_FIELDS}
    if extra:
        environment["custom"] = {**extra, **(environment.get("custom") or {})}
    if environment:
        fields["environment"] = environment
    user_id = raw.get("userId", context.get("userId"))
    if user_id is not None:
        fields["user_id"] = user_id
    perf = {ours: metrics[theirs] for theirs, ours in _METRIC_FIELDS.items() if metrics.get(theirs) is not None}
    if perf:
        fields["metrics"] = perf
    if isinstance(metrics.get("totalResponseTime"), int | float) and not isinstance(metrics["totalResponseTime"], bool):
        fields["latency"] = metrics["totalResponseTime"]
    token_usage = _usage(usage, metrics)
    if token_usage is not None:
        fields["token_usage"] = token_usage
    error = raw.get("error")
    if error is not None:
        error = _object(error, f"{where}.error")
        code = error.get("statusCode", error.get("status_code", error.get("code")))
        fields["error"] = {
            "type": str(error.get("type") or error.get("name") or "Error"),
            "message": str(error.get("message") or ""),
            "status_code": code if isinstance(code, int) and not isinstance(code, bool) else None,
        }
    events = raw.get("feedback") or []
    if not isinstance(events, list):
        raise ValidationError(f"{where}.feedback", "must be a list", events)
    # Anything else passes through, so that rlhfkit fields (model_params,
    # tools...) are kept and unknown ones are refused by name, never dropped.
    for key, value in raw.items():
        if key not in _SPEC_FIELDS and key not in fields:
            fields[key] = value
    return fields, events


def to_interaction(raw: Any, where: str = "interaction", session_id: Any = None) -> tuple[Interaction, list[Any]]:
    """Validate one interaction in either shape; returns it and any embedded feedback events."""
    raw = _object(raw, where)
    events: list[Any] = []
    if _is_captured(raw):
        raw, events = _from_captured(raw, where, session_id)
    elif session_id is not None and raw.get("session_id") is None:
        raw = {**raw, "session_id": session_id}
    try:
        return Interaction.model_validate(raw), events
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, where) from None


def _from_event(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """A spec FeedbackEvent as Feedback fields."""
    kind = raw.get("type")
    value = raw.get("value")
    comment = raw.get("comment")
    data: dict[str, Any]
    if kind in ("thumbs-up", "thumbs-down", "thumbs_up", "thumbs_down"):
        data = {"type": "binary", "value": "thumbs_up" if kind.startswith("thumbs-up") or kind == "thumbs_up" else "thumbs_down"}
    elif kind == "rating":
        data = {"type": "rating", "value": value, "comment": comment}
        if raw.get("maxRating") is not None:
            data["max_rating"] = raw["maxRating"]
    elif kind in ("text", "custom"):
        text = value if isinstance(value, str) and value.strip() else comment
        if text is None and kind == "custom":
            text = json.dumps(value, default=str)
        data = {"type": "text", "comment": text}
    else:
        raise ValidationError(f"{where}.type", "must be one of thumbs-up, thumbs-down, rating, text, custom", kind)
    fields: dict[str, Any] = {
        "interaction_id": raw.get("interactionId"),
        "type": data["type"],
        "data": data,
        "metadata": {
            **_object(raw.get("metadata") or {}, f"{where}.metadata"),
            **({"spec_type": kind} if kind == "custom" else {}),
        },
    }
    for theirs, ours in (("id", "id"), ("userId", "user_id"), ("sessionId", "session_id"), ("source", "source")):
        if raw.get(theirs) is not None:
            fields[ours] = raw[theirs]
    if "timestamp" in raw:
        fields["timestamp"] = _timestamp(raw["timestamp"], f"{where}.timestamp")
    return fields


def to_feedback(raw: Any, where: str = "feedback", interaction_id: str | None = None) -> Feedback:
    """Validate one feedback, ours or a spec FeedbackEvent (``interactionId``, ``thumbs-up``...)."""
    raw = _object(raw, where)
    if "interactionId" in raw or (isinstance(raw.get("type"), str) and "-" in raw["type"]) or (
        interaction_id is not None and "interaction_id" not in raw and "data" not in raw
    ):
        raw = _from_event({"interactionId": interaction_id, **raw}, where)
    elif isinstance(raw.get("data"), dict) and any(k in raw["data"] for k in _COMPUTED_DATA):
        raw = {**raw, "data": {k: v for k, v in raw["data"].items() if k not in _COMPUTED_DATA}}
    try:
        return Feedback.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise from_pydantic(exc, where) from None


@dataclass
class ParsedPaths:
    """Where each parsed record came from in the request (``interactions[2]``...)."""

    interactions: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)


def parse_batch(
    interactions: list[Any] | None = None,
    feedback: list[Any] | None = None,
    sessions: list[Any] | None = None,
    session_id: Any = None,
) -> tuple[RecordBatch, ParsedPaths]:
    """Every record of a batch payload, validated; the first bad one raises, naming it.

    Also returns where each record was in the request, to name it in later refusals.
    """
    if session_id is not None and not isinstance(session_id, str):
        raise ValidationError("sessionId", "must be a string", session_id)
    batch = RecordBatch()
    paths = ParsedPaths()
    for i, raw in enumerate(interactions or []):
        interaction, events = to_interaction(raw, f"interactions[{i}]", session_id)
        batch.interactions.append(interaction)
        paths.interactions.append(f"interactions[{i}]")
        for j, event in enumerate(events):
            where = f"interactions[{i}].feedback[{j}]"
            batch.feedback.append(to_feedback(event, where, interaction.id))
            paths.feedback.append(where)
    for i, raw in enumerate(feedback or []):
        batch.feedback.append(to_feedback(raw, f"feedback[{i}]"))
        paths.feedback.append(f"feedback[{i}]")
    for i, raw in enumerate(sessions or []):
        try:
            batch.sessions.append(FeedbackSession.model_validate(_object(raw, f"sessions[{i}]")))
        except pydantic.ValidationError as exc:
            raise from_pydantic(exc, f"sessions[{i}]") from None
    return batch, paths
