"""Every name ZeroDB's REST API uses, in one place.

ZeroDB's own documents disagree with each other (``/v1`` or ``/api/v1``,
``filters`` or ``filter``, ``offset`` or ``skip``, ``metadata`` or
``vector_metadata``). The backend follows the shapes below; when the live
service differs, the fix is one line here. ``path_prefix`` is a constructor
setting of :class:`~rlhfkit.storage.zerodb.ZeroDBStorage` for the same reason.
"""

from __future__ import annotations

# --------------------------------------------------------------------------- addressing

DEFAULT_BASE_URL = "https://api.ainative.studio"
DEFAULT_PATH_PREFIX = "/v1"

TABLES_PATH = "/projects/{project_id}/database/tables"
ROWS_PATH = "/projects/{project_id}/database/tables/{table}/rows"
ROW_PATH = "/projects/{project_id}/database/tables/{table}/rows/{row_id}"
QUERY_PATH = "/projects/{project_id}/database/tables/{table}/query"
VECTOR_UPSERT_PATH = "/projects/{project_id}/database/vectors/upsert"
VECTOR_SEARCH_PATH = "/projects/{project_id}/database/vectors/search"

# --------------------------------------------------------------------------- authentication

API_KEY_HEADER = "X-API-Key"
JWT_HEADER = "Authorization"
JWT_SCHEME = "Bearer "
RETRY_AFTER_HEADER = "Retry-After"

# --------------------------------------------------------------------------- tables and rows

TABLE_NAME = "table_name"
TABLE_DESCRIPTION = "description"
TABLE_SCHEMA = "schema"
SCHEMA_FIELDS = "fields"
ROW_DATA = "row_data"
ROW_ID = "row_id"
CREATED_AT = "created_at"

FILTERS = "filters"
LIMIT = "limit"
SKIP = "skip"
MAX_LIMIT = 1000
"""The largest page the query endpoint serves."""

TOTAL = "total"
HAS_MORE = "has_more"
DATA = "data"
DETAIL = "detail"

# Filter operators (MongoDB style). $in takes a list; the others one value.
EQ, NE, GT, GTE, LT, LTE, IN = "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"

TABLE_EXISTS_STATUSES = frozenset({400, 409})
"""Statuses a table creation may answer when the table exists (with "exist" in ``detail``)."""

# --------------------------------------------------------------------------- vectors

VECTOR_ID = "vector_id"
VECTOR_EMBEDDING = "vector_embedding"
DOCUMENT = "document"
METADATA = "metadata"
NAMESPACE = "namespace"
QUERY_VECTOR = "query_vector"
TOP_K = "top_k"
SIMILARITY_THRESHOLD = "similarity_threshold"

SEARCH_RESULTS = "vectors"
RESULT_METADATA = ("vector_metadata", "metadata")
"""Where a search result carries its metadata (the documents show both)."""
RESULT_SCORE = ("similarity", "score")
"""Where a search result carries its similarity, when the service sends one."""
