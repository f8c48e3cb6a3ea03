"""Fixtures of the collector tests (defined in _fixtures, shared with tests/test_remote_*)."""

from tests.server._fixtures import (  # noqa: F401
    _session_collector,
    collector,
    own_collector,
    pg_storage,
    pg_url,
    project,
)
