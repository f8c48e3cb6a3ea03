"""The collector service: a FastAPI app that stores what many apps send, per project.

``create_app(db_url)`` builds it; ``rlhfkit serve`` runs it under uvicorn;
``rlhfkit keys create`` issues API keys.
"""

from ._app import Projects, create_app
from ._keys import ApiKey, KeyStore, MemoryKeyStore, SQLKeyStore, generate_key, hash_key

__all__ = ["ApiKey", "KeyStore", "MemoryKeyStore", "Projects", "SQLKeyStore", "create_app", "generate_key", "hash_key"]
