"""A real collector on 127.0.0.1 with demo data, and a real headless Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rlhfkit._config import RLHFConfig
from rlhfkit._demo_data import populate_demo
from rlhfkit._logger import RLHFLogger
from rlhfkit._models import Interaction
from rlhfkit.server import SQLKeyStore, create_app
from rlhfkit.storage.sql import SQLStorage
from tests._servers import serve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Prompts answered by several models that nobody has compared yet: the review queue's work.
UNJUDGED = {
    "Name a prime number above 100.": [("gpt-4o", "101 is prime."), ("llama-3.1-70b", "I believe 102 is prime.")],
    "What colour is the sky on Mars?": [
        ("gpt-4o", "Butterscotch by day, blue at sunset."),
        ("claude-sonnet-4", "Pinkish-red during the day; sunsets look blue."),
        ("llama-3.1-70b", "Blue, like on Earth."),
    ],
    "Suggest a name for a tea shop.": [("gpt-4o", "Steep & Co."), ("claude-sonnet-4", "The Leaf Ledger")],
}
FAILED_PROMPT = "Summarise this 900-page novel in one word."


@dataclass
class Collector:
    """The running collector: its address, a read key and a write-only key of project ``default``."""

    url: str
    key: str
    write_only_key: str
    ids: dict[str, list[str]]
    failed_id: str
    db_url: str

    def api(self, path: str, **params: Any) -> Any:
        """GET a /v1 endpoint with the read key and return its JSON."""
        reply = httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {self.key}"}, timeout=10)
        reply.raise_for_status()
        return reply.json()


@pytest.fixture(scope="package")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """The collector on a fresh SQLite file with two rounds of demo data, a few unjudged groups and one failed call."""
    url = f"sqlite:///{tmp_path_factory.mktemp('dashboard') / 'rlhf.db'}"
    storage = SQLStorage(url)
    storage.initialize()
    logger = RLHFLogger(RLHFConfig(), storage=storage)
    populate_demo(logger, rounds=2)
    ids: dict[str, list[str]] = {}
    for prompt, answers in UNJUDGED.items():
        ids[prompt] = [
            logger.log_interaction(prompt, text, model=model, latency=300.0 + n, user_id="user-9")
            for n, (model, text) in enumerate(answers)
        ]
    failed = Interaction(prompt=FAILED_PROMPT, response="", model="gpt-4o",
                         error={"type": "RateLimitError", "message": "slow down", "status_code": 429})  # fmt: skip
    failed_id = logger.log_record(failed)
    assert logger.close(timeout_s=10) == 0
    keys = SQLKeyStore(storage.engine)
    key = keys.create("default", "reviewer")
    write_only_key = keys.create("default", "widget", write_only=True)
    storage.close()
    with serve(create_app(url)) as server:
        yield Collector(server.url, key, write_only_key, ids, failed_id, url)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install chromium: make browser"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, collector: Collector) -> Iterator[Any]:
    """A fresh browser context (no cookies) with one page, 1360 px wide."""
    context = browser.new_context(base_url=collector.url, viewport={"width": 1360, "height": 900}, accept_downloads=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, key: str) -> None:
    """Sign in through the form and land on the interactions page."""
    page.goto("/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url("**/interactions")
