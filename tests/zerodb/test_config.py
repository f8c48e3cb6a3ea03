"""ZeroDBStorage settings: credentials, addressing, validation, and the logger's config factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlhfkit._config import RLHFConfig
from rlhfkit._logger import RLHFLogger
from rlhfkit._models import BinaryFeedback, InteractionFilter, RecordBatch, StorageBackend
from rlhfkit.errors import ConfigurationError, ValidationError
from rlhfkit.storage import _zerodb_wire as wire
from rlhfkit.storage.zerodb import ZeroDBStorage
from tests.zerodb.emulator import EmulatorServer, ZeroDBEmulator
from tests.zerodb.test_delivery import batch, stored_ids

Make = Callable[..., ZeroDBStorage]


def test_jwt_as_bearer_under_another_path_prefix(project: str, make_storage: Make) -> None:
    """A JWT goes in Authorization: Bearer, and path_prefix='/api/v1' addresses a service mounted there."""
    server = EmulatorServer(ZeroDBEmulator(api_keys=set(), jwts={"token-1"}, prefix="/api/v1"))
    try:
        storage = make_storage(server, project, api_key=None, jwt="token-1", path_prefix="/api/v1")
        storage.write(batch(3, "jwt"))
        assert storage.flush(timeout_s=10) == 0
        assert sum(stored_ids(server, project).values()) == 3
        assert len(list(storage.iter_interactions(InteractionFilter()))) == 3
    finally:
        server.stop()


def test_reads_with_a_wrong_key_raise_with_the_detail(shared: EmulatorServer, project: str, make_storage: Make) -> None:
    """A read refused with 401 raises a StorageError carrying ZeroDB's detail."""
    from rlhfkit.errors import StorageError

    storage = make_storage(shared, project, api_key="nope")
    with pytest.raises(StorageError, match="Invalid API key"):
        list(storage.iter_interactions(InteractionFilter()))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"project_id": " "}, "project_id"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"table_name": "a/b"}, "table_name"),
        ({"base_url": "ftp://x"}, "base_url"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(options: dict[str, object], field: str, tmp_path: Path) -> None:
    """Each invalid setting raises a ValidationError that names it."""
    settings: dict[str, object] = {"project_id": "p", "api_key": "k", "spool_dir": tmp_path}
    settings.update(options)
    with pytest.raises(ValidationError) as info:
        ZeroDBStorage(**settings)  # type: ignore[arg-type]
    assert info.value.field == field


def test_credentials_are_required(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without api_key, jwt or their environment variables the storage refuses to start; ZERODB_API_KEY is read."""
    for name in ("RLHFKIT_ZERODB_API_KEY", "ZERODB_API_KEY", "RLHFKIT_ZERODB_JWT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError, match="api_key"):
        ZeroDBStorage("p", spool_dir=tmp_path)
    monkeypatch.setenv("ZERODB_API_KEY", "from-env")
    storage = ZeroDBStorage("p", spool_dir=tmp_path)
    try:
        assert storage._http.headers == {wire.API_KEY_HEADER: "from-env"}
    finally:
        storage.close(timeout_s=0)


def test_logger_built_from_backend_config_delivers_everything(
    shared: EmulatorServer, project: str, tmp_path: Path
) -> None:
    """RLHFLogger with backend ZERODB and backend_config['zerodb'] stores interactions and feedback, counted."""
    config = RLHFConfig(
        backend=StorageBackend.ZERODB,
        backend_config={"zerodb": {"project_id": project, "api_key": "test-key", "base_url": shared.url,
                                   "spool_dir": str(tmp_path / "spool"), "initial_backoff_s": 0.01}},
    )  # fmt: skip
    logger = RLHFLogger(config)
    ids = [logger.log_interaction(f"question {n}", f"answer {n}", model="gpt-4") for n in range(20)]
    for iid in ids[:5]:
        logger.log_binary_feedback(iid, BinaryFeedback.THUMBS_UP)
    assert logger.close(timeout_s=20) == 0
    rows = [row["row_data"] for row in shared.emulator.rows(project, "rlhf_feedback")]
    kinds = sorted(row["record_type"] for row in rows)
    assert kinds.count("interaction") == 20 and kinds.count("feedback") == 5
    assert {row["id"] for row in rows if row["record_type"] == "interaction"} == set(ids)
    reader = ZeroDBStorage(project, api_key="test-key", base_url=shared.url, spool_dir=tmp_path / "reader")
    try:
        stats = reader.feedback_stats()
        assert (stats.total_interactions, stats.total_feedback, stats.binary.thumbs_up) == (20, 5, 5)
        reader.write(RecordBatch())  # an empty batch is a no-op
        assert reader.pending == 0
    finally:
        reader.close(timeout_s=0)


def test_ids_with_spaces_are_quoted_in_paths(shared: EmulatorServer, make_storage: Make) -> None:
    """A project id and table name with spaces reach the service intact and read back."""
    storage = make_storage(shared, "team a", table_name="my table")
    storage.write(batch(2, "quoted"))
    assert storage.flush(timeout_s=10) == 0
    assert sum(stored_ids(shared, "team a", "my table").values()) == 2
    assert len(list(storage.iter_interactions(InteractionFilter()))) == 2
