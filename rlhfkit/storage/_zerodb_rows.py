"""How rlhfkit records are laid out as rows of one ZeroDB table.

A row's ``row_data`` is the record's own JSON (rlhfkit field names, the same
as every other backend writes) plus two keys of ours:

* ``record_type``: ``"interaction"``, ``"feedback"`` or ``"session"``;
* ``ts_us``: the record's time (``timestamp``, or ``start_time`` for a
  session) in integer microseconds since the epoch, so that time ranges are
  plain numeric ``$gte`` / ``$lt`` filters whatever the service does with
  date strings.

The record id stays in ``id``: it is how writes stay idempotent (the sender
looks ids up before inserting) and how reads put records in id order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .._models import Feedback, FeedbackSession, Interaction, RecordBatch

__all__ = [
    "FEEDBACK",
    "ID",
    "INTERACTION",
    "KINDS",
    "RECORD_TYPE",
    "SESSION",
    "TABLE_FIELDS",
    "TS",
    "decode",
    "encode_batch",
    "micros",
]

RECORD_TYPE = "record_type"
ID = "id"
TS = "ts_us"
INTERACTION, FEEDBACK, SESSION = "interaction", "feedback", "session"
KINDS = (INTERACTION, FEEDBACK, SESSION)

TABLE_FIELDS = {RECORD_TYPE: "string", ID: "string", TS: "number"}
"""The columns every row has (the rest of ``row_data`` is the record's JSON)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """``moment`` as integer microseconds since the Unix epoch (exact, no float rounding)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _interaction_row(interaction: Interaction) -> dict[str, Any]:
    row = interaction.model_dump(mode="json", exclude={"feedback_ids"})
    row[RECORD_TYPE], row[TS] = INTERACTION, micros(interaction.timestamp)
    return row


def _feedback_row(feedback: Feedback) -> dict[str, Any]:
    row = feedback.model_dump(mode="json", exclude={"data": {"weighted_score"}})
    row[RECORD_TYPE], row[TS] = FEEDBACK, micros(feedback.timestamp)
    return row


def _session_row(session: FeedbackSession) -> dict[str, Any]:
    row = session.model_dump(mode="json")
    row[RECORD_TYPE], row[TS] = SESSION, micros(session.start_time)
    return row


def encode_batch(batch: RecordBatch) -> list[dict[str, Any]]:
    """One ``row_data`` per record of ``batch``: interactions, then feedback, then sessions."""
    return [
        *(_interaction_row(i) for i in batch.interactions),
        *(_feedback_row(f) for f in batch.feedback),
        *(_session_row(s) for s in batch.sessions),
    ]


def decode(row_data: dict[str, Any]) -> Interaction | Feedback | FeedbackSession:
    """The record a row holds (our own keys removed, computed fields dropped)."""
    record = {k: v for k, v in row_data.items() if k not in (RECORD_TYPE, TS)}
    kind = row_data.get(RECORD_TYPE)
    if kind == INTERACTION:
        record.pop("feedback_ids", None)
        return Interaction.model_validate(record)
    if kind == FEEDBACK:
        data = record.get("data")
        if isinstance(data, dict):
            record["data"] = {k: v for k, v in data.items() if k != "weighted_score"}
        return Feedback.model_validate(record)
    if kind == SESSION:
        return FeedbackSession.model_validate(record)
    raise ValueError(f"row has no known {RECORD_TYPE}: {kind!r}")
