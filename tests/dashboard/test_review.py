"""The dashboard in real headless Chromium: compare, the keyboard review queue, analytics and export."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from typing import Any

from rlhfkit.server.dashboard._queries import group_key
from tests.dashboard.conftest import UNJUDGED, Collector, sign_in


def _shot(page: Any, output_dir: str, name: str) -> None:
    page.screenshot(path=os.path.join(output_dir, f"{name}.png"), full_page=True)


def _comparisons(collector: Collector) -> list[dict[str, Any]]:
    return collector.api("/v1/feedback", types="comparative", source="dashboard", limit=1000)["data"]


def _candidates(page: Any) -> list[str]:
    return page.get_by_test_id("candidate").evaluate_all("cards => cards.map(c => c.dataset.id)")


def test_compare_two_responses_side_by_side_stores_a_comparison(page: Any, collector: Collector, output_dir: str) -> None:
    """Picking the second of two responses with a reason and confidence stores it preferred over the first."""
    prompt = "Name a prime number above 100."
    sign_in(page, collector.key)
    page.goto("/compare?pending=1")
    assert page.locator(f"tr[data-key='{group_key(prompt)}']").is_visible()
    _shot(page, output_dir, "compare-groups")
    page.locator(f"tr[data-key='{group_key(prompt)}'] a").click()
    assert page.get_by_test_id("group-prompt").inner_text() == prompt
    shown = _candidates(page)
    assert sorted(shown) == sorted(collector.ids[prompt])
    page.get_by_test_id("pick-2").check()
    page.get_by_test_id("reason").fill("102 is even")
    page.get_by_test_id("confidence").fill("0.95")
    _shot(page, output_dir, "compare")
    page.get_by_test_id("submit-compare").click()
    page.wait_for_selector("[data-testid=saved]")

    (stored,) = [c for c in _comparisons(collector) if c["data"]["preferred_id"] in shown]
    assert stored["data"]["preferred_id"] == shown[1]
    assert stored["data"]["alternative_ids"] == [shown[0]]
    assert (stored["data"]["reason"], stored["data"]["confidence"]) == ("102 is even", 0.95)
    assert stored["user_id"] == "reviewer"
    page.goto("/compare?pending=1")
    assert page.locator(f"tr[data-key='{group_key(prompt)}']").count() == 0


def test_review_queue_walks_unjudged_groups_with_the_keyboard(page: Any, collector: Collector, output_dir: str) -> None:
    """'s' skips a group, a digit stores the pick at once and moves on, and the queue ends when every group is judged or skipped."""
    sign_in(page, collector.key)
    page.goto("/review")
    skipped_prompt = page.get_by_test_id("group-prompt").inner_text()
    assert skipped_prompt in UNJUDGED
    _shot(page, output_dir, "review")
    page.keyboard.press("s")
    page.wait_for_url("**/review?skip=*")
    judged: dict[str, str] = {}
    for _ in range(len(UNJUDGED)):
        if page.get_by_test_id("queue-empty").count():
            break
        prompt = page.get_by_test_id("group-prompt").inner_text()
        assert prompt != skipped_prompt
        shown = _candidates(page)
        pick = len(shown)  # the last one shown
        judged[prompt] = shown[pick - 1]
        page.keyboard.press(str(pick))
        page.wait_for_function("p => !document.body.innerText.includes(p)", arg=prompt)
    assert page.get_by_test_id("queue-empty").is_visible()
    assert judged and skipped_prompt not in judged
    _shot(page, output_dir, "review-done")

    stored = {c["data"]["preferred_id"]: c for c in _comparisons(collector)}
    for prompt, preferred in judged.items():
        others = sorted(set(collector.ids[prompt]) - {preferred})
        assert sorted(stored[preferred]["data"]["alternative_ids"]) == others
    assert not set(collector.ids[skipped_prompt]) & {i for c in stored.values() for i in [c["data"]["preferred_id"],
                                                                                          *c["data"]["alternative_ids"]]}
    page.goto("/review")
    assert page.get_by_test_id("group-prompt").inner_text() == skipped_prompt


def test_analytics_draws_charts_leaderboard_and_rating_distribution(page: Any, collector: Collector, output_dir: str) -> None:
    """The charts are drawn from the JSON endpoint, one line per model, and the figures match /v1/stats."""
    sign_in(page, collector.key)
    page.goto("/analytics?range=all")
    page.wait_for_selector("#analytics[data-ready='1'][data-leaderboard-ready='1']")
    stats = collector.api("/v1/stats")
    summary = page.get_by_test_id("summary")
    assert summary.locator("[data-stat=interactions]").inner_text() == f"{stats['total_interactions']:,}"
    assert summary.locator("[data-stat=feedback]").inner_text() == f"{stats['total_feedback']:,}"
    models = {"gpt-4o", "claude-sonnet-4", "llama-3.1-70b"}
    for metric in ("interactions", "feedback_rate", "thumbs_ratio", "average_rating", "p50_latency_ms", "p95_latency_ms"):
        labels = page.evaluate(
            "m => Chart.getChart(document.querySelector(`canvas[data-metric=${m}]`)).data.datasets.map(d => d.label)", metric
        )
        assert set(labels) == models, metric
    counts = page.evaluate("() => Chart.getChart(document.getElementById('rating-distribution')).data.datasets[0].data")
    assert sum(counts) == stats["rating"]["count"] and counts == [stats["rating"]["distribution"].get(str(n), 0) for n in range(1, 6)]
    board = page.get_by_test_id("leaderboard").locator("tbody tr")
    assert board.count() == 3
    assert models <= set(page.get_by_test_id("leaderboard").inner_text().split())
    _shot(page, output_dir, "analytics")


def test_export_downloads_raw_records_and_a_training_dataset(page: Any, collector: Collector, output_dir: str) -> None:
    """The raw JSONL and CSV downloads hold every interaction; the preference dataset zip holds prompt/chosen/rejected rows."""
    sign_in(page, collector.key)
    page.goto("/export")
    _shot(page, output_dir, "export")
    total = collector.api("/v1/stats")["total_interactions"]

    with page.expect_download() as info:
        page.get_by_test_id("download-raw").click()
    with open(info.value.path(), encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    assert len(rows) == total and {r["id"] for r in rows} == {i["id"] for i in collector.api("/v1/interactions", limit=1000)["data"]}
    assert sum(len(r["feedback"]) for r in rows) >= collector.api("/v1/stats")["total_feedback"]

    page.get_by_test_id("raw-kind").select_option("interactions")
    page.get_by_test_id("raw-format").select_option("csv")
    with page.expect_download() as info:
        page.get_by_test_id("download-raw").click()
    assert info.value.suggested_filename.endswith(".csv")
    with open(info.value.path(), encoding="utf-8", newline="") as handle:
        table = list(csv.DictReader(io.StringIO(handle.read())))
    assert len(table) == total and {"id", "model", "prompt", "response"} <= set(table[0])

    page.get_by_test_id("dataset-kind").select_option("preference")
    with page.expect_download() as info:
        page.get_by_test_id("download-dataset").click()
    with zipfile.ZipFile(info.value.path()) as bundle:
        names = bundle.namelist()
        assert "preference/README.md" in names
        lines = [json.loads(x) for name in names if name.endswith(".jsonl") for x in bundle.read(name).splitlines() if x]
    assert lines and all({"prompt", "chosen", "rejected"} <= set(x) for x in lines)
