"""Fixtures of the dataset and analytics tests: storages to fill, and an offline `datasets`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

# The Hugging Face `datasets` package reads these when imported: keep it offline and out of ~/.cache.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="rlhfkit-hf-home-"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from rlhfkit._models import (
    BinaryData,
    ComparativeData,
    Feedback,
    Interaction,
    Message,
    MultiDimensionalData,
    RatingData,
    RecordBatch,
    TextData,
)
from rlhfkit.storage.base import Storage
from rlhfkit.storage.memory import MemoryStorage
from rlhfkit.storage.sql import SQLStorage

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """An empty storage: MemoryStorage, then SQLite."""
    store: Any
    if request.param == "memory":
        store = MemoryStorage(max_entries=100_000)
    else:
        store = SQLStorage(f"sqlite:///{tmp_path / 'rlhf.db'}")
    store.initialize()
    yield store
    store.close()


@pytest.fixture
def memory() -> MemoryStorage:
    """An empty MemoryStorage."""
    return MemoryStorage(max_entries=100_000)


class Recorder:
    """Builds interactions and feedback with readable helpers, then writes them in one batch."""

    def __init__(self) -> None:
        self.interactions: list[Interaction] = []
        self.feedback: list[Feedback] = []
        self._tick = 0

    def _time(self) -> datetime:
        self._tick += 1
        return T0 + timedelta(minutes=self._tick)

    def ask(self, prompt: str, response: str, model: str | None = "model-a", **fields: Any) -> Interaction:
        """Log an interaction."""
        fields.setdefault("timestamp", self._time())
        context = fields.pop("context", [])
        interaction = Interaction(
            prompt=prompt, response=response, model=model, context=[Message(**m) for m in context], **fields
        )
        self.interactions.append(interaction)
        return interaction

    def _add(self, interaction: Interaction, data: Any, user: str | None, at: datetime | None) -> Feedback:
        fb = Feedback(interaction_id=interaction.id, type=data.type, data=data, user_id=user, timestamp=at or self._time())
        self.feedback.append(fb)
        return fb

    def rate(self, interaction: Interaction, value: float, max_rating: int = 5, user: str | None = None,
             at: datetime | None = None, comment: str | None = None) -> Feedback:  # fmt: skip
        """A rating."""
        return self._add(interaction, RatingData(value=value, max_rating=max_rating, comment=comment), user, at)

    def thumb(self, interaction: Interaction, up: bool, user: str | None = None, at: datetime | None = None) -> Feedback:
        """A thumbs up or down."""
        return self._add(interaction, BinaryData(value="thumbs_up" if up else "thumbs_down"), user, at)

    def say(self, interaction: Interaction, comment: str, sentiment: str | None = None, user: str | None = None) -> Feedback:
        """A text comment."""
        return self._add(interaction, TextData(comment=comment, sentiment=sentiment), user, None)

    def score(self, interaction: Interaction, dims: dict[str, float], weights: dict[str, float] | None = None,
              user: str | None = None) -> Feedback:  # fmt: skip
        """A multi-dimensional judgement (0..5)."""
        return self._add(interaction, MultiDimensionalData(dimensions=dims, weights=weights), user, None)

    def prefer(self, preferred: Interaction, *others: Interaction, confidence: float | None = None,
               user: str | None = None) -> Feedback:  # fmt: skip
        """A comparison: ``preferred`` over each of ``others``."""
        data = ComparativeData(preferred_id=preferred.id, alternative_ids=[o.id for o in others], confidence=confidence)
        return self._add(preferred, data, user, None)

    def save(self, storage: Storage) -> Storage:
        """Write everything recorded to ``storage``."""
        storage.write(RecordBatch(interactions=self.interactions, feedback=self.feedback))
        return storage


@pytest.fixture
def rec() -> Recorder:
    """A fresh Recorder."""
    return Recorder()


def load(files: dict[str, str], fmt: str, cache: Path) -> Any:
    """Load exported files with the real Hugging Face `datasets` package."""
    import datasets

    builder = "json" if fmt == "jsonl" else "parquet"
    return datasets.load_dataset(builder, data_files=files, cache_dir=str(cache))


@pytest.fixture
def hf_load(tmp_path: Path) -> Callable[[dict[str, str], str], Any]:
    """``hf_load(files, fmt)``: a DatasetDict loaded offline with a private cache."""
    return lambda files, fmt: load(files, fmt, tmp_path / "hf-cache")
