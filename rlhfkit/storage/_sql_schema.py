"""The SQL schema shared by SQLite and PostgreSQL (SQLAlchemy Core tables).

Every table holds the records of many projects: ``project`` leads every
primary key and index, and every query filters on it.

Times of records are stored as integers, microseconds since the Unix epoch
(UTC), in the ``timestamp`` / ``start_time`` / ``end_time`` columns: they
compare, sort and bucket (``timestamp / 3600000000`` is the hour) the same way
in both databases, at the cost of needing :func:`to_micros` / :func:`from_micros`
to read them by hand. ``api_keys`` is the collector's and uses real datetimes.

Columns that queries filter or aggregate on are real columns; the rest of a
record is in a JSON column (JSONB on PostgreSQL), so reading a record back is
"columns + JSON" without loss.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import require

sa = require("sqlalchemy", "sql")
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402

__all__ = [
    "api_keys",
    "feedback",
    "feedback_dimensions",
    "feedback_pairs",
    "feedback_targets",
    "from_micros",
    "interactions",
    "metadata",
    "schema_migrations",
    "sessions",
    "to_micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_micros(value: datetime) -> int:
    """A datetime as microseconds since the Unix epoch (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    """The UTC datetime of a number of microseconds since the Unix epoch."""
    return _EPOCH + timedelta(microseconds=value)


JSONType: Any = sa.JSON().with_variant(JSONB(), "postgresql")
"""JSON on SQLite (stored as text), JSONB on PostgreSQL."""

IdType: Any = sa.String().with_variant(sa.String(collation="C"), "postgresql")
"""Record ids: byte order on both databases, so that id order is the same everywhere.

No string column has a length limit: the data model puts none on most
fields, and a write must never fail on a long user id or model name."""

metadata = sa.MetaData()
"""The metadata of every rlhfkit table."""

interactions = sa.Table(
    "interactions",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("id", IdType, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("model", sa.String()),
    sa.Column("provider", sa.String()),
    sa.Column("user_id", sa.String()),
    sa.Column("session_id", sa.String()),
    sa.Column("latency", sa.Float),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("total_tokens", sa.Integer),
    sa.Column("has_error", sa.Boolean, nullable=False, default=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("doc", JSONType, nullable=False),
    sa.PrimaryKeyConstraint("project", "id", name="pk_interactions"),
    sa.Index("ix_interactions_project_timestamp", "project", "timestamp"),
    # Covers the per-model count and latency of feedback_stats (an index-only scan).
    sa.Index("ix_interactions_project_model_timestamp_latency", "project", "model", "timestamp", "latency"),
    sa.Index("ix_interactions_project_session", "project", "session_id"),
    sa.Index("ix_interactions_project_user", "project", "user_id"),
)
"""One row per interaction; ``doc`` holds the fields without a column of their own."""

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("id", IdType, nullable=False),
    sa.Column("interaction_id", IdType, nullable=False),
    sa.Column("type", sa.String(), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("user_id", sa.String()),
    sa.Column("session_id", sa.String()),
    sa.Column("source", sa.String()),
    sa.Column("model", sa.String()),
    sa.Column("value", sa.Float),
    sa.Column("rating_value", sa.Float),
    sa.Column("max_rating", sa.Integer),
    sa.Column("sentiment", sa.String()),
    sa.Column("data", JSONType, nullable=False),
    sa.Column("metadata", JSONType, nullable=False),
    sa.PrimaryKeyConstraint("project", "id", name="pk_feedback"),
    sa.Index("ix_feedback_project_interaction", "project", "interaction_id"),
    sa.Index("ix_feedback_project_type_timestamp", "project", "type", "timestamp"),
    sa.Index("ix_feedback_project_timestamp", "project", "timestamp"),
    # Cover the grouped counts of feedback_stats, and the rating median (rows in value order).
    sa.Index("ix_feedback_project_stats", "project", "type", "model", "sentiment", "timestamp", "value"),
    sa.Index("ix_feedback_project_type_value", "project", "type", "value", "timestamp"),
)
"""One row per feedback.

``value`` is one number for SQL aggregates (binary ±1, rating normalised to
0..1, multi-dimensional weighted score); ``model`` is the model of the
interaction when it was known at write time (NULL otherwise: readers fall
back to a lookup).
"""

feedback_targets = sa.Table(
    "feedback_targets",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("feedback_id", IdType, nullable=False),
    sa.Column("interaction_id", IdType, nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("interaction_timestamp", sa.BigInteger),
    sa.PrimaryKeyConstraint("project", "feedback_id", "interaction_id", name="pk_feedback_targets"),
    sa.Index(
        "ix_feedback_targets_project_interaction_times", "project", "interaction_id", "timestamp", "interaction_timestamp"
    ),
    # Covers "the feedback ids of these interactions", so SQLite does not prefer a scan of the primary key.
    sa.Index("ix_feedback_targets_project_interaction_feedback", "project", "interaction_id", "feedback_id"),
)
"""Every interaction a feedback is about: ``role`` is ``subject`` (its
interaction_id), ``preferred`` or ``alternative`` (comparisons); ``timestamp``
is the feedback's, ``interaction_timestamp`` the interaction's when it was
stored before the feedback (NULL otherwise: readers fall back to a lookup)."""

feedback_dimensions = sa.Table(
    "feedback_dimensions",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("feedback_id", sa.String(), nullable=False),
    sa.Column("dimension", sa.String(), nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("project", "feedback_id", "dimension", name="pk_feedback_dimensions"),
    sa.Index("ix_feedback_dimensions_project_dimension", "project", "dimension", "timestamp", "score"),
)
"""One row per dimension of a multi-dimensional feedback, so that averages are SQL aggregates."""

feedback_pairs = sa.Table(
    "feedback_pairs",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("feedback_id", sa.String(), nullable=False),
    sa.Column("preferred_id", sa.String(), nullable=False),
    sa.Column("alternative_id", sa.String(), nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("preferred_model", sa.String()),
    sa.Column("alternative_model", sa.String()),
    sa.PrimaryKeyConstraint("project", "feedback_id", "alternative_id", name="pk_feedback_pairs"),
    sa.Index(
        "ix_feedback_pairs_project_timestamp",
        "project", "timestamp", "preferred_model", "alternative_model", "preferred_id", "alternative_id",
    ),  # fmt: skip
)
"""One row per (preferred, alternative) pair of a comparison, with both models when known at write time."""

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("id", IdType, nullable=False),
    sa.Column("user_id", sa.String()),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger),
    sa.Column("interaction_ids", JSONType, nullable=False),
    sa.Column("feedback_ids", JSONType, nullable=False),
    sa.Column("metadata", JSONType, nullable=False),
    sa.PrimaryKeyConstraint("project", "id", name="pk_sessions"),
)
"""Sessions; the latest write of a session replaces the earlier ones."""

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("project", sa.String(), nullable=False),
    sa.Column("name", sa.String()),
    sa.Column("key_hash", sa.String(), nullable=False, unique=True),
    sa.Column("write_only", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("ix_api_keys_project", "project"),
)
"""The collector's API keys: only a hash of each key is stored."""

schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)
"""Which numbered migrations have run."""
