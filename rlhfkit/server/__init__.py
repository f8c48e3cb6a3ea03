"""The collector: one service that stores what many app servers send, per project.

``create_app(db_url)`` builds the FastAPI app; ``rlhfkit serve`` runs it under
uvicorn; ``rlhfkit keys create --project NAME [--write-only]`` issues keys.
Every ``/v1`` request carries ``Authorization: Bearer <key>`` and sees only the
key's project; a write-only key may ingest but not read.

Endpoints (all in ``/openapi.json``)::

    POST /v1/interactions/batch   {sessionId, interactions, timestamp} (+ feedback, sessions)
    POST /v1/interactions         one interaction (rlhfkit or CapturedInteraction shape)
    POST /v1/feedback             one feedback of any of the five types
    POST /v1/feedback/batch       {feedback: [...]}
    GET  /v1/interactions/{id}    the interaction and its feedback
    GET  /v1/interactions         filters as query parameters; after_id / next_cursor pages
    GET  /v1/feedback             likewise
    GET  /v1/stats, /v1/analytics, /v1/sessions/{id}
    GET  /v1/export?format=json|jsonl|csv|parquet
    GET  /healthz, /readyz        no key needed

Ingest is idempotent on record ids. A batch is stored whole or not at all: a
refused one gets a 422 naming the field (``interactions[3].prompt``) or the
feedback whose interaction is unknown.
"""

from ._app import Projects, create_app
from ._keys import ApiKey, KeyStore, MemoryKeyStore, SQLKeyStore, generate_key, hash_key

__all__ = ["ApiKey", "KeyStore", "MemoryKeyStore", "Projects", "SQLKeyStore", "create_app", "generate_key", "hash_key"]
