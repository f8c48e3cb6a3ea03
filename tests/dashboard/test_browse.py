"""The dashboard in real headless Chromium: sign-in, the interactions table, the detail page and its feedback forms."""

from __future__ import annotations

import os
import re
from typing import Any

from tests.dashboard.conftest import FAILED_PROMPT, Collector, sign_in


def _shot(page: Any, output_dir: str, name: str) -> None:
    page.screenshot(path=os.path.join(output_dir, f"{name}.png"), full_page=True)


def _row_ids(page: Any) -> list[str]:
    return page.locator("[data-testid=interactions-table] tbody tr[data-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )


def _row_times(page: Any) -> list[str]:
    return page.locator("[data-testid=interactions-table] tbody tr[data-id] td:first-child").all_inner_texts()


def test_sign_in_refuses_write_only_and_unknown_keys_and_sets_a_safe_cookie(page: Any, collector: Collector, output_dir: str) -> None:
    """A write-only or unknown key stays on the form with an error; a read key gets an http-only SameSite=Lax cookie; sign-out ends it."""
    page.goto("/interactions")
    assert "/login" in page.url
    page.fill("#api_key", collector.write_only_key)
    page.click("button[type=submit]")
    assert "write-only" in page.get_by_test_id("login-error").inner_text()
    _shot(page, output_dir, "login-refused")
    page.fill("#api_key", "rk_not-a-key")
    page.click("button[type=submit]")
    assert "Unknown" in page.get_by_test_id("login-error").inner_text()
    assert not [c for c in page.context.cookies() if c["name"] == "rlhfkit_session"]

    sign_in(page, collector.key)
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "rlhfkit_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]  # http: Secure only over https
    assert page.get_by_test_id("user").inner_text() == "reviewer"

    page.get_by_test_id("logout").click()
    page.wait_for_url("**/login")
    page.goto("/interactions")
    assert "/login" in page.url


def test_table_pages_filters_and_searches_like_the_api(page: Any, collector: Collector, output_dir: str) -> None:
    """Cursor pages never repeat a row, and each filter shows exactly the interactions the /v1 API returns for it."""
    sign_in(page, collector.key)
    first, first_times = _row_ids(page), _row_times(page)
    assert len(first) == 50 and first_times == sorted(first_times, reverse=True)
    _shot(page, output_dir, "interactions")
    page.get_by_test_id("older").click()
    second, second_times = _row_ids(page), _row_times(page)
    assert second and not set(first) & set(second) and max(second_times) <= min(first_times)
    assert len(first) + len(second) == collector.api("/v1/stats")["total_interactions"]
    assert page.get_by_test_id("older").count() == 0
    page.get_by_test_id("newer").click()
    assert _row_ids(page) == first

    def api_ids(**params: Any) -> set[str]:
        return {i["id"] for i in collector.api("/v1/interactions", limit=1000, **params)["data"]}

    page.goto("/interactions")
    page.get_by_test_id("filter-model").select_option("claude-sonnet-4")
    page.get_by_test_id("filter-has-feedback").select_option("yes")
    page.click("button:has-text('Apply')")
    assert set(_row_ids(page)) == api_ids(models="claude-sonnet-4", has_feedback="true") != set()
    assert set(page.locator("tbody .model").all_inner_texts()) == {"claude-sonnet-4"}

    page.goto("/interactions")
    page.get_by_test_id("search").fill("paris")
    page.get_by_test_id("search").press("Enter")
    page.wait_for_url("**q=paris**")
    found = _row_ids(page)
    assert set(found) == api_ids(search="paris") and len(found) == 6
    _shot(page, output_dir, "interactions-search")

    page.goto("/interactions?feedback_type=rating&min_rating=5&max_rating=5")
    assert set(_row_ids(page)) == api_ids(feedback_types="rating", min_rating=5, max_rating=5) != set()
    page.goto("/interactions?feedback_type=comparative&model=gpt-4o")
    assert set(_row_ids(page)) == api_ids(feedback_types="comparative", models="gpt-4o") != set()
    page.goto("/interactions?has_feedback=no&user=user-9")
    assert set(_row_ids(page)) == {i for ids in collector.ids.values() for i in ids}

    page.goto("/interactions")
    page.get_by_test_id("filter-errors").check()
    page.click("button:has-text('Apply')")
    assert _row_ids(page) == [collector.failed_id]
    assert FAILED_PROMPT in page.locator("tbody").inner_text()

    page.goto("/interactions?start=2000-01-01T00:00&end=2000-01-02T00:00")
    assert page.get_by_test_id("no-results").is_visible()
    page.goto("/interactions?start=yesterday")
    assert "start" in page.locator(".alert.error").inner_text()


def test_every_feedback_type_given_on_the_detail_page_reads_back_through_the_api(
    page: Any, collector: Collector, output_dir: str
) -> None:
    """Thumbs, stars, a comment with sentiment and sliders are stored with source 'dashboard' and the key's name; a forged POST is refused."""
    sign_in(page, collector.key)
    page.get_by_test_id("search").fill("recursion")
    page.get_by_test_id("search").press("Enter")
    page.wait_for_url("**q=recursion**")
    page.locator("tbody a.row-link").first.click()
    page.wait_for_url(re.compile(r"/interactions/[0-9a-f]+$"))
    interaction_id = page.get_by_test_id("interaction-id").inner_text()
    detail = collector.api(f"/v1/interactions/{interaction_id}")
    interaction, before = detail["interaction"], detail["feedback"]
    assert page.get_by_test_id("prompt").inner_text() == interaction["prompt"]
    assert page.get_by_test_id("response").inner_text() == interaction["response"]
    assert "You are a helpful assistant." in page.get_by_test_id("conversation").inner_text()
    assert page.get_by_test_id("latency").inner_text() == f"{interaction['latency']:,.1f} ms"
    usage = interaction["token_usage"]
    assert page.get_by_test_id("tokens").inner_text() == f"{usage['prompt']} / {usage['completion']} / {usage['total']}"
    assert page.get_by_test_id("tps").inner_text() != "–"
    assert page.get_by_test_id("feedback-item").count() == len(before)

    page.get_by_test_id("thumbs-down").click()
    page.wait_for_selector("[data-testid=saved]")
    page.get_by_test_id("star-4").click()
    page.locator("[data-testid=form-rating] input[name=comment]").fill("Good, a little long")
    page.get_by_test_id("submit-rating").click()
    page.wait_for_selector("[data-testid=saved]")
    page.get_by_test_id("comment").fill("Confuses recursion with iteration.")
    page.get_by_test_id("sentiment-negative").check()
    page.get_by_test_id("submit-text").click()
    page.wait_for_selector("[data-testid=saved]")
    page.get_by_test_id("dim-accuracy").fill("2")
    page.get_by_test_id("dim-clarity").fill("5")
    page.get_by_test_id("submit-multi").click()
    page.wait_for_selector("[data-testid=saved]")
    assert page.get_by_test_id("feedback-item").count() == len(before) + 4
    _shot(page, output_dir, "detail")

    forged = page.context.request.post(
        f"/interactions/{interaction_id}/feedback/binary", form={"csrf": "forged", "value": "thumbs_up"}
    )
    assert forged.status == 403

    mine = [f for f in collector.api(f"/v1/interactions/{interaction_id}")["feedback"] if f["source"] == "dashboard"]
    assert {f["user_id"] for f in mine} == {"reviewer"}
    by_type = {f["type"]: f["data"] for f in mine}
    assert len(mine) == 4 and set(by_type) == {"binary", "rating", "text", "multi_dimensional"}
    assert by_type["binary"]["value"] == "thumbs_down"
    assert (by_type["rating"]["value"], by_type["rating"]["comment"]) == (4, "Good, a little long")
    assert by_type["text"] == {"type": "text", "comment": "Confuses recursion with iteration.", "sentiment": "negative"}
    assert by_type["multi_dimensional"]["dimensions"] == {"accuracy": 2, "helpfulness": 3, "clarity": 5, "safety": 3}

    page.goto(f"/interactions/{interaction_id}")
    page.get_by_test_id("comment").fill("   ")
    page.get_by_test_id("submit-text").click()
    assert page.get_by_test_id("form-error").is_visible()
    assert len(collector.api(f"/v1/interactions/{interaction_id}")["feedback"]) == len(before) + 4
