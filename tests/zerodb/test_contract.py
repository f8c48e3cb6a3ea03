"""The storage contract (tests/storage_contract.py) run against ZeroDBStorage on the emulator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rlhfkit.storage.base import Storage
from rlhfkit.storage.zerodb import ZeroDBStorage
from tests.storage_contract import StorageContract
from tests.zerodb.conftest import FAST
from tests.zerodb.emulator import EmulatorServer


class TestZeroDBContract(StorageContract):
    """ZeroDBStorage honours the storage contract: every write lands as rows, every read pages them back."""

    @pytest.fixture
    def storage_factory(self, shared: EmulatorServer, project: str, tmp_path: Path) -> Callable[[], Storage]:
        """A factory opening a ZeroDBStorage on the same project and spool at each call."""

        def open_storage() -> Storage:
            return ZeroDBStorage(project, api_key="test-key", base_url=shared.url, spool_dir=tmp_path / "spool", **FAST)

        return open_storage
